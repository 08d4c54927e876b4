#include "calib/tokenizer_json_util.h"


#include "io/json_reader.h"
#include "util/error.h"

namespace gptq::tok {

JsonFile::JsonFile(const std::filesystem::path& file) : name_(file.string()) {
  root_ = read_json_input(file, "the file is damaged; copy it again from the base model");
  if (!root_.is_object()) bad("(top level)", "is not a JSON object");
}

void JsonFile::bad(const std::string& path, std::string_view problem) const {
  fail(
      "{}: key '{}' {}: the file is damaged or not in the Hugging Face format; copy it again "
      "from the base model",
      name_, path, problem);
}

void JsonFile::unsupported(const std::string& path, std::string_view what,
                           std::string_view supported) const {
  fail(
      "{}: {} {} is not supported (supported: {}); use a checkpoint whose tokenizer uses a "
      "supported type",
      name_, path, what, supported);
}

const json* JsonFile::find(const json& obj, std::string_view key) const {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

const json& JsonFile::at(const json& obj, std::string_view key, const std::string& path) const {
  const std::string p = key_path(path, key);
  if (!obj.is_object()) bad(path.empty() ? "(top level)" : path, "is not an object");
  const json* v = find(obj, key);
  if (!v) bad(p, "is missing");
  return *v;
}

std::string JsonFile::str(const json& obj, std::string_view key, const std::string& path) const {
  return as_str(at(obj, key, path), key_path(path, key));
}

std::optional<std::string> JsonFile::opt_str(const json& obj, std::string_view key,
                                             const std::string& path) const {
  const json* v = find(obj, key);
  if (!v) return std::nullopt;
  return as_str(*v, key_path(path, key));
}

bool JsonFile::boolean(const json& obj, std::string_view key, const std::string& path,
                       bool fallback) const {
  const json* v = find(obj, key);
  if (!v) return fallback;
  if (!v->is_boolean()) bad(key_path(path, key), "is not true/false");
  return v->get<bool>();
}

int64_t JsonFile::integer(const json& obj, std::string_view key, const std::string& path) const {
  return as_int(at(obj, key, path), key_path(path, key));
}

const std::string& JsonFile::as_str(const json& v, const std::string& path) const {
  if (!v.is_string()) bad(path, "is not a string");
  return v.get_ref<const std::string&>();
}

int64_t JsonFile::as_int(const json& v, const std::string& path) const {
  if (!v.is_number_integer()) bad(path, "is not an integer");
  return v.get<int64_t>();
}

const json& JsonFile::as_array(const json& v, const std::string& path) const {
  if (!v.is_array()) bad(path, "is not an array");
  return v;
}

const json& JsonFile::as_object(const json& v, const std::string& path) const {
  if (!v.is_object()) bad(path, "is not an object");
  return v;
}

}  // namespace gptq::tok
