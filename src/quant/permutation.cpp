// Column processing orders of the solver: act-order (desc_act) and GPTQModel's group-aware
// reordering (GAR). Both sorts are stable so the order is deterministic on ties (torch's argsort
// does not promise that, spec 7.7).
#include <algorithm>
#include <numeric>

#include "quant/gptq.h"

namespace gptq {

std::vector<int32_t> act_order_permutation(const float* diag, int64_t k) {
  std::vector<int32_t> perm(static_cast<size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(),
                   [diag](int32_t a, int32_t b) { return diag[a] > diag[b]; });
  return perm;
}

std::vector<int32_t> gar_permutation(const float* diag, int64_t k, int64_t group_size) {
  const int64_t full = group_size > 0 ? k / group_size : 0;
  // Local order inside every full group, and the group's score = its largest diag.
  std::vector<int32_t> local(static_cast<size_t>(full * group_size));
  std::vector<float> score(static_cast<size_t>(full));
  for (int64_t g = 0; g < full; ++g) {
    int32_t* p = local.data() + g * group_size;
    std::iota(p, p + group_size, static_cast<int32_t>(g * group_size));
    std::stable_sort(p, p + group_size, [diag](int32_t a, int32_t b) { return diag[a] > diag[b]; });
    score[static_cast<size_t>(g)] = diag[p[0]];
  }
  std::vector<int32_t> order(static_cast<size_t>(full));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&score](int32_t a, int32_t b) { return score[a] > score[b]; });
  std::vector<int32_t> perm;
  perm.reserve(static_cast<size_t>(k));
  for (int32_t g : order) {
    const int32_t* p = local.data() + g * group_size;
    perm.insert(perm.end(), p, p + group_size);
  }
  for (int64_t c = full * group_size; c < k; ++c) perm.push_back(static_cast<int32_t>(c));
  return perm;
}

}  // namespace gptq
