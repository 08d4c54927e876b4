// gptq::parse_byte_size: "5GB" -> 5e9 (max_shard_size, --max-shard-size). Strict: digits with an
// optional decimal part and a unit, a whole number of bytes that fits in 64 bits; no exponents,
// signs, NaN or infinities.
#include <cctype>
#include <cstdint>
#include <map>

#include "api/boundary.h"
#include "gptq/quantize.h"
#include "util/error.h"

namespace gptq {

namespace {

[[noreturn]] void bad_size(const std::string& s, std::string_view why) {
  fail_code(ExitCode::kUsage,
            "--max-shard-size '{}': {}; expected a size like 5GB, 500MB, 1.5GiB or 0 (one file)", s,
            why);
}

}  // namespace

uint64_t parse_byte_size(const std::string& s) {
  return api::guarded([&]() -> uint64_t {
    if (s == "0") return 0;
    __extension__ typedef unsigned __int128 u128;
    constexpr u128 kMax = UINT64_MAX;
    u128 mantissa = 0, scale = 1;  // value = mantissa / scale
    size_t pos = 0, digits = 0;
    bool dot = false;
    for (; pos < s.size(); ++pos) {
      const char c = s[pos];
      if (c == '.' && !dot) {
        dot = true;
        continue;
      }
      if (c < '0' || c > '9') break;
      if (++digits > 20) bad_size(s, "more than 2^64 bytes");
      mantissa = mantissa * 10 + static_cast<u128>(c - '0');
      if (dot) scale *= 10;
    }
    if (digits == 0) bad_size(s, "not a number");
    std::string unit = s.substr(pos);
    for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    static const std::map<std::string, uint64_t> units{
        {"", 1},
        {"B", 1},
        {"KB", 1'000},
        {"MB", 1'000'000},
        {"GB", 1'000'000'000},
        {"TB", 1'000'000'000'000},
        {"KIB", uint64_t{1} << 10},
        {"MIB", uint64_t{1} << 20},
        {"GIB", uint64_t{1} << 30},
        {"TIB", uint64_t{1} << 40}};
    const auto it = units.find(unit);
    if (it == units.end()) bad_size(s, fmt::format("unknown unit '{}'", s.substr(pos)));
    const u128 total = mantissa * it->second;  // < 10^20 * 2^40 < 2^107: no overflow
    if (total % scale != 0) bad_size(s, "not a whole number of bytes");
    const u128 bytes = total / scale;
    if (bytes > kMax) bad_size(s, "more than 2^64 bytes");
    if (bytes == 0) bad_size(s, "must be positive (0 alone: one file)");
    return static_cast<uint64_t>(bytes);
  });
}

}  // namespace gptq
