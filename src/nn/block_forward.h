// The forward pass of one transformer block, split into stages so that GPTQ can take the
// Hessians of the linears of each stage with the earlier stages already quantized while running
// every calibration sequence through the block only once (Optimum's true-sequential semantics).
//
// Every supported block has four stages, each ending where a set of linears reads its input:
//   kAttnIn  (q, k, v  or fused qkv)          input: attn_norm(x)
//   kAttnOut (o / dense / out_proj)           input: attention output (heads concatenated)
//   kMlpIn   (gate, up, fused gate_up or fc1) input: mlp_norm(x + attn)  (parallel: mlp_norm(x))
//   kMlpMid  (down / fc2)                     input: act(gate) * up  or  act(fc1)
// run_stage(g, state, sink) computes the input of stage g from the state left by stage g-1
// (stage 0 starts from the block input) and reports the input rows of each linear of the stage
// to `sink`, under the linear's capture key (linears that read the same rows share one key, e.g.
// "attn_in" for q/k/v): the caller owns what it makes of them (the Hessians). finish(state)
// applies the last stage's linears and the residual and leaves the block output in state.resid.
//
// What each stage does (transformers semantics, fp32):
//   kAttnIn : h = attn_norm(resid)                       (resid keeps the block input x)
//   kAttnOut: q, k, v = attn_in linears(h); optional per-head q/k norms; RoPE on q, k; causal
//             GQA attention (optional soft-capping and sliding window); h = heads concatenated
//   kMlpIn  : a = o(h) (optional attn_out_norm(a)); sequential: resid += a, h = mlp_norm(resid);
//             parallel residual: aux = a, h = mlp_norm(resid)
//   kMlpMid : gated: h = act(gate(h)) * up(h) (fused: [gate | up] = gate_up(h));
//             plain: h = act(fc1(h))
//   finish  : m = down(h) (optional mlp_out_norm(m)); resid += m (parallel: (m + aux) + resid)
// The linears used are the current ones (after set_weight / set_linear).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/model_config.h"
#include "nn/kv_cache.h"
#include "nn/moe.h"

namespace gptq {

class TensorStore;

enum class LinearGroup : int { kAttnIn = 0, kAttnOut = 1, kMlpIn = 2, kMlpMid = 3 };
constexpr int kNumLinearGroups = 4;

// A linear layer y = x W^T + b as the forward uses it (dense fp32 now; QuantLinear later).
class LinearOp {
 public:
  virtual ~LinearOp() = default;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  // x [rows, in] -> y [rows, out] (overwritten).
  virtual void forward(const float* x, int64_t rows, float* y) const = 0;
};

// What a sparse MoE layer carries between its stages for one sequence.
struct MoeSequenceState {
  nn::MoeRouting routing;               // from kMlpIn
  std::vector<std::vector<float>> mid;  // per expert: act(gate(x)) * up(x) of its routed rows
  std::vector<float> out;               // [T, hidden]: weighted expert outputs accumulated so far
  std::vector<float> shared_scale;      // [T]: sigmoid(shared_expert_gate(x))
  bool experts_accumulated = false;     // every expert's output is in `out` (expert by expert)
};

// Per-sequence state carried between stages.
struct SequenceState {
  int64_t tokens = 0;
  std::vector<float> resid;  // [T, hidden]: block input, then the residual stream, then the output
  std::vector<float> h;      // [T, width]: input of the current linear group
  std::vector<float> aux;    // [T, hidden]: attention output kept for the parallel residual
  std::unique_ptr<MoeSequenceState> moe;  // sparse MoE layers
  // Several sequences run as one state (their rows concatenated: one GEMM per linear for all of
  // them): their token counts in order, summing to `tokens`; empty = one sequence. Rotary positions
  // and causal attention restart at each sequence; every other operation is row-wise, so each
  // sequence's rows are what it gets alone. Not for forward_cached.
  std::vector<int64_t> segments;
};

// fn(first_row, rows) for each sequence of the state, in order.
template <class Fn>
void for_each_segment(const SequenceState& st, Fn&& fn) {
  if (st.segments.empty()) {
    fn(int64_t{0}, st.tokens);
    return;
  }
  int64_t r0 = 0;
  for (const int64_t len : st.segments) {
    fn(r0, len);
    r0 += len;
  }
}

// Receives the input rows [n_rows, width] of the linears with capture key `key`.
using CaptureSink =
    std::function<void(const std::string& key, const float* rows, int64_t n_rows, int64_t width)>;

struct BlockOptions {
  // false: the linears are not loaded (e.g. a quantized checkpoint): each must be given with
  // set_linear() before the block runs; norms and biases are still loaded.
  bool load_linears = true;
  // The block list ("model.layers"); "" = detected from the tensor names (Optimum's patterns).
  std::string block_name;
  // Sparse MoE layers: the experts' weights are read only by load_experts() (bounded memory when
  // the experts are processed a few at a time).
  bool lazy_experts = false;
  // Sparse MoE layers: every token, not only the routed ones, is reported to each expert's
  // capture keys (--moe-calibration all); the forward still uses the real routing.
  bool moe_capture_all = false;
};

class BlockForward {
 public:
  // Loads block `index` (weights converted to fp32 from the mmap'ed checkpoint). Only this block's
  // tensors are read; the store may be closed afterwards.
  BlockForward(const ModelConfig& config, const TensorStore& store, int64_t index);
  BlockForward(const ModelConfig& config, const TensorStore& store, int64_t index,
               const BlockOptions& options);
  ~BlockForward();
  BlockForward(const BlockForward&) = delete;
  BlockForward& operator=(const BlockForward&) = delete;

