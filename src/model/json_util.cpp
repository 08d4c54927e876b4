#include "model/json_util.h"

#include <cmath>
#include <cstdint>

#include "io/json_reader.h"

namespace gptq {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  return read_json_input(path, "the file is damaged; download it again");
}

const nlohmann::json& JsonObject::get(const std::string& key) const {
  if (!has(key)) fail("{}: key '{}' is missing", source_, key);
  return j_.at(key);
}

int64_t JsonObject::integer(const std::string& key) const {
  const auto& v = get(key);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    fail("{}: '{}' is too large, got {}", source_, key, v.dump());
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    // A whole number in the int64 range (checked before the cast, which is undefined outside it).
    const double d = v.get<double>();
    if (std::trunc(d) == d && d >= -9.2e18 && d <= 9.2e18) return static_cast<int64_t>(d);
  }
  fail("{}: '{}' must be an integer, got {}", source_, key, v.dump());
}

double JsonObject::number(const std::string& key) const {
  const auto& v = get(key);
  if (!v.is_number()) fail("{}: '{}' must be a number, got {}", source_, key, v.dump());
  return v.get<double>();
}

std::string JsonObject::string(const std::string& key) const {
  const auto& v = get(key);
  if (!v.is_string()) fail("{}: '{}' must be a string, got {}", source_, key, v.dump());
  return v.get<std::string>();
}

bool JsonObject::boolean(const std::string& key) const {
  const auto& v = get(key);
  if (!v.is_boolean()) fail("{}: '{}' must be true or false, got {}", source_, key, v.dump());
  return v.get<bool>();
}

int64_t JsonObject::integer_or(const std::string& key, int64_t def) const {
  return has(key) ? integer(key) : def;
}
double JsonObject::number_or(const std::string& key, double def) const {
  return has(key) ? number(key) : def;
}
std::string JsonObject::string_or(const std::string& key, const std::string& def) const {
  return has(key) ? string(key) : def;
}
bool JsonObject::boolean_or(const std::string& key, bool def) const {
  return has(key) ? boolean(key) : def;
}

std::optional<int64_t> JsonObject::first_integer(std::initializer_list<const char*> keys) const {
  for (const char* k : keys)
    if (has(k)) return integer(k);
  return std::nullopt;
}

}  // namespace gptq
