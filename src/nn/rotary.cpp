#include "nn/rotary.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "util/error.h"
#include "util/thread_pool.h"

namespace gptq::nn {

namespace {

// torch: 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)), all float32.
std::vector<float> default_inv_freq(double theta, int64_t rot_dims) {
  std::vector<float> f(static_cast<size_t>(rot_dims / 2));
  const float base = static_cast<float>(theta);
  for (size_t i = 0; i < f.size(); ++i)
    f[i] = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(rot_dims));
  return f;
}

// _compute_llama3_parameters (float32 tensors, python-float constants).
void llama3_scale(const RopeSpec& s, std::vector<float>& f) {
  const auto factor = static_cast<float>(s.factor), lo = static_cast<float>(s.low_freq_factor),
             hi = static_cast<float>(s.high_freq_factor);
  const double old_ctx = static_cast<double>(s.original_max_positions);
  const auto low_wavelen = static_cast<float>(old_ctx / s.low_freq_factor);
  const auto high_wavelen = static_cast<float>(old_ctx / s.high_freq_factor);
  for (float& v : f) {
    const float wavelen = static_cast<float>(2 * std::numbers::pi) / v;
    const float scaled = wavelen > low_wavelen ? v / factor : v;
    const float smooth = (static_cast<float>(old_ctx) / wavelen - lo) / (hi - lo);
    const float smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    v = medium ? smoothed : scaled;
  }
}

// _compute_yarn_parameters: blend of interpolated and extrapolated frequencies over a linear
// ramp between the correction dimensions of beta_fast and beta_slow rotations.
std::vector<float> yarn_inv_freq(const RopeSpec& s, int64_t dim) {
  const double base = s.theta;
  auto correction_dim = [&](double rotations) {
    return (static_cast<double>(dim) *
            std::log(static_cast<double>(s.original_max_positions) / (rotations * 2 * std::numbers::pi))) /
           (2 * std::log(base));
  };
  double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // linear_ramp_factor's singularity guard
  const int64_t half = dim / 2;
  std::vector<float> f(static_cast<size_t>(half));
  const auto fb = static_cast<float>(base), factor = static_cast<float>(s.factor);
  for (int64_t i = 0; i < half; ++i) {
    const float pos_freq = std::pow(fb, static_cast<float>(2 * i) / static_cast<float>(dim));
    const float extrapolation = 1.0f / pos_freq, interpolation = 1.0f / (factor * pos_freq);
    const float ramp = std::clamp(static_cast<float>((static_cast<double>(i) - low) / (high - low)), 0.0f, 1.0f);
    const float extra_factor = 1.0f - ramp;
    f[static_cast<size_t>(i)] = interpolation * (1 - extra_factor) + extrapolation * extra_factor;
  }
  return f;
}

}  // namespace

std::vector<float> rope_inv_freq(const RopeSpec& s, int64_t rot_dims, int64_t seq_len) {
  if (rot_dims <= 0 || rot_dims % 2 != 0)
    fail("rotary embedding: the number of rotated dimensions must be positive and even, got {}",
         rot_dims);
  if (s.type == "default") return default_inv_freq(s.theta, rot_dims);
  if (s.type == "linear") {
    std::vector<float> f = default_inv_freq(s.theta, rot_dims);
    for (float& v : f) v /= static_cast<float>(s.factor);
    return f;
  }
  if (s.type == "dynamic") {
    const auto max_pos = static_cast<double>(s.dynamic_base_positions);
    const double len = seq_len > s.dynamic_base_positions ? static_cast<double>(seq_len) : max_pos;
    const auto d = static_cast<double>(rot_dims);
    const double base = s.theta * std::pow(s.factor * len / max_pos - (s.factor - 1), d / (d - 2));
    return default_inv_freq(base, rot_dims);
  }
  if (s.type == "llama3") {
    std::vector<float> f = default_inv_freq(s.theta, rot_dims);
    llama3_scale(s, f);
    return f;
  }
  if (s.type == "yarn") return yarn_inv_freq(s, rot_dims);
  if (s.type == "longrope") {
    const std::vector<double>& ext = seq_len > s.original_max_positions ? s.long_factor : s.short_factor;
    if (static_cast<int64_t>(ext.size()) != rot_dims / 2)
      fail("longrope: {} has {} values; the rotary dimension {} needs {}",
           seq_len > s.original_max_positions ? "long_factor" : "short_factor", ext.size(), rot_dims,
           rot_dims / 2);
    std::vector<float> f(ext.size());
    const auto base = static_cast<float>(s.theta);
    for (size_t i = 0; i < f.size(); ++i)
      f[i] = 1.0f / (static_cast<float>(ext[i]) *
                     std::pow(base, static_cast<float>(2 * i) / static_cast<float>(rot_dims)));
    return f;
  }
  fail("rotary embedding: RoPE type '{}' is not supported", s.type);
}