  int64_t index() const;
  const std::string& prefix() const;  // full name prefix of the block, e.g. "model.layers.3."
  // All linears in registration order (ArchSpec::linears).
  const std::vector<std::string>& linears() const;

  // Linear modules of the block (local names, e.g. "self_attn.q_proj") in each group.
  const std::vector<std::string>& group_linears(LinearGroup g) const;
  // Frees the weights of group g's linears (experts excepted: see release_experts) once every
  // sequence has run the stage that applies them; running that stage again is an error.
  void release_group(LinearGroup g);
  LinearGroup group_of(const std::string& local_linear) const;
  // The key under which run_stage reports the input rows of a linear (shared by the linears that
  // read the same rows).
  const std::string& capture_key(const std::string& local_linear) const;

  // {out_features N, in_features K} of a linear, as the architecture defines it.
  std::pair<int64_t, int64_t> linear_dims(const std::string& local_linear) const;
  // Dense weight of a linear as the math matrix W [N, K] (Conv1D transposed) and its bias.
  const std::vector<float>& weight(const std::string& local_linear) const;
  // Replaces the weight (e.g. by the GPTQ dequantized one), same shape [N, K].
  void set_weight(const std::string& local_linear, std::vector<float> w_nk);
  // Bias of a linear ([N], empty if it has none), as loaded from the checkpoint.
  const std::vector<float>& bias(const std::string& local_linear) const;
  // Replaces the linear by another implementation (QuantLinear at inference); the op computes
  // x W^T + b including the bias. weight() is unavailable afterwards (set_weight restores a dense
  // linear with the loaded bias).
  void set_linear(const std::string& local_linear, std::unique_ptr<LinearOp> op);
  // The linear as the forward uses it (throws if it has not been set).
  const LinearOp& linear(const std::string& local_linear) const;

  // stage g in 0..3: compute the input of group g into state.h (width = in_features of the group)
  // and report it to `sink` (if given) under the capture key of each linear of the group.
  void run_stage(LinearGroup g, SequenceState& state, const CaptureSink& sink = {}) const;
  // Frees the calling thread's scratch buffers (up to a few [tokens, intermediate] arrays, which
  // the stages reuse from one state to the next): between stages, before memory-hungry work.
  static void release_scratch();
  // Applies kMlpMid and the residual: the block output ends in state.resid.
  void finish(SequenceState& state) const;
  // Whole block: x [T, hidden] in place.
  void forward(float* x, int64_t tokens) const;
  // Whole block on a state whose resid holds the input (reuses the state's buffers).
  void forward(SequenceState& state) const;

  // ---- Sparse MoE layers (Mixtral, Qwen-MoE): experts a few at a time ----
  // In such a block run_stage(kMlpIn) routes the tokens (state.moe) and reports "mlp_in" (the
  // shared expert's input) and "expert.<e>.in" (the rows routed to expert e); run_stage(kMlpMid)
  // computes and reports the experts' "expert.<e>.mid" and the shared expert's "shared_mid";
  // finish() adds the weighted expert outputs. With lazy experts the caller runs them chunk by
  // chunk instead, after kMlpIn: load_experts, expert_inputs (capture), expert_mids,
  // accumulate_experts, release_experts; then kMlpMid and finish() handle the shared expert only.
  bool is_moe() const;
  int64_t num_experts() const;
  void load_experts(int64_t e0, int64_t e1);
  void release_experts(int64_t e0, int64_t e1);
  void expert_inputs(const SequenceState& state, int64_t e0, int64_t e1,
                     const CaptureSink& sink) const;
  void expert_mids(SequenceState& state, int64_t e0, int64_t e1, const CaptureSink& sink) const;
  void accumulate_experts(SequenceState& state, int64_t e0, int64_t e1) const;

  // Incremental forward with a KV cache (generation): state.resid holds the block inputs of the
  // state.tokens new positions kv.past, kv.past + 1, ...; their keys (after rotary) and values are
  // written to rows kv.past.. of the cache and new position p attends to rows 0..p. Leaves the
  // block outputs in state.resid: the rows the whole-sequence forward gives those positions (up
  // to rounding). Needs kv.width == kv_heads * head_dim and kv.past + tokens <= kv.capacity.
  void forward_cached(SequenceState& state, const nn::KvBlockView& kv) const;

 private:
  void compute_stage(LinearGroup g, SequenceState& state, const CaptureSink& sink) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gptq
