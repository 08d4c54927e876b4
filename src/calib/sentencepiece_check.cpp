#include "calib/sentencepiece_check.h"

#include <cstdint>
#include <cstring>
#include <optional>

#include "util/error.h"

namespace gptq::tok {

namespace {

// Minimal protobuf wire-format reader (varints and field skipping only).
struct Wire {
  std::string_view s;
  size_t pos = 0;

  std::optional<uint64_t> varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && pos < s.size(); shift += 7) {
      const auto b = static_cast<uint8_t>(s[pos++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    return std::nullopt;
  }

  // Calls on_bytes(field, offset, size) for each length-delimited field; false: malformed.
  template <typename F>
  bool fields(F&& on_bytes) {
    while (pos < s.size()) {
      const auto tag = varint();
      if (!tag) return false;
      const uint64_t field = *tag >> 3;
      switch (*tag & 7) {
        case 0:
          if (!varint()) return false;
          break;
        case 1:
          if (s.size() - pos < 8) return false;
          pos += 8;
          break;
        case 5:
          if (s.size() - pos < 4) return false;
          pos += 4;
          break;
        case 2: {
          const auto n = varint();
          if (!n || *n > s.size() - pos) return false;
          on_bytes(field, pos, static_cast<size_t>(*n));
          pos += static_cast<size_t>(*n);
          break;
        }
        default:
          return false;
      }
    }
    return true;
  }
};

// darts-clone's unit encoding (darts.h, DoubleArrayUnit).
bool has_leaf(uint32_t u) {
  return ((u >> 8) & 1) == 1;
}
uint32_t value(uint32_t u) {
  return u & ((1U << 31) - 1);
}
uint32_t label(uint32_t u) {
  return u & ((1U << 31) | 0xFF);
}
uint32_t offset(uint32_t u) {
  return (u >> 10) << ((u & (1U << 9)) >> 6);
}

}  // namespace

std::vector<std::pair<size_t, size_t>> precompiled_charsmaps(std::string_view model) {
  std::vector<std::pair<size_t, size_t>> out;
  Wire top{model};
  top.fields([&](uint64_t field, size_t at, size_t size) {
    if (field != 3 && field != 5) return;  // normalizer_spec, denormalizer_spec
    Wire spec{model.substr(at, size)};
    spec.fields([&](uint64_t f, size_t a, size_t n) {
      if (f == 2) out.emplace_back(at + a, n);  // precompiled_charsmap
    });
  });
  return out;
}

void check_precompiled_charsmap(std::string_view blob, const std::string& where) {
  if (blob.empty()) return;  // no normalization map: identity
  auto bad = [&](const std::string& why) {
    fail(
        "{}: the normalization map (precompiled_charsmap) is damaged: {}; copy tokenizer.model of "
        "the base model again",
        where, why);
  };
  if (blob.size() < 4) bad("shorter than its 4-byte length");
  uint32_t trie_bytes = 0;
  std::memcpy(&trie_bytes, blob.data(), 4);  // little-endian, as sentencepiece writes it
  if (trie_bytes >= blob.size() - 4 + 1 || trie_bytes % 4 != 0 || trie_bytes == 0)
    bad("its trie length does not fit the map");
  const size_t units = trie_bytes / 4;
  const std::string_view strings = blob.substr(4 + trie_bytes);
  auto unit = [&](size_t i) {
    uint32_t u;
    std::memcpy(&u, blob.data() + 4 + 4 * i, 4);
    return u;
  };
  // Walk every node reachable from the root as Darts' commonPrefixSearch does: from a node at
  // position p it reads units p ^ c for every byte c, so p | 0xFF must be inside the array.
  std::vector<bool> seen(units, false);
  std::vector<size_t> todo{static_cast<size_t>(offset(unit(0)))};
  while (!todo.empty()) {
    const size_t p = todo.back();
    todo.pop_back();
    if ((p | 0xFF) >= units) bad("a trie offset points outside the trie");
    if (seen[p]) continue;
    seen[p] = true;
    for (uint32_t c = 0; c < 256; ++c) {
      const size_t q = p ^ c;
      const uint32_t u = unit(q);
      if (label(u) != c) continue;
      const size_t next = q ^ offset(u);
      if (next >= units) bad("a trie offset points outside the trie");
      if (has_leaf(u)) {
        const uint32_t v = value(unit(next));
        if (v >= strings.size() || strings.find('\0', v) == std::string_view::npos)
          bad("a replacement string lies outside the map or is not terminated");
      }
      todo.push_back(next);
    }
  }
}

void check_sentencepiece_model(std::string_view model, const std::string& name) {
  for (const auto& [at, size] : precompiled_charsmaps(model))
    check_precompiled_charsmap(model.substr(at, size), name);
}

}  // namespace gptq::tok
