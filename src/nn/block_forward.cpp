// BlockForward: one transformer block assembled from the shared pieces (norm, rotary, attention,
// activation, dense linears) as its ArchSpec and ModelHparams describe it.
#include "nn/block_forward.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <utility>

#include "io/safetensors.h"
#include "nn/activation.h"
#include "nn/attention.h"
#include "nn/dense_linear.h"
#include "nn/moe.h"
#include "nn/norm.h"
#include "nn/rotary.h"
#include "nn/weight_loader.h"
#include "util/error.h"
#include "util/huge_pages.h"
#include "util/thread_pool.h"

namespace gptq {

namespace {

// dst[i] += src[i] (the residual adds).
void add_into(float* dst, const float* src, int64_t n) {
  parallel_ranges(n, kElementwiseGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dst[i] += src[i];
  });
}

// What a linear computes inside the block (from the BlockLayout names).
enum class Role {
  kQ,
  kK,
  kV,
  kQkv,
  kO,
  kGate,
  kUp,
  kDown,
  kGateUp,
  kExpertGate,
  kExpertUp,
  kExpertDown,
  kSharedGate,
  kSharedUp,
  kSharedDown
};
constexpr int kNumRoles = 15;

struct Slot {
  std::string name;         // local, e.g. "self_attn.q_proj"
  std::string capture_key;  // input group: linears reading the same rows share it
  LinearKind kind = LinearKind::kLinear;
  LinearGroup group = LinearGroup::kAttnIn;
  Role role = Role::kQ;
  int64_t expert = -1;      // expert index of an expert linear
  int64_t n = 0, k = 0;     // out, in features
  std::vector<float> bias;  // [n] or empty
  std::unique_ptr<LinearOp> op;
  nn::DenseLinear* dense = nullptr;  // op when it is the dense fp32 linear
};

LinearGroup parse_group(const std::string& g, const std::string& arch, const std::string& linear) {
  if (g == "attn_in") return LinearGroup::kAttnIn;
  if (g == "attn_out") return LinearGroup::kAttnOut;
  if (g == "mlp_in" || (g.starts_with("expert.") && g.ends_with(".in"))) return LinearGroup::kMlpIn;
  if (g == "mlp_mid" || g == "shared_mid" || (g.starts_with("expert.") && g.ends_with(".mid")))
    return LinearGroup::kMlpMid;
  fail(
      "architecture '{}': linear '{}' has input group '{}'; expected attn_in, attn_out, mlp_in or "
      "mlp_mid",
      arch, linear, g);
}

// Role and expert index of a linear of a sparse MoE layer; false if it is none of them.
bool moe_role_of(const MoeLayout& m, const std::string& name, int64_t experts, Role& role,
                 int64_t& expert) {
  if (m.empty()) return false;
  const std::pair<const std::string*, Role> shared[] = {{&m.shared_gate, Role::kSharedGate},
                                                        {&m.shared_up, Role::kSharedUp},
                                                        {&m.shared_down, Role::kSharedDown}};
  for (const auto& [n, r] : shared)
    if (!n->empty() && *n == name) {
      role = r;
      return true;
    }
  for (int64_t e = 0; e < experts; ++e) {
    const std::pair<std::string, Role> roles[] = {
        {expert_name(m.expert_gate, e), Role::kExpertGate},
        {expert_name(m.expert_up, e), Role::kExpertUp},
        {expert_name(m.expert_down, e), Role::kExpertDown}};
    for (const auto& [n, r] : roles)
      if (n == name) {
        role = r;
        expert = e;
        return true;
      }
  }
  return false;
}

Role role_of(const BlockLayout& b, const std::string& name, const std::string& arch) {
  const std::pair<const std::string*, Role> roles[] = {
      {&b.q, Role::kQ},     {&b.k, Role::kK},       {&b.v, Role::kV},
      {&b.qkv, Role::kQkv}, {&b.o, Role::kO},       {&b.gate, Role::kGate},
      {&b.up, Role::kUp},   {&b.down, Role::kDown}, {&b.gate_up, Role::kGateUp}};
  for (const auto& [n, r] : roles)
    if (!n->empty() && *n == name) return r;
  fail("architecture '{}': linear '{}' is none of the block layout's modules", arch, name);
}

struct LinearShape {
  int64_t n, k;
  bool has_bias;
};

// Shape [out, in] of each role and whether it has a bias, from the hyper-parameters.
LinearShape linear_shape(Role r, const ModelHparams& hp) {
  const int64_t q_w = hp.heads * hp.head_dim, kv_w = hp.kv_heads * hp.head_dim;
  switch (r) {
    case Role::kQ:
      return {q_w, hp.hidden, hp.qkv_bias};
    case Role::kK:
    case Role::kV:
      return {kv_w, hp.hidden, hp.qkv_bias};
    case Role::kQkv:
      return {q_w + 2 * kv_w, hp.hidden, hp.qkv_bias};
    case Role::kO:
      return {hp.hidden, q_w, hp.o_bias};
    case Role::kGate:
    case Role::kUp:
      return {hp.intermediate, hp.hidden, hp.mlp_bias};
    case Role::kDown:
      return {hp.hidden, hp.intermediate, hp.mlp_bias};
    case Role::kGateUp:
      return {2 * hp.intermediate, hp.hidden, hp.mlp_bias};
    case Role::kExpertGate:
    case Role::kExpertUp:
      return {hp.moe_intermediate, hp.hidden, false};
    case Role::kExpertDown:
      return {hp.hidden, hp.moe_intermediate, false};
    case Role::kSharedGate:
    case Role::kSharedUp:
      return {hp.shared_intermediate, hp.hidden, false};
    case Role::kSharedDown:
      return {hp.hidden, hp.shared_intermediate, false};
  }
  return {0, 0, false};
}

// Per-thread work buffers of the stages: reused across calls (no allocation or page faults per
// sequence); they grow to the largest block shape run on the thread.
struct Scratch {
  std::vector<float> q, k, v, scores, a, b;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// The view of rows r0.. of q, k or v.
nn::HeadsView rows_from(const nn::HeadsView& v, int64_t r0) {
  return {v.data + r0 * v.row_stride, v.row_stride, v.head_stride};
}

}  // namespace

struct BlockForward::Impl {
  const ArchSpec* arch = nullptr;
  ModelHparams hp;
  int64_t index = 0;
  std::string prefix;
  nn::Norm attn_norm, mlp_norm;
  std::optional<nn::Norm> q_norm, k_norm, attn_out_norm, mlp_out_norm;
  std::vector<Slot> slots;  // ArchSpec::linears order
  std::vector<std::string> names;
  std::array<std::vector<std::string>, kNumLinearGroups> groups;
  std::array<std::string, kNumLinearGroups> group_keys;  // capture key of each stage
  std::array<int, kNumRoles> by_role = [] {
    std::array<int, kNumRoles> r{};
    r.fill(-1);
    return r;
  }();
  std::unique_ptr<nn::Rope> rope;  // null: no rotary embedding
  nn::AttentionShape attn;
  // Sparse MoE layer
  bool moe = false, capture_all = false;
  std::vector<float> router;                // [E, hidden]
  std::vector<float> shared_expert_gate;    // [hidden] or empty
  std::vector<std::array<int, 3>> experts;  // slot indices of gate, up, down per expert
  const TensorStore* checkpoint = nullptr;  // lazy experts are read from it
  std::string expert_key_in(int64_t e) const { return "expert." + std::to_string(e) + ".in"; }
  std::string expert_key_mid(int64_t e) const { return "expert." + std::to_string(e) + ".mid"; }
  const LinearOp& slot_op(int idx) const {
    const Slot& s = slots[static_cast<size_t>(idx)];
    if (!s.op)
      fail(
          "block {}: linear '{}{}' has no weights loaded (experts not loaded, or set_linear "
          "missing)",
          index, prefix, s.name);
    return *s.op;
  }
  void load_slot(Slot& s) const {
    auto dense = std::make_unique<nn::DenseLinear>(
        nn::load_linear_weight(*checkpoint, prefix + s.name + ".weight", s.kind, s.n, s.k), s.bias,
        s.n, s.k);
    s.dense = dense.get();
    s.op = std::move(dense);
    drop_stored(s);
  }
  // A stored weight is not needed once converted to fp32: its mapped pages leave the RSS (read
  // again from the page cache if something touches them later). Without this the pages of every
  // block done so far stay resident: 0.1 GB per block of a 2048-wide F16 Llama.
  void drop_stored(const Slot& s) const {
    if (const TensorInfo* t = checkpoint->find(prefix + s.name + ".weight"))
      drop_mapped_pages(t->data, t->nbytes);
  }

