#include "calib/dataset.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include "calib/tokenizer.h"
#include "io/json_reader.h"
#include "util/error.h"

namespace gptq {

namespace fs = std::filesystem;

int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % span;
  uint64_t r;
  do {
    r = rng();
  } while (r >= limit);
  return lo + static_cast<int64_t>(r % span);
}

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail_code(ExitCode::kIo, "cannot open calibration file {}", p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const Tokenizer& need_tokenizer(const Tokenizer* t, const fs::path& file) {
  if (!t)
    fail("calibration file {} is text: a tokenizer (tokenizer.json or tokenizer.model in the model "
         "directory) is needed to tokenize it",
         file.string());
  return *t;
}

std::vector<TokenSequence> from_text(const CalibOptions& o, const Tokenizer* tok) {
  const std::string text = read_all(o.file);
  const TokenSequence ids = need_tokenizer(tok, o.file).encode(text, false);
  const int64_t L = static_cast<int64_t>(ids.size());
  if (L < o.seqlen + 1)
    fail("calibration file {} has {} tokens: at least seqlen + 1 = {} are needed (give more text or a "
         "smaller --seqlen)",
         o.file.string(), L, o.seqlen + 1);
  std::mt19937_64 rng(o.seed);
  std::vector<TokenSequence> out;
  for (int64_t s = 0; s < o.nsamples; ++s) {
    const int64_t i = uniform_int(rng, 0, L - o.seqlen - 1);
    out.emplace_back(ids.begin() + i, ids.begin() + i + o.seqlen);
  }
  return out;
}

std::vector<TokenSequence> from_jsonl(const CalibOptions& o, const Tokenizer* tok) {
  std::ifstream in(o.file);
  if (!in) fail_code(ExitCode::kIo, "cannot open calibration file {}", o.file.string());
  std::vector<std::string> docs;
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = parse_json_input(line, fmt::format("{} line {}", o.file.string(), lineno),
                                      "write one JSON object per line");
      docs.push_back(j.at("text").get<std::string>());
    } catch (const nlohmann::json::exception& e) {
      fail("{} line {}: expected a JSON object with a string \"text\" field ({})", o.file.string(), lineno,
           e.what());
    }
  }
  if (docs.empty()) fail("calibration file {} holds no documents", o.file.string());
  const Tokenizer& t = need_tokenizer(tok, o.file);
  std::vector<TokenSequence> cache(docs.size());
  std::vector<bool> done(docs.size(), false);
  std::mt19937_64 rng(o.seed);
  std::vector<TokenSequence> out;
  const int64_t max_draws = 1000 * o.nsamples + 10 * static_cast<int64_t>(docs.size());
  int64_t draws = 0;
  while (static_cast<int64_t>(out.size()) < o.nsamples) {
    if (++draws > max_draws)
      fail("calibration file {}: no document has at least {} tokens (seqlen + 1); use longer documents or "
           "a smaller --seqlen",
           o.file.string(), o.seqlen + 1);
    const auto d = static_cast<size_t>(uniform_int(rng, 0, static_cast<int64_t>(docs.size()) - 1));
    if (!done[d]) {
      cache[d] = t.encode(docs[d], false);
      done[d] = true;
    }
    const int64_t L = static_cast<int64_t>(cache[d].size());
    if (L < o.seqlen + 1) continue;
    const int64_t i = uniform_int(rng, 0, L - o.seqlen - 1);
    out.emplace_back(cache[d].begin() + i, cache[d].begin() + i + o.seqlen);
  }
  return out;
}

// A JSON file of token ids: depth-bounded parse that also refuses repeated keys.
nlohmann::json read_ids_json(const fs::path& file) {
  return read_json_input(file, "write a list of token ids");
}

// `e` is a list of token ids, or an object with one under "input_ids" (a tokenizer's output).
TokenSequence token_ids_of(const nlohmann::json& e, const fs::path& file, const std::string& where) {
  const nlohmann::json& ids = e.is_object() && e.contains("input_ids") ? e["input_ids"] : e;
  if (!ids.is_array() || ids.empty())
    fail("{}: {} must be a non-empty list of token ids (or {{\"input_ids\": [...]}})", file.string(), where);
  TokenSequence seq;
  seq.reserve(ids.size());
  for (const auto& v : ids) {
    if (!v.is_number_integer()) fail("{}: {} holds a non-integer token id {}", file.string(), where, v.dump());
    const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= INT32_MAX
                                             : v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX;
    if (!fits) fail("{}: {} holds token id {}, outside any vocabulary", file.string(), where, v.dump());
    seq.push_back(v.get<int32_t>());
  }
  return seq;
}

void check_vocabulary(const TokenSequence& seq, const fs::path& file, int64_t vocab_size, const std::string& where) {
  for (int32_t id : seq)
    if (id < 0 || id >= vocab_size)
      fail("{}: {} holds token id {} outside the model's vocabulary [0, {})", file.string(), where, id, vocab_size);
}

