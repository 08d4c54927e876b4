#include "calib/bpe_model.h"

#include <fmt/format.h>

#include <mutex>
#include <queue>

#include "calib/tokenizer_utf8.h"
#include "util/error.h"

namespace gptq::tok {

namespace {

// Upper bound on ids relative to the vocabulary size, so a corrupt id cannot make us allocate
// gigabytes for the reverse table.
constexpr int64_t kMaxIdSlack = 1 << 20;

std::pair<std::string, std::string> parse_merge(const JsonFile& f, const json& m,
                                                const std::string& path) {
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    const size_t sp = s.find(' ');
    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
      f.bad(path, "is not of the form \"left right\"");
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  f.bad(path, "is neither a \"left right\" string nor a [left, right] pair");
}

}  // namespace

std::unique_ptr<BpeModel> BpeModel::from_json(const JsonFile& f, const json& model) {
  const std::string path = "model";
  f.as_object(model, path);
  const std::string type = f.opt_str(model, "type", path).value_or("BPE");
  if (type != "BPE")
    f.unsupported("model.type", "'" + type + "'",
                  "BPE; for sentencepiece models remove tokenizer.json so that tokenizer.model is "
                  "used");

  const json& vocab_json = f.as_object(f.at(model, "vocab", path), "model.vocab");
  StringMap<int32_t> vocab;
  vocab.reserve(vocab_json.size());
  for (const auto& [token, id] : vocab_json.items()) {
    const std::string p = "model.vocab[\"" + token + "\"]";
    const int64_t v = f.as_int(id, p);
    if (v < 0 || v > static_cast<int64_t>(vocab_json.size()) + kMaxIdSlack)
      f.bad(p, fmt::format("has an out-of-range id {}", v));
    vocab.emplace(token, static_cast<int32_t>(v));
  }

  std::vector<std::pair<std::string, std::string>> merges;
  if (const json* mj = f.find(model, "merges")) {
    f.as_array(*mj, "model.merges");
    merges.reserve(mj->size());
    for (size_t i = 0; i < mj->size(); ++i)
      merges.push_back(parse_merge(f, (*mj)[i], index_path("model.merges", i)));
  }

  BpeOptions o;
  o.unk_token = f.opt_str(model, "unk_token", path);
  o.continuing_subword_prefix = f.opt_str(model, "continuing_subword_prefix", path).value_or("");
  o.end_of_word_suffix = f.opt_str(model, "end_of_word_suffix", path).value_or("");
  o.fuse_unk = f.boolean(model, "fuse_unk", path, false);
  o.byte_fallback = f.boolean(model, "byte_fallback", path, false);
  o.ignore_merges = f.boolean(model, "ignore_merges", path, false);
  // "dropout" only randomises training-time segmentation; inference uses none.
  return std::make_unique<BpeModel>(std::move(vocab), merges, std::move(o), f.name() + ": model");
}

BpeModel::BpeModel(StringMap<int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, std::string_view where)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab_) max_id = std::max(max_id, id);
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  has_id_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : vocab_) {
    id_to_token_[id] = token;
    has_id_[id] = true;
  }

  const size_t prefix_len = options_.continuing_subword_prefix.size();
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia == vocab_.end() || ib == vocab_.end())
      fail(
          "{}: merge {} \"{} {}\" uses a token that is not in the vocabulary: the tokenizer "
          "file is damaged; copy it again from the base model",
          where, rank, a, b);
    std::string merged = a;
    if (prefix_len > 0 && b.starts_with(options_.continuing_subword_prefix))
      merged.append(b, prefix_len);
    else
      merged += b;
    auto im = vocab_.find(merged);
    if (im == vocab_.end())
      fail(
          "{}: merge {} \"{} {}\" produces \"{}\", which is not in the vocabulary: the "
          "tokenizer file is damaged; copy it again from the base model",
          where, rank, a, b, merged);
    // Like the tokenizers crate (a HashMap built in order), a repeated pair keeps its last rank.
    merges_.insert_or_assign(pair_key(ia->second, ib->second),
                             MergeInfo{static_cast<int32_t>(rank), im->second});
  }

  if (options_.unk_token) {
    auto it = vocab_.find(*options_.unk_token);
    if (it == vocab_.end())
      fail(
          "{}: unk_token \"{}\" is not in the vocabulary: the tokenizer file is damaged; copy "
          "it again from the base model",
          where, *options_.unk_token);
    unk_id_ = it->second;
  }
  if (options_.byte_fallback) {
    byte_ids_.assign(256, -1);
    for (int b = 0; b < 256; ++b) {
      auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
      if (it != vocab_.end()) byte_ids_[b] = it->second;
    }
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

const BpeModel::MergeInfo* BpeModel::find_merge(int32_t a, int32_t b) const {
  auto it = merges_.find(pair_key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& ids) const {
  const bool affixes =
      !options_.continuing_subword_prefix.empty() || !options_.end_of_word_suffix.empty();
  std::string buf;
  int32_t pending_unk = -1;
  for (size_t i = 0; i < word.size();) {
    const size_t n = utf8_char_len(word, i);
    std::string_view s = word.substr(i, n);
    if (affixes) {
      buf.clear();
      if (i > 0) buf += options_.continuing_subword_prefix;
      buf += s;
      if (i + n == word.size()) buf += options_.end_of_word_suffix;
      s = buf;
    }
    i += n;
    if (auto it = vocab_.find(s); it != vocab_.end()) {
      if (pending_unk >= 0) ids.push_back(pending_unk);
      pending_unk = -1;
      ids.push_back(it->second);
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (char c : s) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : s) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !options_.fuse_unk) ids.push_back(pending_unk);
      pending_unk = *unk_id_;
    }
    // Without an unk_token an unknown character is dropped, as in the tokenizers crate.
  }
  if (pending_unk >= 0) ids.push_back(pending_unk);
}

void BpeModel::merge_all(std::vector<int32_t>& ids) const {
  const int n = static_cast<int>(ids.size());
  if (n < 2) return;
  struct Symbol {
    int32_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Symbol> sym(n);
  for (int i = 0; i < n; ++i) sym[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};

  struct Candidate {
    int32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  for (int i = 0; i + 1 < n; ++i)
    if (const MergeInfo* m = find_merge(sym[i].id, sym[i + 1].id))
      queue.push({m->rank, i, m->new_id});

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    // Stale entry: one side was merged since it was queued.
    const MergeInfo* m = find_merge(left.id, right.id);
    if (!m || m->new_id != top.new_id) continue;

    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = top.pos;

    if (left.prev >= 0)
      if (const MergeInfo* pm = find_merge(sym[left.prev].id, left.id))
        queue.push({pm->rank, left.prev, pm->new_id});
    if (left.next >= 0)
      if (const MergeInfo* nm = find_merge(left.id, sym[left.next].id))
        queue.push({nm->rank, top.pos, nm->new_id});
  }

  ids.clear();
  for (int i = 0; i >= 0; i = sym[i].next) ids.push_back(sym[i].id);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < kCacheMaxWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mutex_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  initial_symbols(word, ids);
  merge_all(ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.try_emplace(std::string(word), std::move(ids));
  }
}

}  // namespace gptq::tok
