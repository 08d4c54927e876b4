#include "nn/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "nn/dense_linear.h"

namespace gptq::nn {

void route_tokens(const float* x, int64_t tokens, int64_t hidden, const float* router, int64_t experts,
                  int64_t top_k, bool renormalize, MoeRouting& out, std::vector<float>& logits) {
  logits.resize(static_cast<size_t>(tokens * experts));
  linear_forward(x, tokens, router, nullptr, experts, hidden, logits.data());
  out.tokens = tokens;
  out.top_k = top_k;
  out.expert.resize(static_cast<size_t>(tokens * top_k));
  out.weight.resize(static_cast<size_t>(tokens * top_k));
  out.rows.assign(static_cast<size_t>(experts), {});
  out.row_weight.assign(static_cast<size_t>(experts), {});
  std::vector<float> p(static_cast<size_t>(experts));
  std::vector<int32_t> order(static_cast<size_t>(experts));
  for (int64_t t = 0; t < tokens; ++t) {
    const float* l = logits.data() + t * experts;
    const float mx = *std::max_element(l, l + experts);
    double sum = 0;
    for (int64_t e = 0; e < experts; ++e) sum += (p[e] = std::exp(l[e] - mx));
    const auto inv = static_cast<float>(1.0 / sum);
    for (float& v : p) v *= inv;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float total = 0;
    for (int64_t j = 0; j < top_k; ++j) total += p[order[j]];
    for (int64_t j = 0; j < top_k; ++j) {
      const int32_t e = order[j];
      const float w = renormalize ? p[e] / total : p[e];
      out.expert[t * top_k + j] = e;
      out.weight[t * top_k + j] = w;
      out.rows[e].push_back(static_cast<int32_t>(t));
      out.row_weight[e].push_back(w);
    }
  }
}

void gather_rows(const float* x, int64_t width, const std::vector<int32_t>& rows, std::vector<float>& out) {
  out.resize(rows.size() * static_cast<size_t>(width));
  for (size_t r = 0; r < rows.size(); ++r)
    std::copy(x + rows[r] * width, x + (rows[r] + 1) * width, out.data() + r * width);
}

}  // namespace gptq::nn
