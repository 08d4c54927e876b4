#include "calib/tokenizer_added.h"

#include <algorithm>
#include <cstring>

#include "calib/tokenizer_normalizer.h"
#include "calib/tokenizer_regex.h"
#include "calib/tokenizer_utf8.h"

namespace gptq::tok {

namespace {

// Rust regex \w (Unicode letters, marks, digits, connector punctuation), as the tokenizers
// crate tests it for single_word tokens.
bool is_word_char(std::string_view one_char) {
  static const Regex word(R"(^\w$)", "added-token word test");
  return !word.find_all(one_char).empty();
}

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return is_word_char(s.substr(start));
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  return is_word_char(s.substr(0, utf8_char_len(s, 0)));
}

}  // namespace

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer)
    : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    by_id_.insert_or_assign(t.id, i);
    std::string pattern = t.content;
    if (t.normalized && normalizer) normalizer->normalize(pattern);
    if (pattern.empty()) continue;
    Matcher& m = t.normalized ? normalized_ : raw_;
    m.by_first_byte[static_cast<unsigned char>(pattern[0])].emplace_back(std::move(pattern), i);
    m.empty = false;
  }
  for (Matcher* m : {&raw_, &normalized_})
    for (auto& list : m->by_first_byte)
      std::stable_sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
        return a.first.size() > b.first.size();
      });
}

void AddedVocabulary::find_matches(std::string_view text, const Matcher& m,
                                   std::vector<Segment>& out) const {
  size_t emitted = 0;  // text before this offset has been emitted
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& candidates = m.by_first_byte[static_cast<unsigned char>(text[pos])];
    const std::pair<std::string, size_t>* hit = nullptr;
    for (const auto& c : candidates) {
      if (c.first.size() <= text.size() - pos &&
          std::memcmp(c.first.data(), text.data() + pos, c.first.size()) == 0) {
        hit = &c;
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[hit->second];
    size_t start = pos, stop = pos + hit->first.size();
    pos = stop;  // the next search resumes after this match, taken or not
    if (tok.single_word &&
        (ends_with_word(text.substr(0, start)) || starts_with_word(text.substr(stop))))
      continue;
    if (tok.lstrip) start = std::max(start - trailing_whitespace(text.substr(0, start)), emitted);
    if (tok.rstrip) stop += leading_whitespace(text.substr(stop));
    if (emitted < start) out.push_back({emitted, start, -1});
    out.push_back({start, stop, tok.id});
    emitted = stop;
    pos = std::max(pos, stop);
  }
  if (emitted < text.size()) out.push_back({emitted, text.size(), -1});
}

void AddedVocabulary::split(std::string_view text, bool normalized,
                            std::vector<Segment>& out) const {
  out.clear();
  const Matcher& m = normalized ? normalized_ : raw_;
  if (m.empty) {
    if (!text.empty()) out.push_back({0, text.size(), -1});
    return;
  }
  find_matches(text, m, out);
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  for (const AddedToken& t : tokens_)
    if (t.content == content) return t.id;
  return std::nullopt;
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

bool AddedVocabulary::is_special(int32_t id) const {
  const AddedToken* t = by_id(id);
  return t && t->special;
}

int32_t AddedVocabulary::max_id() const {
  int32_t m = -1;
  for (const AddedToken& t : tokens_) m = std::max(m, t.id);
  return m;
}

}  // namespace gptq::tok
