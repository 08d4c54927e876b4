// Durable state of a resumable quantize run, kept in <staging>/.gptq-run/:
//   state.json      fingerprint, blocks finished, per-layer results so far
//   acts.bin        the inputs of the next block (one fp32 [T, hidden] matrix per sequence)
// After each block: the output shards are synced, then acts.bin, then state.json are replaced
// atomically, so state.json never claims more than is on disk.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace gptq {

struct RunState {
  std::string fingerprint;
  int64_t blocks_done = 0;
  bool copied = false;  // the tensors that are not quantized are written
  nlohmann::json layers = nlohmann::json::array();

  static std::filesystem::path dir(const std::filesystem::path& staging);
  static std::optional<RunState> load(const std::filesystem::path& staging);
  void save(const std::filesystem::path& staging) const;
};

// Block activations: a list of [tokens, hidden] fp32 matrices.
struct Activations {
  int64_t hidden = 0;
  std::vector<std::vector<float>> seqs;
};

void save_activations(const std::filesystem::path& staging, const Activations& acts);
Activations load_activations(const std::filesystem::path& staging);

}  // namespace gptq
