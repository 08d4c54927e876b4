#include "calib/tokenizer_sentencepiece.h"

#include <sentencepiece_processor.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "calib/sentencepiece_check.h"
#include "calib/tokenizer_added.h"
#include "calib/tokenizer_config.h"
#include "calib/tokenizer_utf8.h"
#include "util/error.h"

namespace gptq::tok {

namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& file) : name_(file.string()) {
    if (!std::filesystem::exists(file))
      fail_code(ExitCode::kIo, "{} does not exist: copy tokenizer.model of the base model there",
                name_);
    {  // the library trusts the normalization trie: check it before it is used
      std::ifstream in(file, std::ios::binary);
      if (!in) fail_code(ExitCode::kIo, "cannot open {}: check that it is readable", name_);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      check_sentencepiece_model(bytes, name_);
    }
    const auto status = sp_.Load(name_);
    if (!status.ok())
      fail(
          "cannot load the sentencepiece model {}: {}: the file is damaged or not a "
          "sentencepiece model; copy tokenizer.model of the base model again",
          name_, status.ToString());

    std::vector<AddedToken> specials;
    for (int id = 0; id < sp_.GetPieceSize(); ++id)
      if (sp_.IsControl(id) || sp_.IsUnknown(id))
        specials.push_back({sp_.IdToPiece(id), id, /*special=*/true});
    specials_ = AddedVocabulary(std::move(specials), nullptr);

    const TokenizerConfig config = read_tokenizer_config(file.parent_path());
    const std::string config_name = (file.parent_path() / "tokenizer_config.json").string();
    bos_id_ = resolve(config.bos_token, sp_.bos_id());
    eos_id_ = resolve(config.eos_token, sp_.eos_id());
    add_bos_ = config.add_bos_token.value_or(true);
    add_eos_ = config.add_eos_token.value_or(false);
    if (add_bos_ && bos_id_ < 0)
      fail("{}: add_bos_token is on but {} has no BOS piece: set add_bos_token to false in {}",
           name_, name_, config_name);
    if (add_eos_ && eos_id_ < 0)
      fail("{}: add_eos_token is on but {} has no EOS piece: set add_eos_token to false in {}",
           name_, name_, config_name);
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override {
    require_utf8(text, "tokenizer input");
    std::vector<int32_t> ids;
    if (add_special_tokens && add_bos_) ids.push_back(bos_id_);
    std::vector<Segment> segments;
    specials_.split(text, false, segments);
    std::vector<int> piece_ids;
    for (const Segment& s : segments) {
      if (s.id >= 0) {
        ids.push_back(s.id);
        continue;
      }
      piece_ids.clear();
      const auto status = sp_.Encode(text.substr(s.begin, s.end - s.begin), &piece_ids);
      if (!status.ok())
        fail_code(ExitCode::kInternal, "sentencepiece ({}) failed to encode the text: {}", name_,
                  status.ToString());
      ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
    }
    if (add_special_tokens && add_eos_) ids.push_back(eos_id_);
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override {
    std::string out, part;
    std::vector<int> run;
    auto flush = [&] {
      if (run.empty()) return;
      part.clear();
      const auto status = sp_.Decode(run, &part);
      if (!status.ok())
        fail_code(ExitCode::kInternal, "sentencepiece ({}) failed to decode: {}", name_,
                  status.ToString());
      out += part;
      run.clear();
    };
    for (int32_t id : ids) {
      if (id < 0 || id >= sp_.GetPieceSize()) continue;  // unknown ids are dropped
      if (specials_.by_id(id)) {
        if (skip_special_tokens) continue;
        flush();
        out += sp_.IdToPiece(id);
        continue;
      }
      run.push_back(id);
    }
    flush();
    return out;
  }

  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }

 private:
  // The id of the configured token, else the model's own (-1 if none).
  int32_t resolve(const std::optional<std::string>& token, int fallback) const {
    if (token) {
      const int id = sp_.PieceToId(*token);
      if (id >= 0 && (sp_.IdToPiece(id) == *token)) return id;
    }
    return fallback;
  }

  std::string name_;
  sentencepiece::SentencePieceProcessor sp_;
  AddedVocabulary specials_;
  int32_t bos_id_ = -1, eos_id_ = -1;
  bool add_bos_ = true, add_eos_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& file) {
  return std::make_unique<SentencePieceTokenizer>(file);
}

}  // namespace gptq::tok
