// A CLI11 check for integer options: plain decimal digits with an optional '-', within 64 bits.
// CLI11 alone accepts "0x10", " 4" and clamps 99999999999999999999 to INT64_MAX.
#pragma once

#include <CLI/CLI.hpp>

#include <charconv>
#include <cstdint>
#include <string>
#include <system_error>

namespace gptq::cli {

inline CLI::Validator strict_integer() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        const bool negative = !s.empty() && s[0] == '-';
        const size_t first = negative ? 1 : 0;
        if (s.size() == first || s.find_first_not_of("0123456789", first) != std::string::npos)
          return "'" + s + "' is not a whole number (digits only, no exponent or hex)";
        const char* end = s.data() + s.size();
        int64_t i = 0;
        uint64_t u = 0;
        if (const auto r = std::from_chars(s.data(), end, i); r.ec == std::errc() && r.ptr == end)
          return {};
        if (const auto r = std::from_chars(s.data(), end, u);
            !negative && r.ec == std::errc() && r.ptr == end)
          return {};
        return "'" + s + "' does not fit in 64 bits";
      },
      "INT");
}

}  // namespace gptq::cli
