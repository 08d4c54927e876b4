#include "calib/tokenizer_pattern.h"

namespace gptq::tok {

std::unique_ptr<Regex> parse_pattern(const JsonFile& f, const json& j, const std::string& path) {
  f.as_object(j, path);
  if (const json* s = f.find(j, "String"))
    return std::make_unique<Regex>(regex_escape(f.as_str(*s, key_path(path, "String"))),
                                   f.name() + ": " + key_path(path, "String"));
  if (const json* r = f.find(j, "Regex"))
    return std::make_unique<Regex>(f.as_str(*r, key_path(path, "Regex")),
                                   f.name() + ": " + key_path(path, "Regex"));
  f.bad(path, "has neither a \"String\" nor a \"Regex\" entry");
}

std::string regex_replace_all(const Regex& re, std::string_view text, std::string_view content) {
  std::string out;
  out.reserve(text.size());
  size_t prev = 0;
  for (const auto& [b, e] : re.find_all(text)) {
    out.append(text, prev, b - prev);
    out += content;
    prev = e;
  }
  out.append(text, prev, std::string_view::npos);
  return out;
}

}  // namespace gptq::tok
