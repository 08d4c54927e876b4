// Checked access to tokenizer.json / tokenizer_config.json: every accessor knows the file and
// the key path it reads ("model.merges[3]"), so a malformed file is reported as a gptq::Error
// naming both instead of a bare nlohmann exception.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace gptq::tok {

using nlohmann::json;

class JsonFile {
 public:
  // Reads and parses the file; errors name the file.
  explicit JsonFile(const std::filesystem::path& file);

  const json& root() const { return root_; }
  const std::string& name() const { return name_; }

  // Child key of an object (error if obj is not an object or the key is missing / null).
  const json& at(const json& obj, std::string_view key, const std::string& path) const;
  // Child key or nullptr if absent or null.
  const json* find(const json& obj, std::string_view key) const;

  std::string str(const json& obj, std::string_view key, const std::string& path) const;
  std::optional<std::string> opt_str(const json& obj, std::string_view key,
                                     const std::string& path) const;
  bool boolean(const json& obj, std::string_view key, const std::string& path, bool fallback) const;
  int64_t integer(const json& obj, std::string_view key, const std::string& path) const;

  // Type checks of a value already found at `path`.
  const std::string& as_str(const json& v, const std::string& path) const;
  int64_t as_int(const json& v, const std::string& path) const;
  const json& as_array(const json& v, const std::string& path) const;
  const json& as_object(const json& v, const std::string& path) const;

  // The error every accessor raises: "<file>: key '<path>' <problem>: ...".
  [[noreturn]] void bad(const std::string& path, std::string_view problem) const;
  // An unsupported (but well-formed) setting: "<file>: <path> <what> is not supported ...".
  [[noreturn]] void unsupported(const std::string& path, std::string_view what,
                                std::string_view supported) const;

 private:
  std::string name_;
  json root_;
};

// "a.b" style child path.
inline std::string key_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}
inline std::string index_path(const std::string& parent, size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

}  // namespace gptq::tok
