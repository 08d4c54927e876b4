#include "calib/tokenizer_pretok.h"

#include <algorithm>

#include "calib/tokenizer_bytelevel.h"
#include "calib/tokenizer_pattern.h"
#include "calib/tokenizer_regex.h"

namespace gptq::tok {

namespace {

using Ranges = std::vector<std::pair<size_t, size_t>>;

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void apply(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->apply(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> re, SplitBehavior behavior, bool invert)
      : re_(std::move(re)), behavior_(behavior), invert_(invert) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (const Piece& p : pieces) split_piece(p, re_->find_all(p.text), behavior_, invert_, out);
    pieces = std::move(out);
  }

 private:
  std::unique_ptr<Regex> re_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        re_(use_regex ? std::make_unique<Regex>(kGpt2Pattern, "ByteLevel pre-tokenizer")
                      : nullptr) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> split;
    split.reserve(pieces.size());
    for (Piece& p : pieces) {
      if (add_prefix_space_ && !p.text.empty() && p.text[0] != ' ') p.text = ' ' + p.text;
      if (re_)
        split_piece(p, re_->find_all(p.text), SplitBehavior::kIsolated, false, split);
      else if (!p.text.empty())
        split.push_back(std::move(p));
    }
    for (Piece& p : split) {
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      bytes_to_unicode_text(p.text, mapped);
      p.text = std::move(mapped);
    }
    pieces = std::move(split);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (Piece& p : pieces) {
      std::string t;
      t.reserve(p.text.size() + replacement_.size());
      for (char c : p.text) {
        if (c == ' ')
          t += replacement_;
        else
          t += c;
      }
      const bool prepend =
          scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && p.at_start);
      if (prepend && !t.empty() && !t.starts_with(replacement_)) t = replacement_ + t;
      Piece q{std::move(t), p.at_start};
      if (!split_) {
        if (!q.text.empty()) out.push_back(std::move(q));
        continue;
      }
      Ranges matches;
      for (size_t pos = q.text.find(replacement_); pos != std::string::npos;
           pos = q.text.find(replacement_, pos + replacement_.size()))
        matches.emplace_back(pos, pos + replacement_.size());
      split_piece(q, matches, SplitBehavior::kMergedWithNext, false, out);
    }
    pieces = std::move(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

SplitBehavior parse_behavior(const JsonFile& f, const json& j, const std::string& path) {
  const std::string b = f.str(j, "behavior", path);
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  f.bad(key_path(path, "behavior"),
        "is not one of Removed, Isolated, MergedWithPrevious, "
        "MergedWithNext, Contiguous");
}

PrependScheme parse_prepend_scheme(const JsonFile& f, const json& j, const std::string& path) {
  if (auto s = f.opt_str(j, "prepend_scheme", path)) {
    if (*s == "always") return PrependScheme::kAlways;
    if (*s == "first") return PrependScheme::kFirst;
    if (*s == "never") return PrependScheme::kNever;
    f.bad(key_path(path, "prepend_scheme"), "is not one of always, first, never");
  }
  return f.boolean(j, "add_prefix_space", path, true) ? PrependScheme::kAlways
                                                      : PrependScheme::kNever;
}

}  // namespace

void split_piece(const Piece& piece, const Ranges& matches, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out) {
  const std::string& s = piece.text;
  // The whole piece as alternating (range, is_match) parts, like tokenizers' find_matches.
  struct Part {
    size_t b, e;
    bool match;
  };
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (prev != b) parts.push_back({prev, b, invert});
    parts.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != s.size()) parts.push_back({prev, s.size(), invert});

  std::vector<Part> merged;  // `match` now means "drop" (only for kRemoved)
  merged.reserve(parts.size());
  switch (behavior) {
    case SplitBehavior::kRemoved:
      merged = std::move(parts);
      break;
    case SplitBehavior::kIsolated:
      for (const Part& p : parts) merged.push_back({p.b, p.e, false});
      break;
    case SplitBehavior::kContiguous: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.match && prev_match && !merged.empty())
          merged.back().e = p.e;
        else
          merged.push_back({p.b, p.e, false});
        prev_match = p.match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.match && !prev_match && !merged.empty())
          merged.back().e = p.e;
        else
          merged.push_back({p.b, p.e, false});
        prev_match = p.match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->match && !prev_match && !merged.empty())
          merged.back().b = it->b;
        else
          merged.push_back({it->b, it->e, false});
        prev_match = it->match;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    }
  }
  for (const Part& p : merged) {
    if (p.match || p.e == p.b) continue;
    out.push_back({s.substr(p.b, p.e - p.b), piece.at_start && p.b == 0});
  }
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonFile& f, const json& j,
                                                 const std::string& path) {
  f.as_object(j, path);
  const std::string type = f.str(j, "type", path);
  if (type == "Sequence") {
    const std::string p = key_path(path, "pretokenizers");
    const json& arr = f.as_array(f.at(j, "pretokenizers", path), p);
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < arr.size(); ++i)
      parts.push_back(make_pre_tokenizer(f, arr[i], index_path(p, i)));
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPreTokenizer>(f.boolean(j, "add_prefix_space", path, true),
                                                   f.boolean(j, "use_regex", path, true));
  if (type == "Split")
    return std::make_unique<SplitPreTokenizer>(
        parse_pattern(f, f.at(j, "pattern", path), key_path(path, "pattern")),
        parse_behavior(f, j, path), f.boolean(j, "invert", path, false));
  if (type == "Metaspace")
    return std::make_unique<MetaspacePreTokenizer>(
        f.opt_str(j, "replacement", path).value_or("\u2581"), parse_prepend_scheme(f, j, path),
        f.boolean(j, "split", path, true));
  if (type == "Digits") {
    const bool individual = f.boolean(j, "individual_digits", path, false);
    return std::make_unique<SplitPreTokenizer>(
        std::make_unique<Regex>(individual ? R"(\p{N})" : R"(\p{N}+)", "Digits pre-tokenizer"),
        SplitBehavior::kIsolated, false);
  }
  f.unsupported(key_path(path, "type"), "'" + type + "'",
                "Sequence, ByteLevel, Split, Metaspace, Digits");
}

}  // namespace gptq::tok
