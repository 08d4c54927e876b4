// Sparse Mixture-of-Experts routing, as transformers' MixtralSparseMoeBlock /
// Qwen2MoeSparseMoeBlock / Qwen3MoeSparseMoeBlock compute it (fp32):
//   logits = x R^T                       [T, E]  (router, no bias)
//   p = softmax(logits)                  (float32)
//   (w, e) = topk(p, k)                  largest first; ties: the lower expert index
//   w /= sum(w)                          only when renormalising (Mixtral always)
// Each token's output is sum_j w_j expert_{e_j}(x); the experts are run on the rows routed to them.
#pragma once

#include <cstdint>
#include <vector>

namespace gptq::nn {

struct MoeRouting {
  int64_t tokens = 0, top_k = 0;
  std::vector<int32_t> expert;  // [T * k]: chosen experts of token t, by decreasing probability
  std::vector<float> weight;    // [T * k]: their routing weights
  // Per expert: the tokens routed to it (ascending) and the weight of each.
  std::vector<std::vector<int32_t>> rows;
  std::vector<std::vector<float>> row_weight;
};

// Routes x [T, hidden] with router weight [E, hidden]. `logits` is scratch.
void route_tokens(const float* x, int64_t tokens, int64_t hidden, const float* router, int64_t experts,
                  int64_t top_k, bool renormalize, MoeRouting& out, std::vector<float>& logits);

// out [rows.size(), width] = the rows of x [*, width] listed in `rows`.
void gather_rows(const float* x, int64_t width, const std::vector<int32_t>& rows, std::vector<float>& out);

}  // namespace gptq::nn
