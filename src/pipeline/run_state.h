// Durable state of a resumable quantize run, kept in <staging>/.gptq-run/:
//   owner           the marker that this run created <staging>, and its lock (run_staging.h)
//   state.json      fingerprint, content hashes of the input files, blocks finished, per-layer
//                   results so far, checksums of the tensors written to the shards
//   acts-<n>.bin    the inputs of block n (one fp32 [T, hidden] matrix per sequence), n >= 1
// After block n-1: the output shards are synced, acts-<n>.bin is written, state.json is replaced
// (blocks_done = n), then acts-<n-1>.bin is removed; all atomically, so state.json never claims
// more than is on disk and the activations it refers to are always there. (Block 0's inputs are
// the embeddings, recomputed on resume.)
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "util/atomic_file.h"

namespace gptq {

struct RunState {
  std::string fingerprint;
  int64_t blocks_done = 0;
  bool copied = false;  // the tensors that are not quantized are written
  nlohmann::json layers = nlohmann::json::array();
  nlohmann::json inputs = nlohmann::json::array();    // [{"file", "size", "xxh3"}] of the checkpoint
  nlohmann::json written = nlohmann::json::object();  // tensor name -> xxh3 of its bytes in the shards

  static std::filesystem::path dir(const std::filesystem::path& staging);
  static std::optional<RunState> load(const std::filesystem::path& staging);
  void save(const std::filesystem::path& staging) const;
  // Removes state.json and the activation files (not the owner marker).
  static void remove_files(const std::filesystem::path& staging);
};

// Block activations: a list of [tokens, hidden] fp32 matrices.
struct Activations {
  int64_t hidden = 0;
  std::vector<std::vector<float>> seqs;
};

// acts-<blocks_done>.bin: the inputs of block `blocks_done`.
void save_activations(const std::filesystem::path& staging, const Activations& acts, int64_t blocks_done);
// Checked against what the run expects: `seq_tokens` sequences of those lengths, `hidden` wide.
Activations load_activations(const std::filesystem::path& staging, int64_t blocks_done, int64_t hidden,
                             const std::vector<int64_t>& seq_tokens);
// The same file from sequences held elsewhere: `sizes` values each; `rows(s, scratch)` returns
// sequence s in fp32, converted into `scratch` where it is held otherwise (in 16 bits, or as bytes
// gathered from other processes). Called concurrently for different sequences.
void save_activations(const std::filesystem::path& staging, int64_t hidden,
                      const std::vector<int64_t>& sizes,
                      const std::function<const float*(size_t, std::vector<float>&)>& rows,
                      int64_t blocks_done);
// acts-<blocks_done>.bin written a sequence at a time, as each becomes available (from any thread,
// in any order; the disk writes start at once), then made durable and visible by commit().
// Destroyed uncommitted, it leaves no file behind.
class ActivationFileWrite {
 public:
  ActivationFileWrite(const std::filesystem::path& staging, int64_t hidden,
                      const std::vector<int64_t>& sizes, int64_t blocks_done);
  // Sequence s: sizes[s] fp32 values.
  void write_sequence(size_t s, const float* values) const;
  void commit() { file_.commit(); }

 private:
  std::vector<int64_t> sizes_;
  std::vector<uint64_t> offset_;
  AtomicFileWrite file_;
};
// Removes the activation files other than acts-<blocks_done>.bin.
void remove_activations_except(const std::filesystem::path& staging, int64_t blocks_done);

}  // namespace gptq