RotaryTable::RotaryTable(int64_t rot_dims, double theta, int64_t positions)
    : RotaryTable(rope_inv_freq(RopeSpec{.theta = theta}, rot_dims, 0), 1.0f, positions) {}

RotaryTable::RotaryTable(std::vector<float> inv_freq, float attention_factor, int64_t positions)
    : rot_dims_(static_cast<int64_t>(inv_freq.size()) * 2),
      positions_(positions),
      attention_factor_(attention_factor),
      inv_freq_(std::move(inv_freq)) {
  const int64_t half = rot_dims_ / 2;
  cos_.resize(static_cast<size_t>(positions * half));
  sin_.resize(static_cast<size_t>(positions * half));
  for (int64_t p = 0; p < positions; ++p) angles(p, cos_.data() + p * half, sin_.data() + p * half);
}

void RotaryTable::angles(int64_t p, float* c, float* s) const {
  const int64_t half = rot_dims_ / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = static_cast<float>(p) * inv_freq_[i];
    c[i] = std::cos(a);
    s[i] = std::sin(a);
    if (attention_factor_ != 1.0f) {
      c[i] *= attention_factor_;
      s[i] *= attention_factor_;
    }
  }
}

void RotaryTable::apply(float* x, int64_t tokens, int64_t heads, int64_t row_stride,
                        int64_t head_stride, int64_t pos0) const {
  const int64_t half = rot_dims_ / 2;
  constexpr int64_t kTokensPerTask = 32;  // tokens are independent: ranges run in parallel
  parallel_ranges(tokens, kTokensPerTask, [&](int64_t t0, int64_t t1) {
    std::vector<float> extra_cos, extra_sin;  // positions beyond the table (rare)
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t p = pos0 + t;
      const float* c;
      const float* s;
      if (p < positions_) {
        c = cos_.data() + p * half;
        s = sin_.data() + p * half;
      } else {
        extra_cos.resize(half);
        extra_sin.resize(half);
        angles(p, extra_cos.data(), extra_sin.data());
        c = extra_cos.data();
        s = extra_sin.data();
      }
      float* row = x + t * row_stride;
      for (int64_t h = 0; h < heads; ++h) {
        float* v = row + h * head_stride;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = v[i], x2 = v[i + half];
          v[i] = x1 * c[i] - x2 * s[i];
          v[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
    }
  });
}

Rope::Rope(const RopeSpec& spec, int64_t rot_dims, int64_t table_positions)
    : spec_(spec), rot_dims_(rot_dims), table_positions_(table_positions) {
  const auto af = static_cast<float>(spec.attention_factor);
  base_ = RotaryTable(rope_inv_freq(spec, rot_dims, 0), af, table_positions);
  if (spec.type == "longrope")
    long_ = RotaryTable(rope_inv_freq(spec, rot_dims, spec.original_max_positions + 1), af, table_positions);
}

std::shared_ptr<const RotaryTable> Rope::dynamic_table(int64_t seq_len) const {
  const std::lock_guard lock(mutex_);
  auto it = dynamic_.find(seq_len);
  if (it != dynamic_.end()) return it->second;
  if (dynamic_.size() >= 64) dynamic_.clear();  // bounded: lengths of one run are few
  auto t = std::make_shared<const RotaryTable>(rope_inv_freq(spec_, rot_dims_, seq_len), 1.0f,
                                               std::min(seq_len, table_positions_));
  dynamic_.emplace(seq_len, t);
  return t;
}

void Rope::apply(float* x, int64_t tokens, int64_t heads, int64_t row_stride, int64_t head_stride,
                 int64_t pos0, int64_t seq_len) const {
  if (spec_.type == "dynamic" && seq_len > spec_.dynamic_base_positions) {
    dynamic_table(seq_len)->apply(x, tokens, heads, row_stride, head_stride, pos0);
    return;
  }
  const RotaryTable& t =
      spec_.type == "longrope" && seq_len > spec_.original_max_positions ? long_ : base_;
  t.apply(x, tokens, heads, row_stride, head_stride, pos0);
}

}  // namespace gptq::nn