  int64_t q_width() const { return hp.heads * hp.head_dim; }
  bool sliding() const {
    return hp.sliding_window > 0 && index < static_cast<int64_t>(hp.layer_sliding.size()) &&
           hp.layer_sliding[static_cast<size_t>(index)];
  }

  Slot& slot(const std::string& name) {
    for (auto& s : slots)
      if (s.name == name) return s;
    fail("block {} ({}): no linear '{}' (linears: {})", index, arch->name, name,
         fmt::join(names, ", "));
  }
  const Slot& slot(const std::string& name) const { return const_cast<Impl*>(this)->slot(name); }

  const LinearOp& op(Role r) const {
    const Slot& s = slots[by_role[static_cast<int>(r)]];
    if (!s.op)
      fail("block {}: linear '{}{}' has no implementation (not loaded; call set_linear first)",
           index, prefix, s.name);
    return *s.op;
  }
  bool has(Role r) const { return by_role[static_cast<int>(r)] >= 0; }

  // y [T, n] = linear(x [T, k])
  void apply(Role r, const float* x, int64_t tokens, std::vector<float>& y) const {
    const LinearOp& l = op(r);
    resize_first_touched(y, static_cast<size_t>(tokens * l.out_features()));
    l.forward(x, tokens, y.data());
  }

