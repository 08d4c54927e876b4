// tokenizer.json "pre_tokenizer": Sequence, ByteLevel (GPT-2 regex, add_prefix_space,
// use_regex), Split (String / Regex pattern, every delimiter behavior, invert), Metaspace
// (replacement, prepend_scheme / add_prefix_space, split) and Digits. Other types are a
// gptq::Error naming the type.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "calib/tokenizer_json_util.h"

namespace gptq::tok {

// One pre-tokenized piece. at_start: it begins at offset 0 of the original input (used by
// Metaspace's prepend_scheme "first").
struct Piece {
  std::string text;
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces pieces by their further split (and possibly rewritten) pieces.
  virtual void apply(std::vector<Piece>& pieces) const = 0;
};

// j is the (non-null) pre_tokenizer object at `path`.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonFile& f, const json& j,
                                                 const std::string& path);

// How a split keeps its delimiters (tokenizers' SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits piece by the given matches ([begin, end) byte ranges, sorted, non-overlapping) and
// appends the non-empty results to out.
void split_piece(const Piece& piece, const std::vector<std::pair<size_t, size_t>>& matches,
                 SplitBehavior behavior, bool invert, std::vector<Piece>& out);

// The GPT-2 pre-tokenizer regex used by ByteLevel with use_regex.
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace gptq::tok
