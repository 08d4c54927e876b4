#include "dist/chunked_hessians.h"

#include <optional>

#include "util/error.h"

namespace gptq::dist {

void ChunkedHessians::add(const std::string& key, const float* rows, int64_t n, int64_t width) {
  auto& chunks = acc_[key];
  auto it = chunks.find(current_);
  if (it == chunks.end()) it = chunks.emplace(current_, HessianAccumulator(width)).first;
  it->second.add(rows, n, count_);
}

namespace {

std::map<std::string, HessianAccumulator> fold(
    std::map<std::string, std::map<int64_t, HessianAccumulator>>& acc) {
  std::map<std::string, HessianAccumulator> out;
  for (auto& [key, chunks] : acc) {
    std::optional<HessianAccumulator> sum;
    for (auto& [c, a] : chunks) {
      if (!sum)
        sum.emplace(std::move(a));
      else
        sum->merge(a);
    }
    if (sum) out.emplace(key, std::move(*sum));
  }
  return out;
}

}  // namespace

std::map<std::string, HessianAccumulator> ChunkedHessians::reduce(Communicator& comm,
                                                                  uint64_t* moved) {
  if (comm.size() == 1) {
    auto out = fold(acc_);
    acc_.clear();
    return out;
  }
  // Each process's partial sums (upper triangles only: the rest is 0 and never read) to every
  // process.
  Writer w;
  w.put(static_cast<uint64_t>(acc_.size()));
  for (const auto& [key, chunks] : acc_) {
    w.put_string(key);
    w.put(static_cast<uint64_t>(chunks.size()));
    for (const auto& [c, a] : chunks) {
      const int64_t k = a.k();
      w.put(c);
      w.put(k);
      w.put(a.nsamples());
      w.put(a.rows_seen());
      std::vector<float> upper;
      upper.reserve(static_cast<size_t>(k * (k + 1) / 2));
      for (int64_t i = 0; i < k; ++i)
        upper.insert(upper.end(), a.raw().begin() + i * k + i, a.raw().begin() + (i + 1) * k);
      w.put_array(upper.data(), upper.size());
    }
  }
  acc_.clear();
  if (moved) *moved += w.bytes.size() * static_cast<uint64_t>(comm.size() - 1);
  // The processes own consecutive chunks and list theirs in increasing order: taking them process
  // after process, each chunk is added as it arrives and the order is the chunk order.
  std::map<std::string, std::optional<HessianAccumulator>> sums;
  comm.allgather_each(w.bytes, [&](int r, std::span<const char> bytes) {
    Reader rd(bytes);
    const uint64_t keys = rd.get<uint64_t>();
    for (uint64_t i = 0; i < keys; ++i) {
      const std::string key = rd.get_string();
      const uint64_t nc = rd.get<uint64_t>();
      for (uint64_t j = 0; j < nc; ++j) {
        const int64_t c = rd.get<int64_t>(), k = rd.get<int64_t>(), nseq = rd.get<int64_t>(),
                      rows = rd.get<int64_t>();
        (void)c;
        const std::vector<float> upper = rd.get_array<float>();
        if (k <= 0 || upper.size() != static_cast<size_t>(k * (k + 1) / 2))
          fail_code(ExitCode::kInternal,
                    "Hessian of '{}' from process {}: {} values for in_features {}", key, r,
                    upper.size(), k);
        std::vector<float> xtx(static_cast<size_t>(k * k), 0.0f);
        size_t p = 0;
        for (int64_t a = 0; a < k; ++a)
          for (int64_t b = a; b < k; ++b) xtx[a * k + b] = upper[p++];
        HessianAccumulator part = HessianAccumulator::from_raw(k, nseq, rows, std::move(xtx));
        auto& sum = sums[key];
        if (!sum)
          sum.emplace(std::move(part));
        else
          sum->merge(part);
      }
    }
  });
  std::map<std::string, HessianAccumulator> out;
  for (auto& [key, sum] : sums) out.emplace(key, std::move(*sum));
  return out;
}

}  // namespace gptq::dist
