// gptq::quantize: a Hugging Face checkpoint in, a GPTQ checkpoint out (what Optimum's
// GPTQQuantizer.quantize_model + save do, or GPTQModel's quantize + save). The parameters keep
// Optimum's names where Optimum has them; every default is Optimum's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gptq/callbacks.h"

namespace gptq {

// Calibration data: give exactly one of the three (none is fine for method "rtn").
struct Dataset {
  // A text file (tokenized whole, windows drawn at random), a .jsonl file ("text" field per line:
  // documents drawn at random, then a window) or a pre-tokenized .json file (a list of token-id
  // lists), as `gptq quantize --calib`. Draws: nsamples windows of model_seqlen tokens, `seed`.
  std::string path;
  // Texts: each one is one calibration sequence, tokenized with the model's tokenizer (special
  // tokens added as transformers' tokenizer(text) does), cut to model_seqlen tokens when longer.
  std::vector<std::string> texts;
  // Token-id sequences, used as given (at most nsamples of them), like a pre-tokenized .json file.
  std::vector<std::vector<int32_t>> token_ids;

  bool empty() const { return path.empty() && texts.empty() && token_ids.empty(); }
};

struct QuantizeParams {
  int bits = 4;                 // 2, 3, 4 or 8
  int group_size = 128;         // columns per quantization group; -1: one group per row
  double damp_percent = 0.1;    // dampening, fraction of mean(diag H), in (0, 1)
  bool desc_act = false;        // act-order: columns by decreasing Hessian diagonal
  bool sym = true;              // symmetric grid (false: asymmetric)
  bool true_sequential = true;  // the layers of a block one sequential group after the other
  bool static_groups = false;   // group parameters from the original weights, up front
  // Tokens per calibration sequence; unset: min(4028, the model's maximum positions).
  std::optional<int64_t> model_seqlen;
  std::string block_name_to_quantize;  // path of the block list; "": detected (Optimum's patterns)
  // Layers to quantize, by suffix, one list per sequential group; empty: every linear of a block.
  std::vector<std::vector<std::string>> modules_in_block_to_quantize;
  Dataset dataset;
  int64_t nsamples = 128;  // calibration sequences drawn from a file
  uint64_t seed = 0;       // calibration sampling seed
  // "gptq" (v1) or "gptq_v2"; "": gptq (v1, read by every loader; README "Which loaders read
  // what").
  std::string checkpoint_format;
  int threads = 0;  // compute threads for every stage; 0: all cores. Never changes the output.

