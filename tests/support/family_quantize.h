// Shared set-up of the tests that quantize tiny family checkpoints (tests/support/family_models.h):
// random token ids of the family vocabulary, a pre-tokenized calibration file, and the gap
// between the QuantLinear kernels and the dequantized float path.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "infer/load_model.h"
#include "support/family_models.h"
#include "support/fixtures.h"

namespace gptq::testing {

inline std::vector<int32_t> family_ids(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> u(0, static_cast<int32_t>(kFamilyVocab) - 1);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& e : ids) e = u(rng);
  return ids;
}

// `n` sequences of kFamilyTestTokens random ids, as a calibration .json file.
inline std::filesystem::path family_calibration(int n) {
  nlohmann::json calib = nlohmann::json::array();
  for (int s = 0; s < n; ++s) calib.push_back(family_ids(kFamilyTestTokens, 100 + s));
  const std::filesystem::path f = scratch_dir("calib") / "calib.json";
  std::ofstream(f) << calib.dump();
  return f;
}

// max |kernel logits - dequantized logits| / max |logits| of a GPTQ checkpoint on random tokens.
inline double kernel_vs_dequantized(const std::filesystem::path& dir) {
  const auto q = load_model(dir), deq = load_model(dir, LinearBackend::kDequantized);
  const std::vector<int32_t> probe = family_ids(kFamilyTestTokens, 3);
  const auto lk = q->model->logits(probe), ld = deq->model->logits(probe);
  double diff = 0, scale = 0;
  for (size_t i = 0; i < lk.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(lk[i] - ld[i])));
    scale = std::max(scale, static_cast<double>(std::abs(ld[i])));
  }
  return diff / scale;
}

}  // namespace gptq::testing
