#include "calib/tokenizer_config.h"

#include "calib/tokenizer_json_util.h"

namespace gptq::tok {

namespace {

// A token given as "<s>" or as {"content": "<s>", ...} (transformers' AddedToken form).
std::optional<std::string> token_string(const JsonFile& f, const json& root, std::string_view key) {
  const json* v = f.find(root, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) return f.str(*v, "content", std::string(key));
  f.bad(std::string(key), "is neither a string nor an object with \"content\"");
}

}  // namespace

TokenizerConfig read_tokenizer_config(const std::filesystem::path& dir) {
  TokenizerConfig c;
  const auto file = dir / "tokenizer_config.json";
  if (std::filesystem::exists(file)) {
    const JsonFile f(file);
    const json& r = f.root();
    c.present = true;
    c.tokenizer_class = f.opt_str(r, "tokenizer_class", "").value_or("");
    if (f.find(r, "add_bos_token")) c.add_bos_token = f.boolean(r, "add_bos_token", "", false);
    if (f.find(r, "add_eos_token")) c.add_eos_token = f.boolean(r, "add_eos_token", "", false);
    c.bos_token = token_string(f, r, "bos_token");
    c.eos_token = token_string(f, r, "eos_token");
  }
  // Older checkpoints keep the special tokens in special_tokens_map.json only.
  const auto map_file = dir / "special_tokens_map.json";
  if ((!c.bos_token || !c.eos_token) && std::filesystem::exists(map_file)) {
    const JsonFile f(map_file);
    if (!c.bos_token) c.bos_token = token_string(f, f.root(), "bos_token");
    if (!c.eos_token) c.eos_token = token_string(f, f.root(), "eos_token");
  }
  return c;
}

bool rebuilds_post_processor(const std::string& tokenizer_class) {
  std::string base = tokenizer_class;
  if (base.ends_with("Fast")) base.resize(base.size() - 4);
  return base == "LlamaTokenizer" || base == "CodeLlamaTokenizer" || base == "GemmaTokenizer";
}

}  // namespace gptq::tok
