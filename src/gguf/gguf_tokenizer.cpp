#include "gguf/gguf_tokenizer.h"

#include <nlohmann/json.hpp>

#include <sentencepiece_processor.h>

#include <cctype>
#include <fstream>
#include <iterator>
#include <map>

#include "calib/sentencepiece_check.h"
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
  return (t.starts_with("<|") && t.ends_with("|>")) ||
         (t.starts_with("<\uff5c") && t.ends_with("\uff5c>")) || t == "<pad>" || t == "<mask>" ||
         t == "<2mass>" || t == "[@BOS@]" || (t.starts_with("<unused") && t.ends_with(">"));
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
// gguf-py's SpecialVocab: bos / eos / unk / pad from tokenizer_config.json (a token string or
// {"content": ...}) looked up in `ids`, else config.json's *_token_id; add_bos / add_eos /
// add_prefix_space flags of tokenizer_config.json.
void read_special_tokens(const std::filesystem::path& dir, int64_t vocab_size,
                         const std::map<std::string, uint32_t>& ids, GgufVocab& v) {
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
}

// True for the byte-fallback pieces "<0x00>".."<0xFF>".
bool is_byte_piece(const std::string& t) {
  return t.size() == 6 && t.starts_with("<0x") && t[5] == '>' &&
         std::isxdigit(static_cast<unsigned char>(t[3])) != 0 &&
         std::isxdigit(static_cast<unsigned char>(t[4])) != 0;
}

// What llama.cpp's SPM tokenizer needs to know of a serialized sentencepiece ModelProto:
// trainer_spec.model_type (1 unigram, the default; 2 BPE) and normalizer_spec.add_dummy_prefix
// (default true). Only varint and length-delimited fields are walked; a malformed message leaves
// the defaults (the library's parser reports it).
struct SpmFacts {
  uint64_t model_type = 1;
  bool add_dummy_prefix = true;
};

