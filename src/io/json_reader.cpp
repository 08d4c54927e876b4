#include "io/json_reader.h"

#include <fstream>
#include <system_error>

#include "io/json_unique.h"
#include "util/error.h"

namespace gptq {

nlohmann::json parse_json_input(std::string_view text, const std::string& source,
                                std::string_view advice) {
  JsonParseResult parsed = parse_json_unique_keys(text);
  if (!parsed.syntax_error.empty())
    fail("{} is not valid JSON ({}): {}", source, parsed.syntax_error, advice);
  if (parsed.duplicate) {
    std::string key;
    for (const auto& p : parsed.duplicate->parents) key += p + ".";
    key += parsed.duplicate->key;
    fail("{}: key '{}' appears twice in one object; keep one ({})", source, key, advice);
  }
  return std::move(parsed.value);
}

nlohmann::json read_json_input(const std::filesystem::path& path, std::string_view advice,
                               uint64_t max_bytes) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (!exists) fail_code(ExitCode::kIo, "{} not found: check the path", path.string());
  if (std::filesystem::is_directory(path, ec))
    fail_code(ExitCode::kIo, "{} is a directory, expected a JSON file", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail_code(ExitCode::kIo, "cannot open {}: check that the file exists and is readable",
              path.string());
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (!ec && size > max_bytes)
    fail("{} is {} bytes, more than the {} bytes a JSON input may have: {}", path.string(), size,
         max_bytes, advice);
  std::string text;
  if (!ec) text.reserve(static_cast<size_t>(size));
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > max_bytes)  // a file that grew while read
      fail("{} is more than the {} bytes a JSON input may have: {}", path.string(), max_bytes,
           advice);
  }
  if (in.bad()) fail_code(ExitCode::kIo, "cannot read {}", path.string());
  return parse_json_input(text, path.string(), advice);
}

std::string json_output(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gptq