  // Beyond Optimum (GPTQModel's names where it has them):
  std::string method = "gptq";       // or "rtn": round-to-nearest, no calibration
  double damp_auto_increment = 0.0;  // on a Cholesky failure raise damp_percent by this (0: fail)
  bool act_group_aware = false;  // GPTQModel's group-aware reordering (group_size > 0, no desc_act)
  double mse = 0.0;  // MSE search of the clipping range with this norm (e.g. 2.4); 0: off
  bool allow_unaligned =
      false;  // also quantize layers whose in/out features are not multiples of 32
  // All-zero fp16 biases for bias-free quantized layers (optimum < 1.20 and auto-gptq need them).
  bool zero_bias = true;
  uint64_t max_shard_size = 0;  // bytes per output shard (with an index); 0: one file
  int64_t batch_size = 1;       // accepted for Optimum parity: sequences are never padded
  bool resume = false;          // continue the interrupted run in OUT.partial/
  // GPTQModel's `dynamic`: a JSON object of per-module overrides ("+:regex": {bits, group_size,
  // desc_act, sym, damp_percent}, "-:regex": {} leaves matching modules float); "": none.
  std::string dynamic;
  // Calibration sequences per Hessian chunk (sums in chunks, chunks added in order: the same bytes
  // for any number of MPI processes, which own whole chunks); 0: one chunk of all sequences.
  int64_t hessian_chunk = 0;
  // Calibration tokens per forward batch: whole sequences, their rows concatenated (one GEMM per
  // linear and one SYRK per Hessian for the batch; attention stays per sequence), never across a
  // Hessian chunk; MoE blocks run one sequence at a time. 0: one sequence at a time. Changes the
  // fp32 rounding of the Hessian sums, not what they are.
  int64_t batch_rows = 2048;
  // Storage of the activations between blocks: "fp32" (default), "fp16" or "bf16" (half the
  // memory).
  std::string activation_dtype = "fp32";
  bool lm_head = false;  // also quantize the output head (GPTQModel's lm_head; refused when tied)
  // Mixture of experts: "routed" (each expert's Hessian from the tokens routed to it, GPTQModel) or
  // "all" (from every token; the block output still uses the real routing).
  std::string moe_calibration = "routed";
  // Experts routed fewer calibration tokens are rounded to nearest; -1: 0.1% of the tokens.
  int64_t moe_min_tokens = -1;
  int64_t moe_experts_per_chunk = 8;  // experts held in fp32 at once (memory; never the output)
};

// One quantized layer.
struct LayerRecord {
  std::string name;  // full name, e.g. "model.layers.3.mlp.down_proj"
  int64_t block = 0;
  int64_t out_features = 0, in_features = 0;
  double loss = 0;       // GPTQ's sum of squared (error / U[c, c]) / 2 per calibration sequence
  double damp = 0;       // damp_percent finally used
  int damp_retries = 0;  // raises by damp_auto_increment
  int dead_columns = 0;  // input channels that saw no calibration signal
  // Zero points equal to 0 (output row x group; asymmetric only): v1 readers disagree on them.
  int64_t zero_point_0_groups = 0;
  int64_t expert = -1;        // MoE expert index; -1: not an expert
  int64_t tokens = -1;        // calibration tokens routed to the expert; -1: not an expert
  bool rtn_fallback = false;  // an expert with too few tokens, rounded to nearest
  double seconds = 0;
};

// Wall and process CPU time spent in one stage of the run: "load" (config, plan, calibration
// tokenization), "copy" (tensors kept float), "forward" (the blocks on the calibration data),
// "hessian", "solve" (GPTQ / RTN), "pack", "write" (output, run state). cpu / wall is the number
// of cores the stage kept busy.
struct StageTime {
  std::string name;
  double wall_seconds = 0;
  double cpu_seconds = 0;
};

struct QuantizeResult {
  std::string model;   // the model directory used
  std::string output;  // the output directory
  std::string block_name;
  int64_t num_blocks = 0;
  std::vector<LayerRecord> layers;  // every quantized layer, in order (earlier runs' too on resume)
  int64_t layers_quantized = 0;
  int64_t calibration_sequences = 0;
  int64_t calibration_seqlen = 0;
  std::vector<std::string> output_files;  // shards (and the index)
  int threads = 0;                        // compute threads used
  double seconds = 0;
  uint64_t peak_rss_bytes = 0;
  double gflop = 0;
  double gflops_per_second = 0;
  std::vector<StageTime> stages;
  std::string options_json;              // the effective options (JSON object)
  std::string quantization_config_json;  // as written to config.json (JSON object)
  int64_t zero_point_0_groups = 0;       // over every layer
  int64_t layers_with_zero_point_0 = 0;
  std::vector<std::string> loader_warnings;  // what some GPTQ loaders make of this output

  // The whole result as one JSON document (what `gptq quantize --report FILE` writes).
  std::string to_json() const;
};

// Quantizes `model` (a model directory, or a Hugging Face id "org/name" found in the local cache)
// into the directory `out`, which must not exist: it appears when the run completes; until then
// the work is in `out` + ".partial/", durable after every block (params.resume continues it).
// The bytes written depend only on the model, the calibration data and the parameters: never on
// params.threads. Throws gptq::Error (its code is the `gptq quantize` exit code).
QuantizeResult quantize(const std::string& model, const std::string& out,
                        const QuantizeParams& params = {}, const Callbacks& callbacks = {});

// A size like "5GB", "500MB", "2GiB" or "1024" (bytes) in bytes, for max_shard_size; "" or "0": 0.
// Throws gptq::Error (kUsage).
uint64_t parse_byte_size(const std::string& size);

}  // namespace gptq
