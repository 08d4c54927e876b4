#include "io/safetensors_header.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "io/json_unique.h"
#include "util/error.h"

namespace gptq {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& file, const std::string& what) {
  fail_safetensors(file, what);
}

std::string describe_value(const json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return fmt::format("{} {}", v.type_name(), s);
}

// A JSON number that is a non-negative integer; nullopt otherwise (negative, fractional, other).
std::optional<uint64_t> as_uint(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

std::map<std::string, std::string> parse_metadata(const json& m, const std::string& file) {
  if (!m.is_object()) {
    bad(file,
        fmt::format("\"__metadata__\" is a {}, expected an object of strings", describe_value(m)));
  }
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : m.items()) {
    if (!value.is_string()) {
      bad(file, fmt::format("\"__metadata__\" value of '{}' is a {}, expected a string", key,
                            describe_value(value)));
    }
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

const json& field(const json& entry, const char* key, const std::string& name,
                  const std::string& file) {
  const auto it = entry.find(key);
  if (it == entry.end()) {
    bad(file, fmt::format("tensor '{}': missing \"{}\" (each entry needs \"dtype\", \"shape\" and "
                          "\"data_offsets\")",
                          name, key));
  }
  return *it;
}

HeaderEntry parse_entry(const std::string& name, const json& entry, uint64_t data_size,
                        const std::string& file) {
  if (!entry.is_object()) {
    bad(file, fmt::format("tensor '{}': entry is a {}, expected an object with \"dtype\", "
                          "\"shape\" and \"data_offsets\"",
                          name, describe_value(entry)));
  }
  HeaderEntry e;
  e.name = name;

  const json& dtype = field(entry, "dtype", name, file);
  if (!dtype.is_string()) {
    bad(file, fmt::format("tensor '{}': \"dtype\" is a {}, expected a string such as \"F16\"", name,
                          describe_value(dtype)));
  }
  if (!parse_dtype(dtype.get_ref<const std::string&>(), &e.dtype)) {
    bad(file, fmt::format("tensor '{}': unknown dtype '{}' (known: F64, F32, F16, BF16, I64, I32, "
                          "I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2)",
                          name, dtype.get_ref<const std::string&>()));
  }

  const json& shape = field(entry, "shape", name, file);
  if (!shape.is_array()) {
    bad(file, fmt::format("tensor '{}': \"shape\" is a {}, expected an array of integers", name,
                          describe_value(shape)));
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    const auto dim = as_uint(shape[i]);
    if (!dim || *dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      const char* problem = !shape[i].is_number()        ? "not a number"
                            : shape[i].is_number_float() ? "not an integer"
                            : !dim                       ? "negative"
                                                         : "too large";
      bad(file, fmt::format("tensor '{}': shape dimension {} ({}) is {}, expected a non-negative "
                            "integer",
                            name, i, describe_value(shape[i]), problem));
    }
    e.shape.push_back(static_cast<int64_t>(*dim));
  }

  const json& offsets = field(entry, "data_offsets", name, file);
  if (!offsets.is_array() || offsets.size() != 2) {
    bad(file, fmt::format("tensor '{}': \"data_offsets\" is a {}, expected [begin, end]", name,
                          describe_value(offsets)));
  }
  const auto begin = as_uint(offsets[0]);
  const auto end = as_uint(offsets[1]);
  if (!begin || !end) {
    bad(file, fmt::format("tensor '{}': \"data_offsets\" {} must be two non-negative integers",
                          name, offsets.dump()));
  }
  e.begin = *begin;
  e.end = *end;
  if (e.begin > e.end) {
    bad(file, fmt::format("tensor '{}': data_offsets [{}, {}] begin after they end", name, e.begin,
                          e.end));
  }
  if (e.end > data_size) {
    bad(file, fmt::format("tensor '{}': data_offsets [{}, {}] go beyond the data section, which "
                          "is {} bytes (truncated file?)",
                          name, e.begin, e.end, data_size));
  }
  const auto nbytes = tensor_nbytes(e.dtype, e.shape);
  if (!nbytes) {
    bad(file, fmt::format("tensor '{}': shape {} is too large (its byte size overflows)", name,
                          format_shape(e.shape)));
  }
  if (*nbytes != e.end - e.begin) {
    bad(file, fmt::format("tensor '{}' ({} {}) needs {} bytes but its data_offsets [{}, {}] span "
                          "{} bytes",
                          name, dtype_name(e.dtype), format_shape(e.shape), *nbytes, e.begin, e.end,
                          e.end - e.begin));
  }
  return e;
}

// Sorted by begin, the tensors must tile [0, data_size) exactly, as safetensors requires.
void check_layout(const std::vector<HeaderEntry>& entries, uint64_t data_size,
                  const std::string& file) {
  uint64_t expected = 0;
  const HeaderEntry* prev = nullptr;
  for (const HeaderEntry& e : entries) {
    if (e.begin < expected) {
      bad(file, fmt::format("tensor '{}' (data_offsets [{}, {}]) overlaps tensor '{}' ([{}, {}])",
                            e.name, e.begin, e.end, prev->name, prev->begin, prev->end));
    }
    if (e.begin > expected) {
      bad(file, fmt::format("hole in the data section: bytes [{}, {}) before tensor '{}' belong to "
                            "no tensor (data must be contiguous)",
                            expected, e.begin, e.name));
    }
    expected = e.end;
    prev = &e;
  }
  if (expected != data_size) {
    if (prev == nullptr) {
      bad(file,
          fmt::format("the header declares no tensors but {} bytes of data follow it", data_size));
    }
    bad(file, fmt::format("{} trailing bytes after the last tensor '{}' (which ends at {}; the "
                          "data section is {} bytes)",
                          data_size - expected, prev->name, expected, data_size));
  }
}

}  // namespace

void fail_safetensors(const std::string& file, const std::string& what) {
  fail(
      "invalid safetensors file '{}': {}; the file is damaged or not in safetensors format "
      "(re-download or re-export the checkpoint)",
      file, what);
}

std::optional<uint64_t> tensor_nbytes(DType dtype, std::span<const int64_t> shape) {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d)) {
      return std::nullopt;
    }
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

std::string format_shape(std::span<const int64_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

SafetensorsHeader parse_safetensors_header(std::string_view text, uint64_t data_size,
                                           const std::string& file) {
  JsonParseResult parsed = parse_json_unique_keys(text);
  if (!parsed.syntax_error.empty()) {
    bad(file, fmt::format("the header is not valid JSON ({})", parsed.syntax_error));
  }
  if (parsed.duplicate) {
    const auto& dup = *parsed.duplicate;
    if (dup.parents.empty()) bad(file, fmt::format("duplicate tensor name '{}'", dup.key));
    bad(file, fmt::format("duplicate key '{}' in the header entry '{}'", dup.key,
                          fmt::join(dup.parents, "/")));
  }
  const json& root = parsed.value;
  if (!root.is_object()) {
    bad(file, fmt::format("the header is a JSON {}, expected an object", root.type_name()));
  }

  SafetensorsHeader header;
  header.entries.reserve(root.size());
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      header.metadata = parse_metadata(entry, file);
    } else {
      header.entries.push_back(parse_entry(name, entry, data_size, file));
    }
  }
  std::sort(header.entries.begin(), header.entries.end(),
            [](const HeaderEntry& a, const HeaderEntry& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  check_layout(header.entries, data_size, file);
  return header;
}

}  // namespace gptq