  // apply() of several linears of the same input x: when all are dense fp32 (the quantize
  // pipeline's), their GEMM tiles run as one parallel loop (nn::forward_many), same bits.
  void apply_many(std::initializer_list<std::pair<Role, std::vector<float>*>> outs, const float* x,
                  int64_t tokens) const {
    std::vector<const nn::DenseLinear*> dense;
    std::vector<float*> ys;
    for (const auto& [r, y] : outs) {
      const LinearOp& l = op(r);
      resize_first_touched(*y, static_cast<size_t>(tokens * l.out_features()));
      dense.push_back(slots[by_role[static_cast<int>(r)]].dense);  // null: another kind of op
      ys.push_back(y->data());
    }
    if (std::find(dense.begin(), dense.end(), nullptr) == dense.end()) {
      nn::forward_many(dense, x, tokens, ys);
      return;
    }
    size_t i = 0;
    for (const auto& [r, y] : outs) op(r).forward(x, tokens, ys[i++]);
  }

  // Per-head norm over head_dim of `heads` heads of `tokens` rows of a view, in place; token
  // ranges on the pool (each head's row is one inline norm call).
  static void norm_heads(const nn::Norm& n, const nn::HeadsView& v, int64_t tokens, int64_t heads) {
    constexpr int64_t kTokensPerTask = 32;
    parallel_ranges(tokens, kTokensPerTask, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t h = 0; h < heads; ++h) {
          float* p = v.head(h) + t * v.row_stride;
          n.apply(p, 1, p);
        }
    });
  }

  // q, k, v of the state.tokens rows of st.h (the attention input), as views into the scratch
  // buffers, with the q/k norms and rotary applied at positions pos0, pos0 + 1, ...
  void project_qkv(const SequenceState& st, int64_t pos0, Scratch& sc, nn::HeadsView& q,
                   nn::HeadsView& k, nn::HeadsView& v) const {
    const int64_t t = st.tokens, d = hp.head_dim, heads = hp.heads, kvh = hp.kv_heads;
    std::vector<float>&qb = sc.q, &kb = sc.k, &vb = sc.v;
    switch (arch->qkv) {
      case QkvLayout::kSeparate:
        apply_many({{Role::kQ, &qb}, {Role::kK, &kb}, {Role::kV, &vb}}, st.h.data(), t);
        q = {qb.data(), heads * d, d};
        k = {kb.data(), kvh * d, d};
        v = {vb.data(), kvh * d, d};
        break;
      case QkvLayout::kFusedConcat: {  // [q (heads*d) | k (kv*d) | v (kv*d)]
        apply(Role::kQkv, st.h.data(), t, qb);
        const int64_t w = (heads + 2 * kvh) * d;
        q = {qb.data(), w, d};
        k = {qb.data() + heads * d, w, d};
        v = {qb.data() + (heads + kvh) * d, w, d};
        break;
      }
      case QkvLayout::kFusedPerHead: {  // view [T, heads, 3d]: head h = [q_h | k_h | v_h]
        apply(Role::kQkv, st.h.data(), t, qb);
        const int64_t w = 3 * heads * d;
        q = {qb.data(), w, 3 * d};
        k = {qb.data() + d, w, 3 * d};
        v = {qb.data() + 2 * d, w, 3 * d};
        break;
      }
    }
    if (q_norm) norm_heads(*q_norm, q, t, heads);
    if (k_norm) norm_heads(*k_norm, k, t, kvh);
    if (rope) {
      // The RoPE of dynamic NTK / longrope depends on the forward's length (last position + 1).
      // Each sequence of a batched state starts at position pos0 (0).
      for_each_segment(st, [&](int64_t r0, int64_t len) {
        rope->apply(q.data + r0 * q.row_stride, len, heads, q.row_stride, q.head_stride, pos0,
                    pos0 + len);
        rope->apply(k.data + r0 * k.row_stride, len, kvh, k.row_stride, k.head_stride, pos0,
                    pos0 + len);
      });
    }
  }

  void load_norm(const TensorStore& store, const std::string& module, NormType type, nn::Norm& norm,
                 int64_t dim) {
    norm = nn::load_norm(store, prefix + module, type, dim, static_cast<float>(hp.norm_eps));
  }
  void load_optional_norm(const TensorStore& store, const std::string& module, NormType type,
                          std::optional<nn::Norm>& norm, int64_t dim) {
    if (module.empty()) return;
    norm.emplace();
    load_norm(store, module, type, *norm, dim);
  }

  void check_segments(const SequenceState& s) const {
    if (s.segments.empty()) return;
    int64_t sum = 0;
    bool positive = true;
    for (const int64_t len : s.segments) {
      positive = positive && len > 0;
      sum += len;
    }
    if (!positive || sum != s.tokens)
      fail_code(ExitCode::kInternal,
                "block {}: the state's sequences ({}) do not add up to its {} tokens", index,
                fmt::join(s.segments, ", "), s.tokens);
  }

  void check_state(const SequenceState& s, const std::vector<float>& v, int64_t width,
                   const char* what) const {
    if (s.tokens <= 0 || v.size() != static_cast<size_t>(s.tokens * width))
      fail_code(ExitCode::kInternal,
                "block {}: {} has {} values; expected tokens ({}) x {} (stages run out of order?)",
                index, what, v.size(), s.tokens, width);
  }
};

