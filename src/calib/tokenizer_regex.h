// A compiled PCRE2 regular expression (UTF + Unicode properties, JIT when available) for the
// tokenizer's pre-tokenizer splits and Replace patterns. Immutable after construction and safe
// to use from several threads at once.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gptq::tok {

class Regex {
 public:
  // Throws gptq::Error naming `where` (e.g. "tokenizer.json: pre_tokenizer.pattern.Regex") if
  // the pattern does not compile.
  Regex(const std::string& pattern, std::string_view where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All non-overlapping matches as [begin, end) byte ranges, left to right. An empty match
  // advances the search by one character. text must be valid UTF-8. A pattern that exceeds
  // PCRE2's match limits on `text` is an error naming `where` (ExitCode::kBadInput).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::string pattern_;
  std::string where_;
  std::unique_ptr<Impl> impl_;
};

// Escapes a literal string so that it matches itself as a PCRE2 pattern.
std::string regex_escape(std::string_view literal);

}  // namespace gptq::tok