template <typename F>
bool proto_fields(std::string_view s, F&& on_field) {
  size_t pos = 0;
  auto varint = [&](uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && pos < s.size(); shift += 7) {
      const auto b = static_cast<uint8_t>(s[pos++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (pos < s.size()) {
    uint64_t tag = 0, v = 0;
    if (!varint(tag)) return false;
    switch (tag & 7) {
      case 0:
        if (!varint(v)) return false;
        on_field(tag >> 3, v, std::string_view());
        break;
      case 1:
      case 5: {
        const size_t n = (tag & 7) == 1 ? 8 : 4;
        if (s.size() - pos < n) return false;
        pos += n;
        break;
      }
      case 2:
        if (!varint(v) || v > s.size() - pos) return false;
        on_field(tag >> 3, 0, s.substr(pos, static_cast<size_t>(v)));
        pos += static_cast<size_t>(v);
        break;
      default:
        return false;
    }
  }
  return true;
}

SpmFacts spm_facts(std::string_view model) {
  SpmFacts f;
  proto_fields(model, [&](uint64_t field, uint64_t, std::string_view bytes) {
    if (field == 2)  // trainer_spec
      proto_fields(bytes, [&](uint64_t tf, uint64_t v, std::string_view) {
        if (tf == 3) f.model_type = v;
      });
    if (field == 3)  // normalizer_spec
      proto_fields(bytes, [&](uint64_t nf, uint64_t v, std::string_view) {
        if (nf == 3) f.add_dummy_prefix = v != 0;
      });
  });
  return f;
}

// A token list of `vocab_size` entries, "[PAD<i>]" unused (score -10000) where nothing is set.
GgufVocab padded_llama_vocab(int64_t vocab_size) {
  GgufVocab v;
  v.model = "llama";
  v.pre = "default";
  for (int64_t i = 0; i < vocab_size; ++i) v.tokens.push_back("[PAD" + std::to_string(i) + "]");
  v.scores.assign(static_cast<size_t>(vocab_size), -10000.0f);
  v.types.assign(static_cast<size_t>(vocab_size), static_cast<int32_t>(TokenType::kUnused));
  return v;
}

// The first id of each token string.
std::map<std::string, uint32_t> ids_of(const GgufVocab& v) {
  std::map<std::string, uint32_t> ids;
  for (size_t i = 0; i < v.tokens.size(); ++i) ids.emplace(v.tokens[i], static_cast<uint32_t>(i));
  return ids;
}

// convert_hf_to_gguf.py's _create_vocab_sentencepiece: the pieces of tokenizer.model with their
// scores and types (user-defined pieces of the model stay normal, as the converter leaves them),
// then added_tokens.json (user-defined) and tokenizer_config.json's added_tokens_decoder (control
// when special or special-looking, else user-defined with "\u2581" as " "), score -1000. For
// Phi-3 (`phi3`, Phi3MiniModel.set_vocab) an added token is control only when marked special, its
// text is kept, and tokenizer.json's added_tokens override too.
GgufVocab read_sentencepiece_vocab(const std::filesystem::path& dir, int64_t vocab_size,
                                   bool phi3) {
  const auto file = dir / "tokenizer.model";
  const std::string name = file.string();
  SpmFacts facts;
  {
    std::ifstream in(file, std::ios::binary);
    if (!in) fail_code(ExitCode::kIo, "cannot read {}", name);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    tok::check_sentencepiece_model(bytes, name);
    facts = spm_facts(bytes);
  }
  sentencepiece::SentencePieceProcessor sp;
  if (const auto status = sp.Load(name); !status.ok())
    fail("{} is not a sentencepiece model: {}", name, status.ToString());
  GgufVocab v = padded_llama_vocab(vocab_size);
  // llama.cpp adds the space prefix unless told not to; the model may say it adds none (Gemma).
  if (!facts.add_dummy_prefix) v.add_space_prefix = false;
  if (facts.model_type != 2)
    v.warnings.push_back(fmt::format(
        "{} is a sentencepiece {} model; llama.cpp's SPM tokenizer (tokenizer.ggml.model "
        "\"llama\") merges pieces by score as a BPE model does, so its tokenization of some "
        "texts differs from sentencepiece's (convert_hf_to_gguf.py exports it the same way)",
        name, facts.model_type == 1 ? "unigram" : "word/char"));
  const int pieces = sp.GetPieceSize();
  if (pieces > vocab_size)
    fail("{}: {} pieces, more than config.json's vocab_size {}", name, pieces, vocab_size);
  for (int id = 0; id < pieces; ++id) {
    const auto i = static_cast<size_t>(id);
    v.tokens[i] = sp.IdToPiece(id);
    v.scores[i] = sp.GetScore(id);
    TokenType t = TokenType::kNormal;
    if (sp.IsUnknown(id))
      t = TokenType::kUnknown;
    else if (sp.IsControl(id))
      t = TokenType::kControl;
    else if (sp.IsUnused(id))
      t = TokenType::kUnused;
    else if (sp.IsByte(id))
      t = TokenType::kByte;
    v.types[i] = static_cast<int32_t>(t);
    if (t == TokenType::kUnknown && !v.unk) v.unk = static_cast<uint32_t>(id);
  }
  auto in_range = [&](int64_t id, const std::string& where) {
    if (id < 0 || id >= vocab_size)
      fail("{}: added token id {} is outside config.json's vocab_size {}", where, id, vocab_size);
  };
  if (const auto added = dir / "added_tokens.json"; std::filesystem::exists(added)) {
    const json a = read_json(added);
    if (!a.is_object()) fail("{}: not an object of token -> id", added.string());
    for (const auto& [tok, id_json] : a.items()) {
      const int64_t id = id_json.get<int64_t>();
      in_range(id, added.string());
      v.tokens[static_cast<size_t>(id)] = tok;
      v.scores[static_cast<size_t>(id)] = -1000.0f;
      v.types[static_cast<size_t>(id)] = static_cast<int32_t>(TokenType::kUserDefined);
    }
  }
  if (const auto cfg = dir / "tokenizer_config.json"; std::filesystem::exists(cfg)) {
    const json c = read_json(cfg);
    if (c.contains("added_tokens_decoder") && c.at("added_tokens_decoder").is_object())
      for (const auto& [key, data] : c.at("added_tokens_decoder").items()) {
        int64_t id = -1;
        try {
          id = std::stoll(key);
        } catch (const std::exception&) {
          fail("{}: added_tokens_decoder key \"{}\" is not a token id", cfg.string(), key);
        }
        in_range(id, cfg.string());
        std::string tok = data.at("content").get<std::string>();
        const auto i = static_cast<size_t>(id);
        if (data.value("special", false) || (!phi3 && looks_special(tok))) {
          v.types[i] = static_cast<int32_t>(TokenType::kControl);
        } else if (phi3) {
          v.types[i] = static_cast<int32_t>(TokenType::kUserDefined);
        } else {
          for (size_t at; (at = tok.find("\xe2\x96\x81")) != std::string::npos;)
            tok.replace(at, 3, " ");
          v.types[i] = static_cast<int32_t>(TokenType::kUserDefined);
        }
        v.scores[i] = -1000.0f;
        v.tokens[i] = tok;
      }
  }
  if (const auto tj = dir / "tokenizer.json"; phi3 && std::filesystem::exists(tj)) {
    const json t = read_json(tj);
    if (t.contains("added_tokens") && t.at("added_tokens").is_array())
      for (const json& a : t.at("added_tokens")) {
        const int64_t id = a.at("id").get<int64_t>();
        in_range(id, tj.string());
        const auto i = static_cast<size_t>(id);
        v.tokens[i] = a.at("content").get<std::string>();
        v.scores[i] = -1000.0f;
        v.types[i] = static_cast<int32_t>(a.value("special", false) ? TokenType::kControl
                                                                    : TokenType::kUserDefined);
      }
  }
  return v;
}

// gguf-py's LlamaHfVocab for a tokenizer.json BPE model with byte_fallback (the fast tokenizer of
// Llama 2 / Mistral): the base vocabulary in id order, "<0xNN>" byte tokens, special added tokens
// control, the other added tokens beyond the base vocabulary user-defined. LlamaHfVocab gives every
// token the score -1000; llama.cpp's SPM tokenizer then merges left to right, not in the BPE's
// order, so here a token made by a merge scores minus that merge's rank (the first merge making
// it), which is the order the BPE model merges in.
GgufVocab read_llama_hf_vocab(const std::filesystem::path& tj_path, const json& tj,
                              int64_t vocab_size) {
  const json& model = tj.at("model");
  GgufVocab v = padded_llama_vocab(vocab_size);
  std::map<std::string, int64_t> rank;
  if (model.contains("merges"))
    for (const json& m : model.at("merges")) {
      std::string merged;
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos) fail("{}: a merge \"{}\" has no space", tj_path.string(), s);
        merged = s.substr(0, sp) + s.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2) {
        merged = m[0].get<std::string>() + m[1].get<std::string>();
      } else {
        fail("{}: a merge is neither \"a b\" nor [\"a\", \"b\"]", tj_path.string());
      }
      rank.emplace(merged, static_cast<int64_t>(rank.size()));
    }
  const auto unmerged = static_cast<float>(-static_cast<double>(rank.size()) - 1.0);
  auto put = [&](int64_t id, const std::string& tok, TokenType t, float score) {
    if (id < 0 || id >= vocab_size)
      fail("{}: token id {} is outside config.json's vocab_size {}", tj_path.string(), id,
           vocab_size);
    v.tokens[static_cast<size_t>(id)] = tok;
    v.types[static_cast<size_t>(id)] = static_cast<int32_t>(t);
    v.scores[static_cast<size_t>(id)] = score;
  };
  for (const auto& [tok, id] : model.at("vocab").items()) {
    const auto r = rank.find(tok);
    put(id.get<int64_t>(), tok, is_byte_piece(tok) ? TokenType::kByte : TokenType::kNormal,
        r == rank.end() ? unmerged : static_cast<float>(-static_cast<double>(r->second)));
  }
  const auto base = static_cast<int64_t>(model.at("vocab").size());
  if (tj.contains("added_tokens"))
    for (const json& a : tj.at("added_tokens")) {
      const int64_t id = a.at("id").get<int64_t>();
      const std::string tok = a.at("content").get<std::string>();
      if (a.value("special", false))
        put(id, tok, TokenType::kControl, -1000.0f);
      else if (id >= base)
        put(id, tok, TokenType::kUserDefined, -1000.0f);
    }
  if (model.contains("unk_token") && model.at("unk_token").is_string()) {
    const auto& vocab = model.at("vocab");
    const std::string unk = model.at("unk_token").get<std::string>();
    if (vocab.contains(unk)) v.unk = vocab.at(unk).get<uint32_t>();
  }
  return v;
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
                     const std::string& pre_override, const std::string& arch) {
  // llama.cpp's SPM tokenizer adds the "\u2581" prefix unless told not to; convert_hf_to_gguf.py
  // turns it off for Gemma, Gemma 2 and Gemma 3.
  const bool gemma = arch == "gemma" || arch == "gemma2" || arch == "gemma3";
  auto finish_llama = [&](GgufVocab v) {
    const std::optional<bool> space = v.add_space_prefix;
    const std::optional<uint32_t> unk = v.unk;  // the model's unknown piece
    read_special_tokens(dir, vocab_size, ids_of(v), v);
    if (space) v.add_space_prefix = space;
    if (!v.unk) v.unk = unk;
    if (gemma) v.add_space_prefix = false;
    return v;
  };
  if (std::filesystem::exists(dir / "tokenizer.model"))
    return finish_llama(read_sentencepiece_vocab(dir, vocab_size, arch == "phi3"));
  const auto tj_path = dir / "tokenizer.json";
  if (!std::filesystem::exists(tj_path))
    fail(
        "{}: no tokenizer.model (SentencePiece) and no tokenizer.json; copy the tokenizer files of "
        "the base model there",
        dir.string());
  const json tj = read_json(tj_path);
  const json& model = tj.at("model");
  if (model.value("type", "") != "BPE")
    fail(
        "{}: the tokenizer model is {}; GGUF export writes SentencePiece (tokenizer.model), "
        "byte-fallback BPE and byte-level BPE tokenizers only",
        tj_path.string(), model.value("type", "?"));
  if (model.value("byte_fallback", false))
    return finish_llama(read_llama_hf_vocab(tj_path, tj, vocab_size));
  const json decoder = tj.value("decoder", json());
  if (!decoder.is_object() || decoder.value("type", "") != "ByteLevel")
    fail(
        "{}: the tokenizer's decoder is not ByteLevel and the BPE model has no byte_fallback; "
        "only byte-level BPE (GPT-2 style) and byte-fallback BPE (Llama 2 style) tokenizer.json "
        "files are exported",
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

  read_special_tokens(dir, vocab_size, ids, v);
  return v;
}

void write_vocab(GgufWriter& w, const GgufVocab& v) {
  w.add_string("tokenizer.ggml.model", v.model);
  w.add_string("tokenizer.ggml.pre", v.pre);
  w.add_string_array("tokenizer.ggml.tokens", v.tokens);
  w.add_i32_array("tokenizer.ggml.token_type", v.types);
  if (v.model == "llama")
    w.add_f32_array("tokenizer.ggml.scores", v.scores);
  else
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