BlockForward::BlockForward(const ModelConfig& config, const TensorStore& store, int64_t index)
    : BlockForward(config, store, index, BlockOptions{}) {}

BlockForward::BlockForward(const ModelConfig& config, const TensorStore& store, int64_t index,
                           const BlockOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.arch = &config.require_arch();
  m.hp = config.hp;
  m.index = index;
  const ArchSpec& a = *m.arch;
  const ModelHparams& hp = m.hp;
  if (index < 0 || index >= hp.layers)
    fail("block index {} out of range: the model has {} blocks", index, hp.layers);
  if (!hp.norm_before)
    fail("{}: post-LayerNorm blocks (do_layer_norm_before=false) are not supported",
         config.model_type);
  if (hp.heads <= 0 || hp.kv_heads <= 0 || hp.heads % hp.kv_heads != 0 || hp.head_dim <= 0)
    fail("{}: attention heads {} / key-value heads {} / head_dim {} are inconsistent",
         config.model_type, hp.heads, hp.kv_heads, hp.head_dim);
  if (a.qkv == QkvLayout::kFusedPerHead && hp.kv_heads != hp.heads)
    fail("{}: the per-head fused qkv layout needs as many key-value heads as heads", a.name);
  m.prefix = nn::block_prefix(store, index, options.block_name);

  m.load_norm(store, a.block.attn_norm, a.norm, m.attn_norm, hp.hidden);
  m.load_norm(store, a.block.mlp_norm, a.norm, m.mlp_norm, hp.hidden);
  m.load_optional_norm(store, a.block.q_norm, a.norm, m.q_norm, hp.head_dim);
  m.load_optional_norm(store, a.block.k_norm, a.norm, m.k_norm, hp.head_dim);
  m.load_optional_norm(store, a.block.attn_out_norm, a.norm, m.attn_out_norm, hp.hidden);
  m.load_optional_norm(store, a.block.mlp_out_norm, a.norm, m.mlp_out_norm, hp.hidden);

  m.checkpoint = &store;
  m.moe = !a.moe.empty() && hp.is_moe_layer(index);
  m.capture_all = options.moe_capture_all;
  if (m.moe) {
    m.router = nn::load_param(store, m.prefix + a.moe.router + ".weight",
                              {hp.num_experts, hp.hidden}, "MoE router");
    if (!a.moe.shared_expert_gate.empty())
      m.shared_expert_gate = nn::load_param(store, m.prefix + a.moe.shared_expert_gate + ".weight",
                                            {1, hp.hidden}, "shared expert gate");
    m.experts.assign(static_cast<size_t>(hp.num_experts), {-1, -1, -1});
  }
  for (const LinearSpec& spec : a.block_linears(hp, index)) {
    Slot s;
    s.name = spec.name;
    s.capture_key = spec.input_group;
    s.kind = spec.kind;
    s.group = parse_group(spec.input_group, a.name, spec.name);
    if (!m.moe || !moe_role_of(a.moe, spec.name, hp.num_experts, s.role, s.expert))
      s.role = role_of(a.block, spec.name, a.name);
    const auto [n, k, has_bias] = linear_shape(s.role, hp);
    s.n = n;
    s.k = k;
    const std::string full = m.prefix + spec.name;
    if (has_bias) s.bias = nn::load_param(store, full + ".bias", {s.n}, "linear bias");
    if (options.load_linears && !(s.expert >= 0 && options.lazy_experts)) m.load_slot(s);
    const int idx = static_cast<int>(m.slots.size());
    if (s.expert >= 0)
      m.experts[static_cast<size_t>(s.expert)]
               [static_cast<int>(s.role) - static_cast<int>(Role::kExpertGate)] = idx;
    else
      m.by_role[static_cast<int>(s.role)] = idx;
    m.groups[static_cast<int>(s.group)].push_back(s.name);
    if (s.expert < 0) m.group_keys[static_cast<int>(s.group)] = s.capture_key;
    m.names.push_back(s.name);
    m.slots.push_back(std::move(s));
  }
  // The layout must provide every piece the forward needs.
  const bool separate = a.qkv == QkvLayout::kSeparate;
  const bool qkv_ok =
      separate ? m.has(Role::kQ) && m.has(Role::kK) && m.has(Role::kV) : m.has(Role::kQkv);
  const bool gated_ok = m.has(Role::kGateUp) || (m.has(Role::kGate) && m.has(Role::kUp));
  bool experts_ok = m.moe;
  for (const auto& e : m.experts) experts_ok &= e[0] >= 0 && e[1] >= 0 && e[2] >= 0;
  const bool mlp_ok =
      m.moe ? experts_ok
            : m.has(Role::kDown) && (a.mlp == MlpType::kPlain ? m.has(Role::kUp) : gated_ok);
  if (!qkv_ok || !m.has(Role::kO) || !mlp_ok)
    fail("architecture '{}': the block's linears ({}) do not cover its qkv / o / MLP layout",
         a.name, fmt::join(m.names, ", "));

  if (a.positions == PositionType::kRotary) {
    // transformers: rotary_ndims = int(head_dim * rotary_pct)
    const auto rot = static_cast<int64_t>(static_cast<double>(hp.head_dim) * hp.rotary_pct);
    if (rot > hp.head_dim) fail("{}: rotary_pct {} exceeds 1", a.name, hp.rotary_pct);
    if (rot > 0) {
      // Gemma 3's sliding layers have a RoPE of their own.
      const RopeSpec& spec = hp.has_rope_local && m.sliding() ? hp.rope_local : hp.rope;
      // Tables up to 8192 positions (later positions are computed on the fly).
      m.rope =
          std::make_unique<nn::Rope>(spec, rot, std::clamp<int64_t>(hp.max_positions, 1, 8192));
    }
  }
  const double scale =
      hp.attn_scale > 0 ? hp.attn_scale : 1.0 / std::sqrt(static_cast<double>(hp.head_dim));
  m.attn = {hp.heads,
            hp.kv_heads,
            hp.head_dim,
            static_cast<float>(scale),
            static_cast<float>(hp.attn_softcap),
            m.sliding() ? hp.sliding_window : 0};
}

