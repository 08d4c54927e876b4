// Tiny random checkpoints of every architecture (config.json + model.safetensors written with the
// project's own writer), for tests of the forward pass, the pipeline and the loaders.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/dtype.h"

namespace gptq::testing {

constexpr int64_t kVocab = 50, kLayers = 2, kMaxPos = 64;

// An edit of a drawn tensor: row `row` (along the leading dimension) becomes `factor` x row
// `source`, or zeros when source < 0.
struct RowEdit {
  int64_t row = 0;
  int64_t source = -1;
  float factor = 1.0f;
};

struct TensorGen {
  std::string name;
  std::vector<int64_t> shape;
  float scale = 1.0f;  // value = offset + scale * N(0, 1)
  float offset = 0.0f;
  // Applied in order after the values are drawn (so every tensor draws the same numbers with or
  // without edits), before rounding to the stored dtype: a negated row rounds to exactly the
  // negation, a zero row stays exactly zero.
  std::vector<RowEdit> row_edits = {};
};

struct TinyModel {
  std::string family;  // "llama" (llama, mistral, qwen2), "gpt2", "opt", "gpt_neox"
  nlohmann::json config;
  std::vector<TensorGen> tensors;
};

void add_linear(TinyModel& m, const std::string& name, int64_t n, int64_t k, bool bias,
                bool conv1d = false);
void add_norm(TinyModel& m, const std::string& name, int64_t d, bool bias);

// llama / mistral / qwen2 (model_type `type`); inter = 0: 2 * hidden + 8.
TinyModel llama_like(const std::string& type, int64_t hidden, int64_t heads, int64_t kv,
                     int64_t head_dim, bool qkv_bias, bool tied, double theta, int64_t inter = 0);
TinyModel gpt2_model(int64_t hidden, int64_t heads);
TinyModel opt_model(int64_t hidden, int64_t heads, bool norm_before = true);
TinyModel neox_model(int64_t hidden, int64_t heads, bool parallel);

// Writes config.json + model.safetensors with random values stored as `dtype` into a fresh
// scratch directory (skip_tensor: leave one tensor out, for error tests).
std::filesystem::path write_tiny(const TinyModel& m, DType dtype, uint32_t seed,
                                 const std::string& skip_tensor = "");

}  // namespace gptq::testing
