// Typed access to JSON configuration files with errors that name the file and the key.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>

#include "util/error.h"

namespace gptq {

// Parses a whole JSON file; errors name the file and the parse position.
nlohmann::json read_json_file(const std::filesystem::path& path);

// A view of one JSON object read from `source` (a file name used in messages).
class JsonObject {
 public:
  JsonObject(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {}

  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  const nlohmann::json& raw() const { return j_; }
  const std::string& source() const { return source_; }

  // Required keys: error "<source>: key 'k' is missing" / "... must be an integer".
  int64_t integer(const std::string& key) const;
  double number(const std::string& key) const;
  std::string string(const std::string& key) const;
  bool boolean(const std::string& key) const;
  // Optional keys with a default (a present key of the wrong type is still an error).
  int64_t integer_or(const std::string& key, int64_t def) const;
  double number_or(const std::string& key, double def) const;
  std::string string_or(const std::string& key, const std::string& def) const;
  bool boolean_or(const std::string& key, bool def) const;
  // First present key of several (e.g. "num_key_value_heads", "num_attention_heads").
  std::optional<int64_t> first_integer(std::initializer_list<const char*> keys) const;

 private:
  const nlohmann::json& get(const std::string& key) const;
  const nlohmann::json& j_;
  std::string source_;
};

}  // namespace gptq