BlockForward::~BlockForward() = default;

int64_t BlockForward::index() const {
  return impl_->index;
}
const std::string& BlockForward::prefix() const {
  return impl_->prefix;
}
const std::vector<std::string>& BlockForward::linears() const {
  return impl_->names;
}

const std::vector<std::string>& BlockForward::group_linears(LinearGroup g) const {
  return impl_->groups.at(static_cast<size_t>(g));
}

LinearGroup BlockForward::group_of(const std::string& local_linear) const {
  return impl_->slot(local_linear).group;
}

const std::string& BlockForward::capture_key(const std::string& local_linear) const {
  return impl_->slot(local_linear).capture_key;
}

std::pair<int64_t, int64_t> BlockForward::linear_dims(const std::string& local_linear) const {
  const Slot& s = impl_->slot(local_linear);
  return {s.n, s.k};
}

const std::vector<float>& BlockForward::weight(const std::string& local_linear) const {
  const Slot& s = impl_->slot(local_linear);
  if (!s.dense)
    fail("block {}: linear '{}' has no dense fp32 weight (not loaded, or replaced by set_linear)",
         impl_->index, local_linear);
  return s.dense->weight();
}

void BlockForward::set_weight(const std::string& local_linear, std::vector<float> w_nk) {
  Slot& s = impl_->slot(local_linear);
  if (w_nk.size() != static_cast<size_t>(s.n * s.k))
    fail("block {}: set_weight('{}') got {} values; expected [{}, {}]", impl_->index, local_linear,
         w_nk.size(), s.n, s.k);
  if (s.dense) {
    s.dense->set_weight(std::move(w_nk));
  } else {
    auto dense = std::make_unique<nn::DenseLinear>(std::move(w_nk), s.bias, s.n, s.k);
    s.dense = dense.get();
    s.op = std::move(dense);
  }
}

const std::vector<float>& BlockForward::bias(const std::string& local_linear) const {
  return impl_->slot(local_linear).bias;
}

void BlockForward::set_linear(const std::string& local_linear, std::unique_ptr<LinearOp> op) {
  Slot& s = impl_->slot(local_linear);
  if (!op || op->in_features() != s.k || op->out_features() != s.n)
    fail("block {}: set_linear('{}') needs a linear {} -> {} features, got {}", impl_->index,
         local_linear, s.k, s.n,
         op ? fmt::format("{} -> {}", op->in_features(), op->out_features()) : "none");
  s.op = std::move(op);
  s.dense = nullptr;
}

const LinearOp& BlockForward::linear(const std::string& local_linear) const {
  const Slot& s = impl_->slot(local_linear);
  return impl_->op(s.role);
}

void BlockForward::run_stage(LinearGroup g, SequenceState& st, const CaptureSink& sink) const {
  compute_stage(g, st, sink);
  const Impl& m = *impl_;
  const auto gi = static_cast<size_t>(g);
  if (m.moe && g >= LinearGroup::kMlpIn) return;  // reported key by key in compute_stage
  if (sink && !m.groups[gi].empty())
    sink(m.group_keys[gi], st.h.data(), st.tokens, static_cast<int64_t>(st.h.size()) / st.tokens);
}

void BlockForward::release_scratch() {
  scratch() = Scratch{};
}

bool BlockForward::is_moe() const {
  return impl_->moe;
}

int64_t BlockForward::num_experts() const {
  return impl_->moe ? impl_->hp.num_experts : 0;
}

