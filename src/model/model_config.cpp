#include "model/model_config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "model/json_util.h"
#include "model/model_validation.h"

namespace gptq {

namespace fs = std::filesystem;

namespace {

// The language model of a multimodal checkpoint: text_config (or the top level, as older
// Qwen2-VL configs keep it) over the defaults of its family's transformers config class.
void load_text_tower(ModelConfig& c, const ArchSpec& wrapper_default) {
  const std::string file = (c.dir / "config.json").string();
  const bool nested = c.raw.contains("text_config") && !c.raw.at("text_config").is_null();
  if (nested && !c.raw.at("text_config").is_object()) fail("{}: text_config must be an object", file);
  const nlohmann::json& text = nested ? c.raw.at("text_config") : c.raw;
  const ArchSpec* arch = &wrapper_default;
  if (nested && text.contains("model_type")) {
    const JsonObject t(text, file + " text_config");
    const std::string type = t.string("model_type");
    arch = find_arch(type);
    if (!arch)
      fail("{}: the language model of this {} checkpoint has model_type '{}', which is not supported",
           file, c.model_type, type);
  }
  nlohmann::json merged = nlohmann::json::parse(arch->text_defaults);
  for (const auto& [k, v] : text.items()) merged[k] = v;
  // Keys transformers reads from the whole model's config when the text part lacks them; the head
  // is tied when either config says so.
  for (const char* key : {"torch_dtype", "dtype"})
    if (!text.contains(key) && c.raw.contains(key)) merged[key] = c.raw.at(key);
  if (nested && c.raw.contains("tie_word_embeddings")) {
    const auto& t = c.raw.at("tie_word_embeddings");
    if (t.is_boolean() && t.get<bool>()) merged["tie_word_embeddings"] = true;
  }
  const nlohmann::json overrides = nlohmann::json::parse(arch->wrapper_overrides);
  for (auto it = overrides.begin(); it != overrides.end(); ++it) merged[it.key()] = it.value();
  c.arch = arch;
  c.text_tower = true;
  c.text_raw = std::move(merged);
}

}  // namespace

ModelLayout model_layout(const ModelConfig& config, const std::function<bool(const std::string&)>& has_tensor) {
  const ArchSpec& arch = config.require_arch();
  ModelLayout l = arch.model;
  if (!config.text_tower) return l;
  struct Variant {
    const char* model_prefix;  // replaces the leading "model."
    const char* head;
  };
  static const Variant variants[] = {{"model.language_model.", "lm_head"},
                                     {"language_model.model.", "language_model.lm_head"},
                                     {"model.", "lm_head"}};
  auto rename = [](const std::string& name, const char* prefix) {
    return name.starts_with("model.") ? prefix + name.substr(6) : name;
  };
  for (const Variant& v : variants) {
    if (!has_tensor(rename(l.embed, v.model_prefix) + ".weight")) continue;
    l.embed = rename(l.embed, v.model_prefix);
    l.final_norm = rename(l.final_norm, v.model_prefix);
    if (!l.lm_head.empty()) l.lm_head = v.head;
    return l;
  }
  fail("{}: cannot find the language model's token embedding ({}.weight under model.language_model., "
       "language_model.model. or model.)",
       (config.dir / "config.json").string(), l.embed);
}

ModelConfig ModelConfig::load(const fs::path& dir) {
  ModelConfig c;
  c.dir = dir;
  const fs::path file = dir / "config.json";
  if (!fs::exists(file))
    fail_code(ExitCode::kIo,
              "{} not found: a Hugging Face model directory needs config.json next to its "
              "*.safetensors files (copy it from the model's repository)",
              file.string());
  c.raw = read_json_file(file);
  if (!c.raw.is_object()) fail("{}: expected a JSON object", file.string());
  JsonObject cfg(c.raw, file.string());
  c.model_type = cfg.string_or("model_type", "");
  if (cfg.has("architectures") && c.raw["architectures"].is_array() && !c.raw["architectures"].empty() &&
      c.raw["architectures"][0].is_string())
    c.architecture = c.raw["architectures"][0].get<std::string>();
  c.torch_dtype = cfg.string_or("torch_dtype", cfg.string_or("dtype", ""));
  c.text_raw = c.raw;
  c.arch = find_arch(c.model_type);
  if (!c.arch) {
    if (const ArchSpec* wrapper = find_wrapper_arch(c.model_type)) load_text_tower(c, *wrapper);
  }
  if (c.arch) {
    c.hp = c.arch->read_hparams(c.text_raw);
    validate_hparams(c.hp, file.string());
  }
  return c;
}

const ArchSpec& ModelConfig::require_arch() const {
  if (arch) return *arch;
  std::string known;
  for (const ArchSpec* a : all_archs())
    for (const auto& t : a->model_types) known += (known.empty() ? "" : ", ") + t;
  for (const ArchSpec* a : all_archs())
    for (const auto& t : a->wrapper_types) known += ", " + t;
  fail("{}: model_type '{}' ({}) is not supported; supported: {}. A new family is one file in "
       "src/arch/ plus a registry line",
       (dir / "config.json").string(), model_type, architecture.empty() ? "no architectures" : architecture,
       known);
}

int64_t ModelConfig::default_seqlen() const {
  JsonObject cfg(text_raw.is_null() ? raw : text_raw, "config.json");
  const auto n = cfg.first_integer({"max_position_embeddings", "seq_length", "n_positions"});
  return std::min<int64_t>(4028, n.value_or(2048));
}

namespace {
fs::path hub_cache_dir() {
  if (const char* p = std::getenv("HF_HUB_CACHE"); p && *p) return p;
  if (const char* p = std::getenv("HUGGINGFACE_HUB_CACHE"); p && *p) return p;
  if (const char* p = std::getenv("HF_HOME"); p && *p) return fs::path(p) / "hub";
  if (const char* p = std::getenv("XDG_CACHE_HOME"); p && *p) return fs::path(p) / "huggingface" / "hub";
  if (const char* p = std::getenv("HOME"); p && *p) return fs::path(p) / ".cache" / "huggingface" / "hub";
  return {};
}
}  // namespace

fs::path resolve_model_path(const std::string& model) {
  if (fs::exists(model)) return fs::path(model);
  const auto slash = model.find('/');
  const bool looks_like_id = slash != std::string::npos && slash > 0 && slash + 1 < model.size() &&
                             model.find('/', slash + 1) == std::string::npos &&
                             model.find("..") == std::string::npos && model[0] != '.';
  if (!looks_like_id)
    fail_code(ExitCode::kIo, "model '{}' not found: give a model directory or a Hugging Face id (org/name)",
              model);
  const fs::path cache = hub_cache_dir();
  const fs::path repo = cache / ("models--" + model.substr(0, slash) + "--" + model.substr(slash + 1));
  std::string revision;
  if (std::ifstream ref(repo / "refs" / "main"); ref) std::getline(ref, revision);
  if (!revision.empty() && fs::is_directory(repo / "snapshots" / revision))
    return repo / "snapshots" / revision;
  // No refs/main: a single snapshot is unambiguous.
  if (fs::is_directory(repo / "snapshots")) {
    std::vector<fs::path> snaps;
    for (const auto& e : fs::directory_iterator(repo / "snapshots"))
      if (e.is_directory()) snaps.push_back(e.path());
    if (snaps.size() == 1) return snaps[0];
  }
  fail_code(ExitCode::kIo,
            "model '{}' is neither a local directory nor in the Hugging Face cache ({}): download it "
            "first (e.g. `huggingface-cli download {}`), or set HF_HUB_CACHE / HF_HOME",
            model, repo.string(), model);
}

}  // namespace gptq
