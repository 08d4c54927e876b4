// Options of the GPTQ quantizer (Optimum GPTQQuantizer / AutoGPTQ BaseQuantizeConfig semantics).
#pragma once

#include <string>

namespace gptq {

enum class CheckpointFormat { kGptq, kGptqV2 };  // v1 stores zero - 1; v2 stores zero

struct QuantConfig {
  int bits = 4;                 // 2, 3, 4 or 8
  int group_size = 128;         // -1 (one group per row) or > 0
  double damp_percent = 0.1;    // fraction of mean(diag H) added to the diagonal, in (0, 1)
  bool desc_act = false;        // act-order: columns by decreasing diag(H)
  bool static_groups = false;   // group params from the un-updated weights, up front
  bool sym = true;
  bool act_group_aware = false;  // GPTQModel GAR (needs group_size > 0 and !desc_act)
  // MSE grid search of the clipping range (GPTQModel `mse`); 0 = off, else the norm exponent.
  double mse_norm = 0.0;
  int mse_grid = 100;
  double mse_maxshrink = 0.8;
  // Cholesky failure: if > 0, add this to damp_percent and retry while damp < 1 (GPTQModel
  // damp_auto_increment); if 0, fail with an error naming the layer.
  double damp_auto_increment = 0.0;
  int block_size = 128;  // lazy-batch width of the solver

  int maxq() const { return (1 << bits) - 1; }
  // Throws gptq::Error (usage) naming the option if a value is out of range.
  void validate() const;
};

}  // namespace gptq