void BlockForward::load_experts(int64_t e0, int64_t e1) {
  Impl& m = *impl_;
  for (int64_t e = e0; e < e1; ++e)
    for (int idx : m.experts.at(static_cast<size_t>(e)))
      if (!m.slots[static_cast<size_t>(idx)].op) {
        m.load_slot(m.slots[static_cast<size_t>(idx)]);
      }
}

void BlockForward::release_group(LinearGroup g) {
  for (Slot& s : impl_->slots)
    if (s.group == g && s.expert < 0) {
      s.op.reset();
      s.dense = nullptr;
    }
}

void BlockForward::release_experts(int64_t e0, int64_t e1) {
  Impl& m = *impl_;
  for (int64_t e = e0; e < e1; ++e)
    for (int idx : m.experts.at(static_cast<size_t>(e))) {
      Slot& s = m.slots[static_cast<size_t>(idx)];
      s.op.reset();
      s.dense = nullptr;
    }
}

void BlockForward::expert_inputs(const SequenceState& st, int64_t e0, int64_t e1,
                                 const CaptureSink& sink) const {
  const Impl& m = *impl_;
  if (!sink || !st.moe) return;
  const int64_t hidden = m.hp.hidden;
  std::vector<float>& rows = scratch().b;
  for (int64_t e = e0; e < e1; ++e) {
    if (m.capture_all) {
      sink(m.expert_key_in(e), st.h.data(), st.tokens, hidden);
      continue;
    }
    const auto& r = st.moe->routing.rows[static_cast<size_t>(e)];
    if (r.empty()) continue;
    nn::gather_rows(st.h.data(), hidden, r, rows);
    sink(m.expert_key_in(e), rows.data(), static_cast<int64_t>(r.size()), hidden);
  }
}

void BlockForward::expert_mids(SequenceState& st, int64_t e0, int64_t e1,
                               const CaptureSink& sink) const {
  const Impl& m = *impl_;
  const ModelHparams& hp = m.hp;
  const int64_t inter = hp.moe_intermediate;
  Scratch& sc = scratch();
  for (int64_t e = e0; e < e1; ++e) {
    const auto& ids = m.experts[static_cast<size_t>(e)];
    const auto& rows = st.moe->routing.rows[static_cast<size_t>(e)];
    std::vector<float>& mid = st.moe->mid[static_cast<size_t>(e)];
    const bool all = m.capture_all && sink;
    if (rows.empty() && !all) {
      mid.clear();
      continue;
    }
    // x: every token (capture_all) or the routed ones.
    const float* x = st.h.data();
    int64_t n = st.tokens;
    if (!all) {
      nn::gather_rows(st.h.data(), hp.hidden, rows, sc.b);
      x = sc.b.data();
      n = static_cast<int64_t>(rows.size());
    }
    std::vector<float> g(static_cast<size_t>(n * inter)), u(static_cast<size_t>(n * inter));
    m.slot_op(ids[0]).forward(x, n, g.data());
    m.slot_op(ids[1]).forward(x, n, u.data());
    nn::gated_activation_inplace(hp.act, g.data(), u.data(), n * inter);
    if (sink) sink(m.expert_key_mid(e), g.data(), n, inter);
    if (all)
      nn::gather_rows(g.data(), inter, rows, mid);
    else
      mid = std::move(g);
  }
}

void BlockForward::accumulate_experts(SequenceState& st, int64_t e0, int64_t e1) const {
  const Impl& m = *impl_;
  const int64_t hidden = m.hp.hidden;
  std::vector<float>& y = scratch().a;
  for (int64_t e = e0; e < e1; ++e) {
    const auto& rows = st.moe->routing.rows[static_cast<size_t>(e)];
    const auto& w = st.moe->routing.row_weight[static_cast<size_t>(e)];
    std::vector<float>& mid = st.moe->mid[static_cast<size_t>(e)];
    if (rows.empty()) continue;
    const auto n = static_cast<int64_t>(rows.size());
    resize_first_touched(y, static_cast<size_t>(n * hidden));
    m.slot_op(m.experts[static_cast<size_t>(e)][2]).forward(mid.data(), n, y.data());
    // transformers: index_add_(0, rows, expert(x) * routing_weight)
    for (int64_t r = 0; r < n; ++r) {
      float* out = st.moe->out.data() + rows[static_cast<size_t>(r)] * hidden;
      const float wr = w[static_cast<size_t>(r)];
      const float* yr = y.data() + r * hidden;
      for (int64_t i = 0; i < hidden; ++i) out[i] += yr[i] * wr;
    }
    std::vector<float>().swap(mid);
  }
}

