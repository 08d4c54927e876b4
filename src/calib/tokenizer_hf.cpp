#include "calib/tokenizer_hf.h"

#include <optional>
#include <string>
#include <vector>

#include "calib/bpe_model.h"
#include "calib/tokenizer_added.h"
#include "calib/tokenizer_config.h"
#include "calib/tokenizer_decoder.h"
#include "calib/tokenizer_json_util.h"
#include "calib/tokenizer_normalizer.h"
#include "calib/tokenizer_postproc.h"
#include "calib/tokenizer_pretok.h"
#include "calib/tokenizer_utf8.h"
#include "util/error.h"

namespace gptq::tok {

namespace {

std::vector<AddedToken> parse_added_tokens(const JsonFile& f) {
  std::vector<AddedToken> out;
  const json* arr = f.find(f.root(), "added_tokens");
  if (!arr) return out;
  f.as_array(*arr, "added_tokens");
  for (size_t i = 0; i < arr->size(); ++i) {
    const std::string p = index_path("added_tokens", i);
    const json& t = f.as_object((*arr)[i], p);
    AddedToken a;
    const int64_t id = f.integer(t, "id", p);
    if (id < 0 || id > INT32_MAX) f.bad(key_path(p, "id"), "is out of range");
    a.id = static_cast<int32_t>(id);
    a.content = f.str(t, "content", p);
    a.special = f.boolean(t, "special", p, false);
    a.single_word = f.boolean(t, "single_word", p, false);
    a.lstrip = f.boolean(t, "lstrip", p, false);
    a.rstrip = f.boolean(t, "rstrip", p, false);
    a.normalized = f.boolean(t, "normalized", p, !a.special);
    out.push_back(std::move(a));
  }
  return out;
}

class HfTokenizer final : public Tokenizer {
 public:
  explicit HfTokenizer(const std::filesystem::path& file) : name_(file.string()) {
    const JsonFile f(file);
    const json& root = f.root();
    if (const json* n = f.find(root, "normalizer"))
      normalizer_ = make_normalizer(f, *n, "normalizer");
    if (const json* p = f.find(root, "pre_tokenizer"))
      pre_tokenizer_ = make_pre_tokenizer(f, *p, "pre_tokenizer");
    model_ = BpeModel::from_json(f, f.at(root, "model", ""));
    added_ = AddedVocabulary(parse_added_tokens(f), normalizer_.get());
    if (const json* d = f.find(root, "decoder")) decoder_ = make_decoder(f, *d, "decoder");

    const TokenizerConfig config = read_tokenizer_config(file.parent_path());
    const std::string config_name = (file.parent_path() / "tokenizer_config.json").string();
    const bool llama_like = rebuilds_post_processor(config.tokenizer_class);
    // LlamaTokenizerFast's defaults when the config names no bos / eos token.
    std::optional<std::string> bos = config.bos_token, eos = config.eos_token;
    if (llama_like && !bos) bos = "<s>";
    if (llama_like && !eos) eos = "</s>";
    bos_id_ = bos ? lookup(*bos) : std::nullopt;
    eos_id_ = eos ? lookup(*eos) : std::nullopt;
    const json* post = f.find(root, "post_processor");
    if (llama_like) {
      // LlamaTokenizerFast replaces tokenizer.json's post-processor by bos? $A eos?.
      if (config.add_bos_token.value_or(true))
        wrap_.prefix.push_back(require(bos_id_, "bos_token", config_name));
      if (config.add_eos_token.value_or(false))
        wrap_.suffix.push_back(require(eos_id_, "eos_token", config_name));
    } else if (post) {
      wrap_ = parse_post_processor(f, *post, "post_processor");
    } else {
      if (config.add_bos_token.value_or(false))
        wrap_.prefix.push_back(require(bos_id_, "bos_token", config_name));
      if (config.add_eos_token.value_or(false))
        wrap_.suffix.push_back(require(eos_id_, "eos_token", config_name));
    }
    if (!bos_id_ && !wrap_.prefix.empty()) bos_id_ = wrap_.prefix.front();
    if (!eos_id_ && !wrap_.suffix.empty()) eos_id_ = wrap_.suffix.back();
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override {
    require_utf8(text, "tokenizer input");
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + wrap_.prefix.size() + wrap_.suffix.size() + 4);
    if (add_special_tokens) ids.insert(ids.end(), wrap_.prefix.begin(), wrap_.prefix.end());
    std::vector<Segment> raw, normalized;
    std::vector<Piece> pieces;
    added_.split(text, false, raw);
    for (const Segment& r : raw) {
      if (r.id >= 0) {
        ids.push_back(r.id);
        continue;
      }
      std::string s(text.substr(r.begin, r.end - r.begin));
      if (normalizer_) normalizer_->normalize(s);
      added_.split(s, true, normalized);
      for (const Segment& n : normalized) {
        if (n.id >= 0) {
          ids.push_back(n.id);
          continue;
        }
        pieces.clear();
        pieces.push_back({s.substr(n.begin, n.end - n.begin), r.begin == 0 && n.begin == 0});
        if (pre_tokenizer_) pre_tokenizer_->apply(pieces);
        for (const Piece& p : pieces) model_->tokenize(p.text, ids);
      }
    }
    if (add_special_tokens) ids.insert(ids.end(), wrap_.suffix.begin(), wrap_.suffix.end());
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      if (const AddedToken* a = added_.by_id(id)) {
        if (!(skip_special_tokens && a->special)) tokens.push_back(a->content);
      } else if (const std::string* t = model_->id_to_token(id)) {
        tokens.push_back(*t);
      }
      // Unknown ids are dropped, as the tokenizers crate does.
    }
    return run_decoder(decoder_.get(), std::move(tokens));
  }

  int64_t vocab_size() const override {
    return static_cast<int64_t>(std::max(model_->max_id(), added_.max_id())) + 1;
  }
  int32_t bos_id() const override { return bos_id_.value_or(-1); }
  int32_t eos_id() const override { return eos_id_.value_or(-1); }

 private:
  std::optional<int32_t> lookup(std::string_view token) const {
    if (auto id = added_.token_to_id(token)) return id;
    return model_->token_to_id(token);
  }
  int32_t require(const std::optional<int32_t>& id, std::string_view key,
                  const std::string& config_name) const {
    if (!id)
      fail(
          "{}: {} is needed to add it when encoding but is missing or not a token of {}: "
          "copy tokenizer_config.json and tokenizer.json of the same base model",
          config_name, key, name_);
    return *id;
  }

  std::string name_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  AddedVocabulary added_;
  std::unique_ptr<Decoder> decoder_;
  SpecialWrap wrap_;
  std::optional<int32_t> bos_id_, eos_id_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& file) {
  return std::make_unique<HfTokenizer>(file);
}

}  // namespace gptq::tok
