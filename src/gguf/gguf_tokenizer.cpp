#include "gguf/gguf_tokenizer.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

#include "util/error.h"

namespace gptq::gguf {

namespace {
using nlohmann::json;

json read_json(const std::filesystem::path& p) {
  std::ifstream f(p);
  if (!f) fail_code(ExitCode::kIo, "cannot read {}", p.string());
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    fail("{} is not valid JSON: {}", p.string(), e.what());
  }
}

// The regexes llama.cpp implements, as the tokenizer.json files of those families spell them.
const std::map<std::string, std::string>& known_split_regexes() {
  static const std::map<std::string, std::string> m{
      {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
       "llama-bpe"},
      {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
       "qwen2"},
      {R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))", "gpt-2"},
  };
  return m;
}

bool looks_special(const std::string& t) {
  return (t.starts_with("<|") && t.ends_with("|>")) || t == "<pad>" || t == "<mask>" ||
         (t.starts_with("<unused") && t.ends_with(">"));
}

std::optional<uint32_t> token_id(const json& tok_cfg, const char* key,
                                 const std::map<std::string, uint32_t>& ids) {
  if (!tok_cfg.contains(key)) return std::nullopt;
  const json& v = tok_cfg.at(key);
  std::string s;
  if (v.is_string())
    s = v.get<std::string>();
  else if (v.is_object() && v.contains("content") && v.at("content").is_string())
    s = v.at("content").get<std::string>();
  else
    return std::nullopt;
  const auto it = ids.find(s);
  if (it == ids.end()) return std::nullopt;
  return it->second;
}
}  // namespace

std::string detect_pre_tokenizer(const json& pre) {
  if (!pre.is_object()) return "";
  const std::string type = pre.value("type", "");
  if (type == "ByteLevel") return pre.value("use_regex", true) ? "gpt-2" : "";
  if (type == "Sequence" && pre.contains("pretokenizers") && pre.at("pretokenizers").is_array()) {
    std::string found;
    for (const json& p : pre.at("pretokenizers")) {
      const std::string t = p.value("type", "");
      if (t == "Split" && p.contains("pattern") && p.at("pattern").contains("Regex")) {
        const auto& m = known_split_regexes();
        const auto it = m.find(p.at("pattern").at("Regex").get<std::string>());
        if (it == m.end() || !found.empty()) return "";
        found = it->second;
      } else if (t == "ByteLevel") {
        if (p.value("use_regex", true)) {
          if (!found.empty()) return "";
          found = "gpt-2";
        }
      } else {
        return "";
      }
    }
    return found;
  }
  return "";
}

