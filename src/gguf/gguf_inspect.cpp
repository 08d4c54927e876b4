#include "io/json_reader.h"
#include "gguf/gguf_inspect.h"

#include <fmt/format.h>

#include <map>

#include "gguf/gguf_reader.h"

namespace gptq::gguf {

namespace {
std::string short_value(const nlohmann::json& v) {
  if (v.is_array()) {
    std::string head;
    for (size_t i = 0; i < std::min<size_t>(v.size(), 4); ++i)
      head += (i ? ", " : "") + v[i].dump();
    return fmt::format("[{}{}] ({} items)", head, v.size() > 4 ? ", ..." : "", v.size());
  }
  return v.dump();
}
}  // namespace

std::string describe_gguf(const std::filesystem::path& path, bool json) {
  const GgufFile f = GgufFile::open(path);
  std::map<std::string, int64_t> count;
  uint64_t bytes = 0;
  int64_t params = 0;
  for (const auto& t : f.tensors()) {
    ++count[type_name(t.type)];
    bytes += t.nbytes;
    params += t.numel();
  }
  if (json) {
    nlohmann::json j;
    j["file"] = path.string();
    j["version"] = f.version();
    nlohmann::json md = nlohmann::json::object();
    for (const auto& k : f.keys()) {
      const auto& v = f.value(k);
      md[k] = v.is_array() && v.size() > 16 ? nlohmann::json(short_value(v)) : v;
    }
    j["metadata"] = md;
    nlohmann::json ts = nlohmann::json::array();
    for (const auto& t : f.tensors())
      ts.push_back(
          {{"name", t.name}, {"type", type_name(t.type)}, {"ne", t.ne}, {"bytes", t.nbytes}});
    j["tensors"] = ts;
    return json_output(j, 2) + "\n";
  }
  std::string out = fmt::format(
      "file        {} (GGUF v{}, {} keys, {} tensors, {:.2f}M parameters, {:.2f} MiB of data)\n",
      path.string(), f.version(), f.keys().size(), f.tensors().size(), params / 1e6,
      static_cast<double>(bytes) / (1 << 20));
  std::string types;
  for (const auto& [t, c] : count)
    types += fmt::format("{}{} x {}", types.empty() ? "" : ", ", c, t);
  out += fmt::format("types       {}\n\nmetadata\n", types);
  for (const auto& k : f.keys()) out += fmt::format("  {:<44} {}\n", k, short_value(f.value(k)));
  out += fmt::format("\n{:<36} {:<6} {:<20} {:>12}\n", "tensor", "type", "ne", "bytes");
  for (const auto& t : f.tensors())
    out += fmt::format("{:<36} {:<6} {:<20} {:>12}\n", t.name, type_name(t.type),
                       fmt::format("[{}]", fmt::join(t.ne, ", ")), t.nbytes);
  return out;
}

}  // namespace gptq::gguf