// The hidden states of `samples` x `seqlen` tokens (a block's input and output, fp32) must fit in
// the machine's memory; `what` formats the two numbers for the message.
void check_memory(const CalibOptions& o, int64_t samples, int64_t seqlen, const std::string& what) {
  if (o.hidden_size <= 0 || samples <= 0 || seqlen <= 0) return;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return;
  const double memory = static_cast<double>(pages) * static_cast<double>(page);
  const double need = static_cast<double>(samples) * static_cast<double>(seqlen) *
                      static_cast<double>(o.hidden_size) * 2.0 * sizeof(float);
  if (need > memory)
    fail_code(ExitCode::kUsage,
              "calibration: {} tokens need {:.1f} GB of hidden states (2 x tokens x hidden size {} x 4 "
              "bytes), more than this machine's {:.1f} GB of memory; lower --nsamples or --seqlen",
              what, need / 1e9, o.hidden_size, memory / 1e9);
}

std::vector<TokenSequence> from_tokenized(const CalibOptions& o) {
  const nlohmann::json j = read_ids_json(o.file);
  if (!j.is_array() || j.empty())
    fail("{}: pre-tokenized calibration data must be a non-empty JSON list of token-id lists", o.file.string());
  std::vector<TokenSequence> out;
  for (size_t s = 0; s < j.size() && static_cast<int64_t>(out.size()) < o.nsamples; ++s)
    out.push_back(token_ids_of(j[s], o.file, fmt::format("sample {}", s)));
  return out;
}

}  // namespace

TokenSequence load_token_ids(const fs::path& file, int64_t vocab_size) {
  if (!fs::exists(file)) fail_code(ExitCode::kIo, "token-id file {} not found", file.string());
  const nlohmann::json j = read_ids_json(file);
  if (j.is_array() && !j.empty() && (j[0].is_array() || j[0].is_object()))
    fail("{}: expected one list of token ids (or {{\"input_ids\": [...]}}), not a list of sequences",
         file.string());
  TokenSequence ids = token_ids_of(j, file, "the file");
  check_vocabulary(ids, file, vocab_size, "the file");
  return ids;
}

std::vector<TokenSequence> load_calibration(const CalibOptions& o, const Tokenizer* tokenizer, int64_t vocab_size) {
  if (o.nsamples <= 0) fail_code(ExitCode::kUsage, "--nsamples {}: must be at least 1", o.nsamples);
  if (o.seqlen <= 0) fail_code(ExitCode::kUsage, "--seqlen {}: must be at least 1", o.seqlen);
  const int sources = !o.file.empty() + !o.texts.empty() + !o.sequences.empty();
  if (sources != 1)
    fail_code(ExitCode::kUsage, "calibration data: give exactly one of a file, texts or token-id sequences ({} given)",
              sources);
  std::vector<TokenSequence> out;
  std::string source = o.file.string();
  if (!o.texts.empty()) {
    source = "calibration texts";
    for (size_t s = 0; s < o.texts.size(); ++s) {
      TokenSequence ids = need_tokenizer(tokenizer, source).encode(o.texts[s], true);
      if (ids.empty()) fail_code(ExitCode::kUsage, "calibration text {} encodes to no tokens", s);
      if (static_cast<int64_t>(ids.size()) > o.seqlen) ids.resize(static_cast<size_t>(o.seqlen));
      out.push_back(std::move(ids));
    }
  } else if (!o.sequences.empty()) {
    source = "calibration token ids";
    for (size_t s = 0; s < o.sequences.size() && static_cast<int64_t>(out.size()) < o.nsamples; ++s) {
      if (o.sequences[s].empty()) fail_code(ExitCode::kUsage, "{}: sample {} is empty", source, s);
      out.push_back(o.sequences[s]);
    }
  } else {
    if (!fs::exists(o.file)) fail_code(ExitCode::kIo, "calibration file {} not found", o.file.string());
    const std::string ext = o.file.extension().string();
    if (ext != ".json")  // windows of seqlen tokens: bounded before they are drawn
      check_memory(o, o.nsamples, o.seqlen, fmt::format("--nsamples {} x --seqlen {}", o.nsamples, o.seqlen));
    out = ext == ".jsonl"  ? from_jsonl(o, tokenizer)
          : ext == ".json" ? from_tokenized(o)
                           : from_text(o, tokenizer);
  }
  int64_t tokens = 0;
  for (size_t s = 0; s < out.size(); ++s) {
    check_vocabulary(out[s], source, vocab_size, fmt::format("sample {}", s));
    const auto n = static_cast<int64_t>(out[s].size());
    if (o.max_positions > 0 && n > o.max_positions)
      fail("{}: sample {} has {} tokens, more than the model's {} positions "
           "(max_position_embeddings); cut it to at most {} tokens",
           source, s, n, o.max_positions, o.max_positions);
    tokens += n;
  }
  check_memory(o, 1, tokens, fmt::format("{} samples of {} tokens in all", out.size(), tokens));
  return out;
}

}  // namespace gptq
