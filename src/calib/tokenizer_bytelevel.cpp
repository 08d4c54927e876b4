#include "calib/tokenizer_bytelevel.h"

#include "calib/tokenizer_utf8.h"

namespace gptq::tok {

namespace {

// Code point standing for each byte, as in GPT-2's bytes_to_unicode().
std::array<char32_t, 256> build_code_points() {
  std::array<char32_t, 256> cps{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    cps[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return cps;
}

const std::array<char32_t, 256>& code_points() {
  static const std::array<char32_t, 256> cps = build_code_points();
  return cps;
}

}  // namespace

const std::array<std::string, 256>& byte_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (int b = 0; b < 256; ++b) utf8_append(t[b], code_points()[b]);
    return t;
  }();
  return table;
}

void bytes_to_unicode_text(std::string_view bytes, std::string& out) {
  const auto& table = byte_to_unicode();
  for (char c : bytes) out += table[static_cast<unsigned char>(c)];
}

std::optional<uint8_t> unicode_to_byte(char32_t cp) {
  static const std::array<int16_t, 324> inverse = [] {
    std::array<int16_t, 324> inv;
    inv.fill(-1);
    for (int b = 0; b < 256; ++b) inv[code_points()[b]] = static_cast<int16_t>(b);
    return inv;
  }();
  if (cp >= inverse.size() || inverse[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(inverse[cp]);
}

}  // namespace gptq::tok
