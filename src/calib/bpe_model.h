// The BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE", ...}): vocabulary,
// ranked merges and the merge loop (lowest rank first, leftmost on ties, as the tokenizers
// crate does), with byte_fallback <0xNN> tokens, unk_token / fuse_unk, ignore_merges,
// continuing_subword_prefix / end_of_word_suffix, and a thread-safe cache of merged words.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "calib/tokenizer_json_util.h"

namespace gptq::tok {

// Hash / equality allowing std::string_view lookups in std::string-keyed unordered maps.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct StringEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, StringEq>;

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // Parses tokenizer.json's "model" object (path "model"); errors name the file and key.
  static std::unique_ptr<BpeModel> from_json(const JsonFile& file, const json& model);

  // vocab: token -> id; merges: pairs in rank order. Throws gptq::Error (prefixed with
  // `where`) if a merge or its result is not in the vocabulary.
  BpeModel(StringMap<int32_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           BpeOptions options, std::string_view where = "BPE model");

  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // nullptr if id is not in the vocabulary.
  const std::string* id_to_token(int32_t id) const;
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  struct MergeInfo {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const MergeInfo* find_merge(int32_t a, int32_t b) const;
  // Splits the word into initial symbols (characters, byte fallback, unk).
  void initial_symbols(std::string_view word, std::vector<int32_t>& ids) const;
  // Applies the merges in place.
  void merge_all(std::vector<int32_t>& ids) const;

  StringMap<int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, MergeInfo> merges_;
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  std::vector<int32_t> byte_ids_;  // byte_fallback <0xNN> ids, -1 where missing

  static constexpr size_t kCacheCapacity = 200000;
  static constexpr size_t kCacheMaxWordBytes = 256;
  mutable std::shared_mutex cache_mutex_;
  mutable StringMap<std::vector<int32_t>> cache_;
};

}  // namespace gptq::tok
