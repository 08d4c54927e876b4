// gptq::parse_byte_size: "5GB" -> 5e9 (max_shard_size, --max-shard-size).
#include <cctype>
#include <map>

#include "api/boundary.h"
#include "gptq/quantize.h"
#include "util/error.h"

namespace gptq {

uint64_t parse_byte_size(const std::string& s) {
  return api::guarded([&]() -> uint64_t {
    if (s.empty() || s == "0") return 0;
    size_t pos = 0;
    double v = 0;
    try {
      v = std::stod(s, &pos);
    } catch (const std::exception&) {
      fail_code(ExitCode::kUsage, "--max-shard-size '{}': expected a size like 5GB, 500MB or 2GiB",
                s);
    }
    std::string unit = s.substr(pos);
    for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const std::map<std::string, double> units{
        {"", 1},      {"B", 1},        {"KB", 1e3},        {"MB", 1e6},          {"GB", 1e9},
        {"TB", 1e12}, {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}};
    const auto it = units.find(unit);
    if (it == units.end() || v <= 0)
      fail_code(ExitCode::kUsage, "--max-shard-size '{}': expected a size like 5GB, 500MB or 2GiB",
                s);
    return static_cast<uint64_t>(v * it->second);
  });
}

}  // namespace gptq