void BlockForward::compute_stage(LinearGroup g, SequenceState& st, const CaptureSink& sink) const {
  const Impl& m = *impl_;
  const ModelHparams& hp = m.hp;
  const int64_t t = st.tokens, hidden = hp.hidden;
  switch (g) {
    case LinearGroup::kAttnIn: {
      m.check_state(st, st.resid, hidden, "state.resid (block input)");
      resize_first_touched(st.h, static_cast<size_t>(t * hidden));
      m.attn_norm.apply(st.resid.data(), t, st.h.data());
      return;
    }
    case LinearGroup::kAttnOut: {
      m.check_state(st, st.h, hidden, "state.h (attention input)");
      Scratch& sc = scratch();
      m.check_segments(st);
      nn::HeadsView q, k, v;
      m.project_qkv(st, 0, sc, q, k, v);
      const int64_t qw = m.q_width();
      resize_first_touched(st.h, static_cast<size_t>(t * qw));
      for_each_segment(st, [&](int64_t r0, int64_t len) {
        nn::causal_attention(m.attn, rows_from(q, r0), rows_from(k, r0), rows_from(v, r0), len,
                             st.h.data() + r0 * qw, sc.scores);
      });
      return;
    }
    case LinearGroup::kMlpIn: {
      m.check_state(st, st.h, m.q_width(), "state.h (attention output)");
      m.check_state(st, st.resid, hidden, "state.resid");
      std::vector<float>& a = scratch().a;
      m.apply(Role::kO, st.h.data(), t, a);
      if (m.attn_out_norm) m.attn_out_norm->apply(a.data(), t, a.data());
      if (hp.parallel_residual) {
        st.aux.swap(a);  // added in finish(): x + attn(ln1(x)) + mlp(ln2(x))
      } else {
        add_into(st.resid.data(), a.data(), static_cast<int64_t>(st.resid.size()));
      }
      resize_first_touched(st.h, static_cast<size_t>(t * hidden));
      m.mlp_norm.apply(st.resid.data(), t, st.h.data());
      if (m.moe) {
        if (!st.moe) st.moe = std::make_unique<MoeSequenceState>();
        MoeSequenceState& mo = *st.moe;
        nn::route_tokens(st.h.data(), t, hidden, m.router.data(), hp.num_experts,
                         hp.experts_per_token, hp.norm_topk_prob, mo.routing, scratch().q);
        mo.mid.assign(static_cast<size_t>(hp.num_experts), {});
        mo.out.assign(static_cast<size_t>(t * hidden), 0.0f);
        mo.experts_accumulated = false;
        if (sink && m.has(Role::kSharedGate)) sink("mlp_in", st.h.data(), t, hidden);
        if (sink) expert_inputs(st, 0, hp.num_experts, sink);
      }
      return;
    }
    case LinearGroup::kMlpMid: {
      m.check_state(st, st.h, hidden, "state.h (MLP input)");
      Scratch& sc = scratch();
      if (m.moe) {
        if (!st.moe)
          fail_code(ExitCode::kInternal, "block {}: MoE stages run out of order", m.index);
        if (!st.moe->experts_accumulated) expert_mids(st, 0, hp.num_experts, sink);
        if (!m.has(Role::kSharedGate)) return;
        // Qwen2-MoE shared expert: sigmoid(shared_expert_gate(x)) * down(act(gate(x)) * up(x)).
        st.moe->shared_scale.resize(static_cast<size_t>(t));
        nn::linear_forward(st.h.data(), t, m.shared_expert_gate.data(), nullptr, 1, hidden,
                           st.moe->shared_scale.data());
        for (float& v : st.moe->shared_scale) v = 1.0f / (1.0f + std::exp(-v));
        m.apply(Role::kSharedGate, st.h.data(), t, sc.a);
        m.apply(Role::kSharedUp, st.h.data(), t, sc.b);
        nn::gated_activation_inplace(hp.act, sc.a.data(), sc.b.data(),
                                     static_cast<int64_t>(sc.a.size()));
        st.h.swap(sc.a);
        if (sink) sink("shared_mid", st.h.data(), t, hp.shared_intermediate);
        return;
      }
      // The new state.h [T, inter]: gate(h) (plain: fc1(h)) is written straight into it, one
      // [T, inter] scratch fewer while the stage runs.
      std::vector<float> mid;
      if (m.arch->mlp == MlpType::kGated) {
        std::vector<float>& up = sc.b;
        if (m.has(Role::kGateUp)) {
          // Phi-3: [gate | up] = gate_up(h), gate = first half of each row.
          m.apply(Role::kGateUp, st.h.data(), t, sc.q);
          const int64_t inter = hp.intermediate;
          resize_first_touched(mid, static_cast<size_t>(t * inter));
          resize_first_touched(up, static_cast<size_t>(t * inter));
          for (int64_t r = 0; r < t; ++r) {
            const float* row = sc.q.data() + r * 2 * inter;
            std::copy(row, row + inter, mid.data() + r * inter);
            std::copy(row + inter, row + 2 * inter, up.data() + r * inter);
          }
        } else {
          m.apply_many({{Role::kGate, &mid}, {Role::kUp, &up}}, st.h.data(), t);
        }
        nn::gated_activation_inplace(hp.act, mid.data(), up.data(),
                                     static_cast<int64_t>(mid.size()));
      } else {
        m.apply(Role::kUp, st.h.data(), t, mid);
        nn::activation_inplace(hp.act, mid.data(), static_cast<int64_t>(mid.size()));
      }
      st.h = std::move(mid);
      return;
    }
  }
}

