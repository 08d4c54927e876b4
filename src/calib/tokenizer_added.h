// Added tokens of tokenizer.json ("added_tokens"): found in the text before normalization and
// pre-tokenization, leftmost-longest like the tokenizers crate, honouring single_word, lstrip,
// rstrip and normalized (normalized tokens are matched in the normalized text).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gptq::tok {

class Normalizer;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// A run of the input: an added token (id >= 0) or plain text (id == -1).
struct Segment {
  size_t begin, end;
  int32_t id;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // normalizer (may be null) is applied to the content of `normalized` tokens, as the
  // tokenizers crate does before matching them against normalized text.
  AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Splits text into segments using the normalized (true) or the non-normalized (false) tokens.
  void split(std::string_view text, bool normalized, std::vector<Segment>& out) const;

  std::optional<int32_t> token_to_id(std::string_view content) const;
  const AddedToken* by_id(int32_t id) const;
  bool is_special(int32_t id) const;
  int32_t max_id() const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Matcher {
    // Patterns grouped by first byte, longest first; each entry: (pattern, token index).
    std::array<std::vector<std::pair<std::string, size_t>>, 256> by_first_byte;
    bool empty = true;
  };
  void find_matches(std::string_view text, const Matcher& m, std::vector<Segment>& out) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  Matcher raw_, normalized_;
};

}  // namespace gptq::tok
