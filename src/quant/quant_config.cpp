// QuantConfig::validate: the ranges Optimum/transformers accept on load (spec 3.9) plus the
// constraints of the optional GPTQModel features (GAR, MSE search, damping escalation).
#include <cmath>

#include "quant/quant_config.h"
#include "util/error.h"

namespace gptq {

void QuantConfig::validate() const {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
    fail_code(ExitCode::kUsage, "--bits {}: must be one of 2, 3, 4, 8", bits);
  }
  if (group_size != -1 && group_size <= 0) {
    fail_code(ExitCode::kUsage,
              "--group-size {}: must be -1 (one group per row) or a positive number of columns "
              "(typically 32, 64 or 128)",
              group_size);
  }
  if (!(damp_percent > 0.0 && damp_percent < 1.0)) {
    fail_code(ExitCode::kUsage,
              "--damp {}: must lie strictly between 0 and 1 (fraction of the mean Hessian "
              "diagonal; 0.01 - 0.1 is usual)",
              damp_percent);
  }
  if (!(damp_auto_increment >= 0.0 && damp_auto_increment < 1.0)) {
    fail_code(ExitCode::kUsage,
              "--damp-auto-increment {}: must be 0 (off) or a step in (0, 1), e.g. 0.01",
              damp_auto_increment);
  }
  if (act_group_aware && group_size <= 0) {
    fail_code(ExitCode::kUsage,
              "--act-group-aware needs --group-size > 0 (got {}): it reorders columns inside "
              "groups",
              group_size);
  }
  if (act_group_aware && desc_act) {
    fail_code(ExitCode::kUsage,
              "--act-group-aware and --desc-act exclude each other: pick one column ordering");
  }
  if (!(std::isfinite(mse_norm) && mse_norm >= 0.0)) {
    fail_code(ExitCode::kUsage, "--mse {}: must be 0 (off) or a positive norm exponent, e.g. 2.4",
              mse_norm);
  }
  if (mse_norm > 0.0) {
    if (mse_grid <= 0) {
      fail_code(ExitCode::kUsage, "--mse-grid {}: must be a positive number of steps (100)",
                mse_grid);
    }
    if (!(mse_maxshrink > 0.0 && mse_maxshrink <= 1.0)) {
      fail_code(ExitCode::kUsage, "--mse-maxshrink {}: must lie in (0, 1] (0.8 is usual)",
                mse_maxshrink);
    }
  }
  if (block_size <= 0) {
    fail_code(ExitCode::kUsage, "--block-size {}: must be a positive number of columns (128)",
              block_size);
  }
}

}  // namespace gptq