GgufVocab read_vocab(const std::filesystem::path& dir, int64_t vocab_size,
                     const std::string& pre_override) {
  const auto tj_path = dir / "tokenizer.json";
  if (!std::filesystem::exists(tj_path))
    fail(
        "{}: no tokenizer.json; GGUF export needs the byte-level BPE tokenizer of the model "
        "(SentencePiece-only "
        "checkpoints with just tokenizer.model are not supported)",
        dir.string());
  const json tj = read_json(tj_path);
  const json& model = tj.at("model");
  if (model.value("type", "") != "BPE")
    fail("{}: the tokenizer model is {}; GGUF export writes byte-level BPE tokenizers only",
         tj_path.string(), model.value("type", "?"));
  const json decoder = tj.value("decoder", json());
  if (!decoder.is_object() || decoder.value("type", "") != "ByteLevel")
    fail(
        "{}: the tokenizer's decoder is not ByteLevel; only byte-level BPE (GPT-2 style) "
        "tokenizers are exported",
        tj_path.string());
  GgufVocab v;
  v.pre =
      pre_override.empty() ? detect_pre_tokenizer(tj.value("pre_tokenizer", json())) : pre_override;
  if (v.pre.empty())
    fail(
        "{}: the pre-tokenizer {} matches none of llama.cpp's known ones (gpt-2, llama-bpe, "
        "qwen2); name one with "
        "--tokenizer-pre",
        tj_path.string(), tj.value("pre_tokenizer", json()).dump());

  std::map<std::string, uint32_t> ids;
  int64_t max_id = -1;
  for (const auto& [tok, id] : model.at("vocab").items()) {
    ids[tok] = id.get<uint32_t>();
    max_id = std::max<int64_t>(max_id, id.get<int64_t>());
  }
  std::map<int64_t, std::pair<std::string, bool>> added;  // id -> (content, special)
  if (tj.contains("added_tokens"))
    for (const json& a : tj.at("added_tokens")) {
      const int64_t id = a.at("id").get<int64_t>();
      added[id] = {a.at("content").get<std::string>(), a.value("special", false)};
      ids[a.at("content").get<std::string>()] = static_cast<uint32_t>(id);
      max_id = std::max(max_id, id);
    }
  if (max_id >= vocab_size)
    fail("{}: token id {} is outside config.json's vocab_size {}", tj_path.string(), max_id,
         vocab_size);
  std::vector<std::string> by_id(static_cast<size_t>(vocab_size));
  std::vector<bool> present(static_cast<size_t>(vocab_size), false);
  for (const auto& [tok, id] : ids) {
    by_id[id] = tok;
    present[id] = true;
  }
  for (int64_t i = 0; i < vocab_size; ++i) {
    if (!present[static_cast<size_t>(i)]) {
      v.tokens.push_back("[PAD" + std::to_string(i) + "]");
      v.types.push_back(static_cast<int32_t>(TokenType::kUnused));
      continue;
    }
    v.tokens.push_back(by_id[static_cast<size_t>(i)]);
    const auto a = added.find(i);
    if (a == added.end())
      v.types.push_back(static_cast<int32_t>(TokenType::kNormal));
    else if (a->second.second || looks_special(a->second.first))
      v.types.push_back(static_cast<int32_t>(TokenType::kControl));
    else
      v.types.push_back(static_cast<int32_t>(TokenType::kUserDefined));
  }
  if (model.contains("merges"))
    for (const json& m : model.at("merges")) {
      if (m.is_string())
        v.merges.push_back(m.get<std::string>());
      else if (m.is_array() && m.size() == 2)
        v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      else
        fail("{}: a merge is neither \"a b\" nor [\"a\", \"b\"]", tj_path.string());
    }

  json tok_cfg = json::object();
  if (std::filesystem::exists(dir / "tokenizer_config.json"))
    tok_cfg = read_json(dir / "tokenizer_config.json");
  json cfg = json::object();
  if (std::filesystem::exists(dir / "config.json")) cfg = read_json(dir / "config.json");
  auto from_cfg = [&](const char* key) -> std::optional<uint32_t> {
    if (cfg.contains(key) && cfg.at(key).is_number_integer()) {
      const int64_t id = cfg.at(key).get<int64_t>();
      if (id >= 0 && id < vocab_size) return static_cast<uint32_t>(id);
    }
    return std::nullopt;
  };
  v.bos = token_id(tok_cfg, "bos_token", ids);
  if (!v.bos) v.bos = from_cfg("bos_token_id");
  v.eos = token_id(tok_cfg, "eos_token", ids);
  if (!v.eos) v.eos = from_cfg("eos_token_id");
  v.unk = token_id(tok_cfg, "unk_token", ids);
  v.pad = token_id(tok_cfg, "pad_token", ids);
  if (!v.pad) v.pad = from_cfg("pad_token_id");
  if (tok_cfg.contains("add_bos_token") && tok_cfg.at("add_bos_token").is_boolean())
    v.add_bos = tok_cfg.at("add_bos_token").get<bool>();
  if (tok_cfg.contains("add_eos_token") && tok_cfg.at("add_eos_token").is_boolean())
    v.add_eos = tok_cfg.at("add_eos_token").get<bool>();
  if (tok_cfg.contains("add_prefix_space") && tok_cfg.at("add_prefix_space").is_boolean())
    v.add_space_prefix = tok_cfg.at("add_prefix_space").get<bool>();
  return v;
}

void write_vocab(GgufWriter& w, const GgufVocab& v) {
  w.add_string("tokenizer.ggml.model", v.model);
  w.add_string("tokenizer.ggml.pre", v.pre);
  w.add_string_array("tokenizer.ggml.tokens", v.tokens);
  w.add_i32_array("tokenizer.ggml.token_type", v.types);
  w.add_string_array("tokenizer.ggml.merges", v.merges);
  if (v.bos) w.add_u32("tokenizer.ggml.bos_token_id", *v.bos);
  if (v.eos) w.add_u32("tokenizer.ggml.eos_token_id", *v.eos);
  if (v.unk) w.add_u32("tokenizer.ggml.unknown_token_id", *v.unk);
  if (v.pad) w.add_u32("tokenizer.ggml.padding_token_id", *v.pad);
  if (v.add_bos) w.add_bool("tokenizer.ggml.add_bos_token", *v.add_bos);
  if (v.add_eos) w.add_bool("tokenizer.ggml.add_eos_token", *v.add_eos);
  if (v.add_space_prefix) w.add_bool("tokenizer.ggml.add_space_prefix", *v.add_space_prefix);
}

}  // namespace gptq::gguf
