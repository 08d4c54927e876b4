// Calibration data (Optimum's get_dataset / prepare_dataset, reproducible without Python).
//
// Sources:
//   text file   the whole file is tokenized once; each of `nsamples` windows starts at
//               i = uniform_int(0, L - seqlen - 1) (Optimum's wikitext2 loader).
//   .jsonl      one document per line with a "text" field (c4 loader): for each sample, draw
//               documents uniform_int(0, D - 1) until one has at least seqlen + 1 tokens, then a
//               window at uniform_int(0, L - seqlen - 1) inside it. Shorter documents are skipped.
//   .json       pre-tokenized: a list of token-id lists (or of {"input_ids": [...]}) used as is.
// In memory (the API's datasets), instead of a file:
//   texts       each text one sequence: encoded with special tokens, cut to seqlen tokens;
//   sequences   token-id lists used as is (at most nsamples), like a .json file.
// Random numbers: std::mt19937_64 seeded with `seed`; uniform_int(a, b) = a + (r mod (b-a+1))
// with rejection of the biased tail of r, so a run is reproducible across platforms.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace gptq {

class Tokenizer;

struct CalibOptions {
  std::filesystem::path file;  // text, .jsonl or pre-tokenized .json
  int64_t nsamples = 128;
  int64_t seqlen = 0;          // 0: the model default (min(4028, max positions))
  uint64_t seed = 0;
  std::vector<std::string> texts;               // instead of a file: one sequence per text
  std::vector<std::vector<int32_t>> sequences;  // instead of a file: pre-tokenized sequences
  // Set by the caller from config.json (0: unchecked): no sample may be longer than the model's
  // positions, and the hidden states of all samples (2 x tokens x hidden floats) must fit in
  // this machine's memory.
  int64_t max_positions = 0;
  int64_t hidden_size = 0;
};

using TokenSequence = std::vector<int32_t>;

// Throws gptq::Error naming the file when it is empty, too short for one window, malformed, or
// holds token ids outside [0, vocab_size).
std::vector<TokenSequence> load_calibration(const CalibOptions& options, const Tokenizer* tokenizer,
                                            int64_t vocab_size);

// Pre-tokenized evaluation ids (gptq eval --ids): a JSON list of token ids, or an object with one
// under "input_ids" (a tokenizer's output); read as the calibration .json files are (depth-bounded,
// no repeated keys, ids checked against [0, vocab_size)).
TokenSequence load_token_ids(const std::filesystem::path& file, int64_t vocab_size);

// Deterministic uniform integer in [lo, hi] (documented above).
int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi);

}  // namespace gptq