void BlockForward::finish(SequenceState& st) const {
  const Impl& m = *impl_;
  if (m.moe) {
    m.check_state(st, st.resid, m.hp.hidden, "state.resid");
    if (!st.moe) fail_code(ExitCode::kInternal, "block {}: MoE stages run out of order", m.index);
    if (!st.moe->experts_accumulated) accumulate_experts(st, 0, m.hp.num_experts);
    std::vector<float>& out = st.moe->out;
    if (m.has(Role::kSharedGate)) {
      m.check_state(st, st.h, m.hp.shared_intermediate, "state.h (shared expert hidden)");
      std::vector<float>& y = scratch().a;
      m.apply(Role::kSharedDown, st.h.data(), st.tokens, y);
      const int64_t hidden = m.hp.hidden;
      for (int64_t r = 0; r < st.tokens; ++r)
        for (int64_t i = 0; i < hidden; ++i)
          out[r * hidden + i] += st.moe->shared_scale[static_cast<size_t>(r)] * y[r * hidden + i];
    }
    if (m.mlp_out_norm) m.mlp_out_norm->apply(out.data(), st.tokens, out.data());
    add_into(st.resid.data(), out.data(), static_cast<int64_t>(st.resid.size()));
    return;
  }
  m.check_state(st, st.h, m.hp.intermediate, "state.h (MLP hidden)");
  m.check_state(st, st.resid, m.hp.hidden, "state.resid");
  std::vector<float>& out = scratch().a;
  m.apply(Role::kDown, st.h.data(), st.tokens, out);
  if (m.mlp_out_norm) m.mlp_out_norm->apply(out.data(), st.tokens, out.data());
  const size_t n = st.resid.size();
  if (m.hp.parallel_residual) {
    m.check_state(st, st.aux, m.hp.hidden, "state.aux (attention output)");
    parallel_ranges(static_cast<int64_t>(n), kElementwiseGrain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) st.resid[i] = (out[i] + st.aux[i]) + st.resid[i];
    });
  } else {
    add_into(st.resid.data(), out.data(), static_cast<int64_t>(n));
  }
}

void BlockForward::forward(SequenceState& state) const {
  for (int g = 0; g < kNumLinearGroups; ++g) run_stage(static_cast<LinearGroup>(g), state);
  finish(state);
}

void BlockForward::forward_cached(SequenceState& st, const nn::KvBlockView& kv) const {
  const Impl& m = *impl_;
  const ModelHparams& hp = m.hp;
  const int64_t t = st.tokens, d = hp.head_dim, kvh = hp.kv_heads, width = kvh * d;
  if (!st.segments.empty())
    fail_code(ExitCode::kInternal, "block {}: a cached forward takes one sequence, not {}", m.index,
              st.segments.size());
  if (kv.width != width || kv.past < 0 || kv.past + t > kv.capacity || !kv.keys || !kv.values)
    fail_code(ExitCode::kInternal,
              "block {}: KV cache view (width {}, {} cached of {}) cannot take {} new positions "
              "of width {}",
              m.index, kv.width, kv.past, kv.capacity, t, width);
  run_stage(LinearGroup::kAttnIn, st);
  m.check_state(st, st.h, hp.hidden, "state.h (attention input)");
  Scratch& sc = scratch();
  nn::HeadsView q, k, v;
  m.project_qkv(st, kv.past, sc, q, k, v);
  // Append the new keys and values (contiguous rows [kv_heads * head_dim]).
  for (int64_t i = 0; i < t; ++i) {
    float* krow = kv.keys + (kv.past + i) * width;
    float* vrow = kv.values + (kv.past + i) * width;
    for (int64_t g = 0; g < kvh; ++g) {
      const float* ks = k.head(g) + i * k.row_stride;
      const float* vs = v.head(g) + i * v.row_stride;
      std::copy(ks, ks + d, krow + g * d);
      std::copy(vs, vs + d, vrow + g * d);
    }
  }
  resize_first_touched(st.h, static_cast<size_t>(t * m.q_width()));
  const nn::HeadsView kc{kv.keys, width, d}, vc{kv.values, width, d};
  nn::cached_causal_attention(m.attn, q, kc, vc, kv.past, t, st.h.data(), sc.scores);
  run_stage(LinearGroup::kMlpIn, st);
  run_stage(LinearGroup::kMlpMid, st);
  finish(st);
}

void BlockForward::forward(float* x, int64_t tokens) const {
  SequenceState st;
  st.tokens = tokens;
  const size_t n = static_cast<size_t>(tokens * impl_->hp.hidden);
  st.resid.assign(x, x + n);
  forward(st);
  std::copy(st.resid.begin(), st.resid.end(), x);
}

}  // namespace gptq
