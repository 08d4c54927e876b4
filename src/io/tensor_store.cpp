// TensorStore: resolving a checkpoint path and reading sharded checkpoints through
// model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: shard file}}).
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "io/json_reader.h"
#include "io/json_unique.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace gptq {

namespace fs = std::filesystem;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

[[noreturn]] void bad_index(const fs::path& index, const std::string& what) {
  fail(
      "invalid checkpoint index '{}': {}; the index does not match the shards (re-download the "
      "checkpoint)",
      index.string(), what);
}

std::string read_text(const fs::path& path) {
  std::error_code ec;
  if (const auto size = fs::file_size(path, ec); !ec && size > kMaxJsonInputBytes)
    fail("{} is {} bytes, more than the {} bytes a JSON input may have; re-download it",
         path.string(), size, kMaxJsonInputBytes);
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  if (in) ss << in.rdbuf();
  if (!in || in.bad()) {
    fail_code(ExitCode::kIo, "cannot read '{}'; check that the file exists and is readable",
              path.string());
  }
  return ss.str();
}

// A shard name from the weight_map: a plain relative path that stays inside the checkpoint dir.
void check_shard_name(const fs::path& index, const std::string& tensor, const std::string& shard) {
  const fs::path p(shard);
  bool escapes = shard.empty() || p.is_absolute();
  for (const auto& part : p) escapes = escapes || part == "..";
  if (escapes) {
    bad_index(index, fmt::format("tensor '{}' maps to shard '{}', expected a file name inside the "
                                 "checkpoint directory",
                                 tensor, shard));
  }
}

fs::path resolve_directory(const fs::path& dir) {
  if (fs::is_regular_file(dir / kIndexName)) return dir / kIndexName;
  if (fs::is_regular_file(dir / kSingleName)) return dir / kSingleName;
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".safetensors") {
      found.push_back(entry.path().filename().string());
    }
  }
  if (ec) {
    fail_code(ExitCode::kIo, "cannot list directory '{}': {}", dir.string(), ec.message());
  }
  std::sort(found.begin(), found.end());
  if (found.size() == 1) return dir / found.front();
  if (found.empty()) {
    fail_code(ExitCode::kIo,
              "no safetensors checkpoint in '{}': expected {}, {} or a single *.safetensors file",
              dir.string(), kIndexName, kSingleName);
  }
  fail(
      "'{}' holds {} .safetensors files ({}) but no {} to say how they form one checkpoint; "
      "pass one file or add the index",
      dir.string(), found.size(), fmt::join(found, ", "), kIndexName);
}

}  // namespace

TensorStore TensorStore::open(const fs::path& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) {
    fail_code(ExitCode::kIo,
              "checkpoint '{}' does not exist; pass a model directory, an index "
              "file or a .safetensors file",
              path.string());
  }
  const fs::path file = fs::is_directory(status) ? resolve_directory(path) : path;

  TensorStore store;
  store.root_ = file.parent_path();
  if (store.root_.empty()) store.root_ = ".";
  if (file.extension() != ".json") {
    store.files_.push_back(SafetensorsFile::open(file));
    for (const TensorInfo& t : store.files_.front()->tensors()) store.by_name_.emplace(t.name, &t);
    store.metadata_ = store.files_.front()->metadata();
    return store;
  }

  // Sharded checkpoint.
  JsonParseResult parsed = parse_json_unique_keys(read_text(file));
  if (!parsed.syntax_error.empty()) {
    bad_index(file, fmt::format("not valid JSON ({})", parsed.syntax_error));
  }
  if (parsed.duplicate) {
    const auto& dup = *parsed.duplicate;
    if (dup.parents == std::vector<std::string>{"weight_map"}) {
      bad_index(file, fmt::format("tensor '{}' is listed twice in the weight_map", dup.key));
    }
    bad_index(file, fmt::format("duplicate key '{}'", dup.key));
  }
  const nlohmann::json& root = parsed.value;
  if (!root.is_object()) {
    bad_index(file, fmt::format("the index is a JSON {}, expected an object", root.type_name()));
  }
  const auto wm = root.find("weight_map");
  if (wm == root.end() || !wm->is_object()) {
    bad_index(file, "expected an object \"weight_map\" mapping tensor names to shard files");
  }
  std::map<std::string, std::string> weight_map;
  std::set<std::string> shard_names;
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) {
      bad_index(file, fmt::format("weight_map entry of tensor '{}' is a {}, expected a shard file "
                                  "name",
                                  tensor, shard.type_name()));
    }
    check_shard_name(file, tensor, shard.get<std::string>());
    weight_map.emplace(tensor, shard.get<std::string>());
    shard_names.insert(shard.get<std::string>());
  }

  for (const std::string& shard : shard_names) {
    std::error_code lookup;  // e.g. a name too long for the file system: a damaged index
    const bool present = fs::is_regular_file(store.root_ / shard, lookup);
    if (lookup && lookup != std::errc::no_such_file_or_directory && lookup != std::errc::not_a_directory) {
      bad_index(file, fmt::format("shard '{}' cannot be looked up ({})", shard.substr(0, 200), lookup.message()));
    }
    if (!present) {
      fail_code(ExitCode::kIo,
                "checkpoint index '{}' names shard '{}', but '{}' does not exist; the checkpoint "
                "is incomplete (download the missing shard)",
                file.string(), shard, (store.root_ / shard).string());
    }
  }
  for (const std::string& shard : shard_names) {
    store.files_.push_back(SafetensorsFile::open(store.root_ / shard));
    for (const TensorInfo& t : store.files_.back()->tensors()) {
      const auto [it, inserted] = store.by_name_.emplace(t.name, &t);
      if (!inserted) {
        bad_index(file, fmt::format("tensor '{}' is present in two shards, '{}' and '{}'", t.name,
                                    it->second->file->filename().string(), shard));
      }
      const auto listed = weight_map.find(t.name);
      if (listed == weight_map.end()) {
        bad_index(file, fmt::format("shard '{}' holds tensor '{}', which the weight_map does not "
                                    "list",
                                    shard, t.name));
      }
      if (listed->second != shard) {
        bad_index(file, fmt::format("tensor '{}' is in shard '{}' but the weight_map maps it to "
                                    "'{}'",
                                    t.name, shard, listed->second));
      }
    }
  }
  for (const auto& [tensor, shard] : weight_map) {
    if (store.by_name_.find(tensor) == store.by_name_.end()) {
      bad_index(file, fmt::format("the weight_map maps tensor '{}' to shard '{}', but that shard "
                                  "has no such tensor",
                                  tensor, shard));
    }
  }

  if (!store.files_.empty()) store.metadata_ = store.files_.front()->metadata();
  if (const auto meta = root.find("metadata"); meta != root.end()) {
    if (!meta->is_object()) {
      bad_index(file, fmt::format("\"metadata\" is a {}, expected an object", meta->type_name()));
    }
    for (const auto& [key, value] : meta->items()) {
      store.metadata_.emplace(key, value.is_string() ? value.get<std::string>() : value.dump());
    }
  }
  return store;
}

const TensorInfo* TensorStore::find(std::string_view name) const {
  const auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorInfo& TensorStore::get(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (t == nullptr) {
    fail(
        "tensor '{}' not found in checkpoint '{}' ({} tensors); the checkpoint does not match "
        "the model architecture in config.json",
        name, root_.string(), by_name_.size());
  }
  return *t;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& [name, t] : by_name_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace gptq
