#include "gguf/gguf_export.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "gguf/ggml_kquant.h"
#include "gguf/gguf_arch.h"
#include "gguf/gguf_tokenizer.h"
#include "gguf/gguf_writer.h"
#include "infer/quantized_layer.h"
#include "io/safetensors.h"
#include "model/model_config.h"
#include "nn/weight_loader.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace gptq::gguf {

namespace {
constexpr int kBlock = 32;

// llama_ftype of the file: the type most block linears have.
uint32_t file_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
      return 0;
    case GgmlType::kF16:
      return 1;
    case GgmlType::kQ4_0:
      return 2;
    case GgmlType::kQ4_1:
      return 3;
    case GgmlType::kQ8_0:
      return 7;
    case GgmlType::kQ2_K:  // LLAMA_FTYPE_MOSTLY_Q2_K
      return 10;
    case GgmlType::kQ3_K:  // _Q3_K_S (every linear Q3_K)
      return 11;
    case GgmlType::kQ4_K:  // _Q4_K_S
      return 14;
    case GgmlType::kQ5_K:  // _Q5_K_S
      return 16;
    case GgmlType::kQ6_K:
      return 18;
    case GgmlType::kBF16:
      return 32;
  }
  return 0;
}

struct QuantSource {
  QuantizationConfig q;
  int64_t n = 0, k = 0;
};

QuantSource quant_source(const TensorStore& store, const std::string& module,
                         const QuantizationConfig& q) {
  QuantSource s;
  s.q = q.for_module(module);
  const TensorInfo& qw = store.get(module + ".qweight");
  if (qw.shape.size() != 2) fail("{}.qweight must be 2-D, got {}", module, qw.shape_str());
  s.n = qw.shape[1];
  if (const TensorInfo* gi = store.find(module + ".g_idx"); gi && gi->shape.size() == 1)
    s.k = gi->shape[0];
  else
    s.k = qw.shape[0] * 32 / s.q.bits;
  return s;
}

struct UnpackedLayer {
  QuantizedLayerData data;
  std::vector<uint8_t> codes;  // [N, K]
  std::vector<int32_t> zeros;  // [G, N]
};

UnpackedLayer unpack(const TensorStore& store, const std::string& module, const QuantSource& s) {
  UnpackedLayer u;
  u.data = read_quantized_layer(store, module, s.n, s.k, s.q);
  unpack_linear(u.data.packed, &u.codes, &u.zeros);
  return u;
}

LayerFacts facts_of(const UnpackedLayer& u) {
  const PackedLinear& p = u.data.packed;
  LayerFacts f;
  f.bits = p.bits;
  const int64_t n = p.out_features, k = p.in_features;
  f.blocks_uniform = k % kBlock == 0;
  for (int64_t b = 0; f.blocks_uniform && b < k / kBlock; ++b)
    for (int64_t j = 1; j < kBlock; ++j)
      if (p.g_idx[b * kBlock + j] != p.g_idx[b * kBlock]) {
        f.blocks_uniform = false;
        break;
      }
  f.scales_fp16 = true;
  for (const float s : u.data.scales)
    if (f16_to_f32(f32_to_f16(s)) != s) {
      f.scales_fp16 = false;
      break;
    }
  f.min_offset = 1 << 30;
  f.max_offset = -(1 << 30);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const int off = static_cast<int>(u.codes[r * k + c]) - u.zeros[p.g_idx[c] * n + r];
      f.min_offset = std::min(f.min_offset, off);
      f.max_offset = std::max(f.max_offset, off);
    }
  return f;
}

std::vector<float> permute_rows(const std::vector<float>& w, const std::vector<int64_t>& order,
                                int64_t k) {
  std::vector<float> out(w.size());
  for (size_t r = 0; r < order.size(); ++r)
    std::copy_n(w.begin() + order[r] * k, k, out.begin() + static_cast<int64_t>(r) * k);
  return out;
}

// Rows of w [rows, k] (already in GGUF order) as `type`, and the error of what ggml reads back.
std::vector<std::byte> encode_rows(const std::vector<float>& w, int64_t rows, int64_t k,
                                   GgmlType type, LayerReport* rep) {
  const size_t rs = row_size(type, k);
  std::vector<std::byte> out(rs * static_cast<size_t>(rows));
  // Rows are independent (the k-quants' search is the costly part): the bytes do not depend on the
  // thread count.
  parallel_for(rows,
               [&](int64_t r) { quantize_row(type, w.data() + r * k, k, out.data() + r * rs); });
  if (rep) {
    std::vector<float> back(static_cast<size_t>(k));
    double err = 0, ref = 0, mx = 0;
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(type, out.data() + r * rs, k, back.data());
      for (int64_t c = 0; c < k; ++c) {
        const double d = static_cast<double>(back[c]) - w[r * k + c];
        err += d * d;
        ref += static_cast<double>(w[r * k + c]) * w[r * k + c];
        mx = std::max(mx, std::abs(d));
      }
    }
    rep->rel_error = ref > 0 ? std::sqrt(err / ref) : std::sqrt(err);
    rep->max_abs_error = mx;
  }
  return out;
}

// The exact / mapped encodings of a GPTQ layer (rows in GGUF order).
std::vector<std::byte> encode_gptq(const UnpackedLayer& u, const std::vector<int64_t>& order,
                                   const LayerChoice& c, LayerReport* rep) {
  const PackedLinear& p = u.data.packed;
  const int64_t n = p.out_features, k = p.in_features;
  const size_t rs = row_size(c.type, k);
  std::vector<std::byte> out(rs * static_cast<size_t>(n));
  uint8_t q4[kBlock];
  int8_t q8[kBlock];
  for (int64_t r = 0; r < n; ++r) {
    const int64_t sr = order[r];
    for (int64_t b = 0; b < k / kBlock; ++b) {
      const int64_t g = p.g_idx[b * kBlock];
      const float s = u.data.scales[g * n + sr];
      const int z = u.zeros[g * n + sr];
      const uint8_t* code = u.codes.data() + sr * k + b * kBlock;
      std::byte* dst = out.data() + r * rs + static_cast<size_t>(b) * type_size(c.type);
      if (c.type == GgmlType::kQ4_0) {
        for (int j = 0; j < kBlock; ++j) q4[j] = static_cast<uint8_t>(code[j] - z + 8);
        pack_q4_0_block(f32_to_f16(s), q4, dst);
      } else if (c.type == GgmlType::kQ8_0) {
        for (int j = 0; j < kBlock; ++j) q8[j] = static_cast<int8_t>(code[j] - z);
        pack_q8_0_block(f32_to_f16(s), q8, dst);
      } else {  // Q4_1: x = d * q + m with q = code, m = fp16(-scale * zero)
        for (int j = 0; j < kBlock; ++j) q4[j] = code[j];
        pack_q4_1_block(f32_to_f16(s), f32_to_f16(-s * static_cast<float>(z)), q4, dst);
      }
    }
  }
  // The error against the GPTQ dequantized weight, through this library's ggml dequantizer.
  const std::vector<float> w = permute_rows(dequantize_layer(u.data), order, k);
  std::vector<float> back(static_cast<size_t>(k));
  double err = 0, ref = 0, mx = 0;
  for (int64_t r = 0; r < n; ++r) {
    dequantize_row(c.type, out.data() + r * rs, k, back.data());
    for (int64_t col = 0; col < k; ++col) {
      const double d = static_cast<double>(back[col]) - w[r * k + col];
      err += d * d;
      ref += static_cast<double>(w[r * k + col]) * w[r * k + col];
      mx = std::max(mx, std::abs(d));
    }
  }
  rep->rel_error = ref > 0 ? std::sqrt(err / ref) : std::sqrt(err);
  rep->max_abs_error = mx;
  return out;
}

std::vector<std::byte> to_bytes(const std::vector<float>& v, GgmlType type) {
  const int64_t n = static_cast<int64_t>(v.size());
  std::vector<std::byte> out(row_size(type, n));
  quantize_row(type, v.data(), n, out.data());
  return out;
}

constexpr const char* kAcceptedTypes =
    "auto, q4_0, q4_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, f16, bf16, f32";

GgmlType parse_requested(const std::string& requested) {
  GgmlType t;
  if (!parse_type(requested, &t))
    fail_code(ExitCode::kUsage, "--type {}: unknown GGUF type (accepted: {})", requested,
              kAcceptedTypes);
  return t;
}

// A k-quant for rows that are not a multiple of 256: llama-quantize's fallback (as near as this
// writer's types go), named in the report.
void apply_k_fallback(int64_t k, GgmlType* t, std::string* why) {
  if (!is_k_quant(*t) || k % kQkK == 0) return;
  const GgmlType f = k_quant_fallback(*t);
  *why += fmt::format(
      "; in_features {} is not a multiple of 256, so {} falls back to {} (as llama-quantize does "
      "for such tensors)",
      k, type_name(*t), type_name(f));
  *t = f;
}

// Types an `auto` re-fit may use instead of the plain re-fit type `today` (Q4_0/Q4_1/Q8_0): at most
// its bits per weight and at most one bit fewer (lower ones do not win on error), holding rows of
// k.
std::vector<GgmlType> refit_candidates(GgmlType today, int64_t k) {
  std::vector<GgmlType> out;
  for (const GgmlType t : {GgmlType::kQ8_0, GgmlType::kQ6_K, GgmlType::kQ5_K, GgmlType::kQ4_1,
                           GgmlType::kQ4_K, GgmlType::kQ4_0, GgmlType::kQ3_K, GgmlType::kQ2_K}) {
    const double b = bits_per_weight(t), top = bits_per_weight(today);
    if (t == today || (b <= top && b >= top - 1.0 && k % block_size(t) == 0)) out.push_back(t);
  }
  return out;
}

bool bias_expected(const ModelHparams& hp, const std::string& gguf_name) {
  if (gguf_name.ends_with("attn_q") || gguf_name.ends_with("attn_k") ||
      gguf_name.ends_with("attn_v") || gguf_name.ends_with("attn_qkv"))
    return hp.qkv_bias;
  if (gguf_name.ends_with("attn_output")) return hp.o_bias;
  return hp.mlp_bias;
}

// "model.layers.3.mlp.up_proj" -> "mlp.up_proj".
std::string local_name(const std::string& module, const std::string& block_name) {
  const std::string rest = module.substr(std::min(module.size(), block_name.size() + 1));
  const size_t dot = rest.find('.');
  return dot == std::string::npos ? rest : rest.substr(dot + 1);
}

bool all_zero(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; });
}

// A stack of expert linears written as one 3-D tensor {k, n, experts}.
struct StackPlan {
  bool gptq = false;
  int64_t n = 0, k = 0;
  std::vector<std::string> modules, float_names;
  std::vector<QuantSource> srcs;
  std::vector<LayerChoice> choices;
};

// How wide a block type is, for one type over a stack: the narrower experts are written in it.
int type_rank(GgmlType t) {
  switch (t) {
    case GgmlType::kQ4_0:
      return 1;
    case GgmlType::kQ4_1:
      return 2;
    case GgmlType::kQ8_0:
      return 3;
    default:
      return 4;
  }
}

// ggml holds one type per tensor: when the experts' own choices differ, every expert takes the
// widest of them (exact or mapped where its codes fit, re-fitted otherwise; the report says).
StackPlan plan_stack(const TensorStore& store, const TensorMapping& m, const QuantizationConfig* q,
                     const std::string& requested, GgmlType float_type,
                     const std::filesystem::path& model_dir) {
  StackPlan p;
  p.modules = m.experts;
  p.gptq = store.find(m.experts[0] + ".qweight") != nullptr;
  std::vector<LayerFacts> facts;
  for (const std::string& e : m.experts) {
    if ((store.find(e + ".qweight") != nullptr) != p.gptq)
      fail("{}: the experts of {} mix GPTQ and float weights", model_dir.string(), m.gguf_name);
    if (const TensorInfo* b = nn::find_param(store, e + ".bias"); b && !all_zero(tensor_to_f32(*b)))
      fail("{}: expert {} has a bias; llama.cpp's stacked experts have none", model_dir.string(),
           e);
    QuantSource src;
    if (p.gptq) {
      src = quant_source(store, e, *q);
      facts.push_back(facts_of(unpack(store, e, src)));
      p.choices.push_back(choose_layer_type(facts.back(), requested));
    } else {
      const TensorInfo* wt = nn::find_param(store, e + ".weight");
      if (!wt || wt->shape.size() != 2)
        fail("{}: tensor {}.weight is missing or not 2-D (needed for GGUF {})", model_dir.string(),
             e, m.gguf_name);
      src.n = wt->shape[0];
      src.k = wt->shape[1];
      p.float_names.push_back(wt->name);
      p.choices.push_back({float_type,
                           is_quantized(float_type) ? LayerMode::kRefit : LayerMode::kFloat,
                           "float expert weight"});
    }
    if (p.srcs.empty()) p.n = src.n, p.k = src.k;
    if (src.n != p.n || src.k != p.k)
      fail("{}: the experts of {} differ in shape ({} x {} vs {} x {})", model_dir.string(),
           m.gguf_name, src.n, src.k, p.n, p.k);
    p.srcs.push_back(src);
  }
  const GgmlType t0 = p.choices[0].type;
  GgmlType widest = t0;
  for (const LayerChoice& c : p.choices)
    if (type_rank(c.type) > type_rank(widest)) widest = c.type;
  for (size_t x = 0; x < p.choices.size(); ++x) {
    if (p.choices[x].type == widest) continue;
    p.choices[x] = choose_layer_type(facts[x], type_name(widest));
    p.choices[x].why +=
        fmt::format(" (one type for the {} experts of {})", m.experts.size(), m.gguf_name);
  }
  if (is_quantized(widest) && p.k % block_size(widest) != 0)
    fail(
        "{}: in_features {} is not a multiple of 32, so no ggml block type can hold it (try "
        "--type f16)",
        m.hf_module, p.k);
  return p;
}

std::vector<std::byte> encode_stack(const TensorStore& store, const StackPlan& p,
                                    LayerReport* reps) {
  std::vector<int64_t> order(static_cast<size_t>(p.n));
  for (int64_t r = 0; r < p.n; ++r) order[static_cast<size_t>(r)] = r;
  std::vector<std::byte> out;
  for (size_t x = 0; x < p.modules.size(); ++x) {
    const LayerChoice& c = p.choices[x];
    std::vector<std::byte> b;
    if (p.gptq) {
      const UnpackedLayer u = unpack(store, p.modules[x], p.srcs[x]);
      b = c.mode == LayerMode::kExact || c.mode == LayerMode::kMapped
              ? encode_gptq(u, order, c, &reps[x])
              : encode_rows(dequantize_layer(u.data), p.n, p.k, c.type, &reps[x]);
    } else {
      b = encode_rows(
          nn::load_linear_weight(store, p.float_names[x], LinearKind::kLinear, p.n, p.k), p.n, p.k,
          c.type, &reps[x]);
    }
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}
}  // namespace

std::string mode_name(LayerMode m) {
  switch (m) {
    case LayerMode::kExact:
      return "exact";
    case LayerMode::kMapped:
      return "mapped";
    case LayerMode::kRefit:
      return "refit";
    case LayerMode::kFloat:
      return "float";
  }
  return "?";
}

LayerChoice choose_layer_type(const LayerFacts& f, const std::string& requested) {
  const bool grid = f.blocks_uniform && f.scales_fp16;
  const bool q4_0_exact = grid && f.min_offset >= -8 && f.max_offset <= 7;
  const bool q8_0_exact = grid && f.min_offset >= -128 && f.max_offset <= 127;
  const bool q4_1_mapped = grid && f.bits <= 4;
  const std::string no_grid = !f.blocks_uniform
                                  ? "a 32-column block spans several groups (act-order g_idx, or a "
                                    "group size not a multiple of 32)"
                                  : "scales are not fp16 values";
  if (requested == "auto") {
    if (q4_0_exact)
      return {GgmlType::kQ4_0, LayerMode::kExact,
              "codes - zero fit Q4_0's q - 8, one fp16 scale per block"};
    if (f.bits == 8 && q8_0_exact)
      return {GgmlType::kQ8_0, LayerMode::kExact, "8-bit codes - zero are Q8_0's int8"};
    if (q4_1_mapped)
      return {GgmlType::kQ4_1, LayerMode::kMapped,
              "asymmetric: Q4_1 d = scale, m = fp16(-scale * zero) rounds the offset (--type q8_0 "
              "is exact)"};
    if (f.bits == 8) return {GgmlType::kQ8_0, LayerMode::kRefit, no_grid + ": re-fitted"};
    return {f.min_offset < -8 || f.max_offset > 7 ? GgmlType::kQ4_1 : GgmlType::kQ4_0,
            LayerMode::kRefit, no_grid + ": re-fitted"};
  }
  const GgmlType t = parse_requested(requested);
  if (t == GgmlType::kF32) return {t, LayerMode::kFloat, "dequantized to F32 (exact)"};
  if (t == GgmlType::kF16 || t == GgmlType::kBF16)
    return {t, LayerMode::kFloat, "dequantized, rounded to 16 bits"};
  if (t == GgmlType::kQ4_0 && q4_0_exact)
    return {t, LayerMode::kExact, "codes - zero fit Q4_0's q - 8"};
  if (t == GgmlType::kQ8_0 && q8_0_exact)
    return {t, LayerMode::kExact, "codes - zero fit Q8_0's int8"};
  if (t == GgmlType::kQ4_1 && q4_1_mapped)
    return {t, LayerMode::kMapped, "Q4_1 m = fp16(-scale * zero)"};
  std::string why =
      !grid ? no_grid : fmt::format("codes - zero span [{}, {}]", f.min_offset, f.max_offset);
  if (is_k_quant(t))
    return {t, LayerMode::kRefit,
            why + ": re-fitted as " + type_name(t) + " (least-squares search of codes and scales)"};
  return {t, LayerMode::kRefit, why + ": re-fitted with ggml's reference quantizer"};
}

ExportReport export_gguf(const std::filesystem::path& model_dir, const std::filesystem::path& out,
                         const ExportOptions& options) {
  const ModelConfig config = ModelConfig::load(model_dir);
  const ArchSpec& spec = config.require_arch();
  const GgufArch& g = gguf_arch_for(spec.name);
  if (config.text_tower && !g.text_tower)
    fail(
        "{}: multimodal checkpoints ({}) are not exported to GGUF (the language model alone would "
        "need its own "
        "config)",
        model_dir.string(), config.model_type);
  if (!spec.moe.empty() && !g.moe)
    fail("{}: mixture-of-experts models ({}) are not exported to GGUF yet", model_dir.string(),
         spec.name);
  const ModelHparams& hp = config.hp;
  auto store = std::make_shared<TensorStore>(TensorStore::open(model_dir));
  const std::optional<QuantizationConfig> quant = QuantizationConfig::find_in_model_dir(model_dir);
  if (options.from_float && quant)
    fail_code(ExitCode::kUsage, "{} is a GPTQ checkpoint; --from-float needs the float model",
              model_dir.string());
  if (!options.from_float && !quant)
    fail_code(ExitCode::kUsage,
              "{} has no quantization_config (a float checkpoint); export a GPTQ checkpoint, or "
              "give --from-float "
              "--type q4_0|q4_1|q8_0|q4_k|...|f16|f32",
              model_dir.string());
  if (options.from_float && options.type == "auto")
    fail_code(ExitCode::kUsage,
              "--from-float needs --type (q4_0, q4_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, f16 or "
              "f32)");
  const GgmlType float_linear_type =
      options.from_float ? parse_requested(options.type) : options.float_type;

  auto has = [&](const std::string& n) {
    return nn::find_param(*store, n) != nullptr || store->find(n) != nullptr;
  };
  const ModelLayout layout = model_layout(config, has);
  const std::string block_name = quant && !quant->block_name_to_quantize.empty()
                                     ? quant->block_name_to_quantize
                                     : nn::detect_block_name(*store);
  const bool head_present = !layout.lm_head.empty() && !hp.tie_word_embeddings &&
                            (has(layout.lm_head + ".weight") || has(layout.lm_head + ".qweight"));
  const std::vector<TensorMapping> maps =
      tensor_mappings(g, config, layout, block_name, head_present);

  GgufWriter w;
  w.add_string("general.architecture", g.arch);
  w.add_string("general.name",
               std::filesystem::absolute(model_dir).lexically_normal().filename().string());

  ExportReport report;
  report.out = out;
  report.architecture = g.arch;
  auto reports = std::make_shared<std::vector<LayerReport>>();
  std::vector<GgmlType> linear_types;

  struct Pending {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    GgufWriter::Producer produce;
  };
  std::vector<Pending> pending;

  for (const TensorMapping& m : maps) {
    if (!m.values.empty()) {  // computed from config.json (RoPE factors)
      const std::vector<float> v = m.values;
      pending.push_back(
          {m.gguf_name + ".weight", {static_cast<int64_t>(v.size())}, GgmlType::kF32, [v]() {
             return to_bytes(v, GgmlType::kF32);
           }});
      continue;
    }
    if (!m.experts.empty()) {
      StackPlan plan = plan_stack(*store, m, quant ? &*quant : nullptr, options.type,
                                  float_linear_type, model_dir);
      for (size_t x = 0; x < m.experts.size(); ++x) {
        const LayerChoice& c = plan.choices[x];
        reports->push_back({m.experts[x], m.gguf_name + ".weight", c.type, c.mode,
                            plan.gptq ? plan.srcs[x].q.bits : 0, 0, 0, c.why});
        linear_types.push_back(c.type);
      }
      const size_t idx0 = reports->size() - m.experts.size();
      const std::vector<int64_t> ne{plan.k, plan.n, static_cast<int64_t>(m.experts.size())};
      const GgmlType t = plan.choices[0].type;
      pending.push_back({m.gguf_name + ".weight", ne, t, [store, plan, reports, idx0]() {
                           return encode_stack(*store, plan, &(*reports)[idx0]);
                         }});
      continue;
    }
    if (store->find(m.hf_module + ".qweight")) {
      const QuantSource src = quant_source(*store, m.hf_module, *quant);
      const UnpackedLayer u = unpack(*store, m.hf_module, src);
      const LayerFacts facts = facts_of(u);
      LayerChoice choice = choose_layer_type(facts, options.type);
      if (is_k_quant(choice.type) && src.k % kQkK != 0) {
        // The fallback type may hold the GPTQ grid exactly (Q4_0/Q8_0) or mapped (Q4_1).
        GgmlType t = choice.type;
        std::string note;
        apply_k_fallback(src.k, &t, &note);
        choice = choose_layer_type(facts, type_name(t));
        choice.why += note;
      }
      if (options.type == "auto" && choice.mode == LayerMode::kRefit &&
          src.k % block_size(choice.type) == 0) {
        // Among the types of the same or slightly fewer bits per weight, the smallest error.
        const std::vector<float> wq = dequantize_layer(u.data);
        const std::vector<GgmlType> cands = refit_candidates(choice.type, src.k);
        GgmlType best = choice.type;
        double best_err = -1;
        std::string tried;
        for (const GgmlType t : cands) {
          LayerReport r;
          encode_rows(wq, src.n, src.k, t, &r);
          tried += fmt::format("{}{} {:.4g}", tried.empty() ? "" : ", ", type_name(t), r.rel_error);
          if (best_err < 0 || r.rel_error < best_err) best_err = r.rel_error, best = t;
        }
        if (cands.size() > 1)
          choice.why +=
              fmt::format(" as {} (smallest relative error of {})", type_name(best), tried);
        choice.type = best;
      }
      if (is_quantized(choice.type) && src.k % block_size(choice.type) != 0)
        fail(
            "{}: in_features {} is not a multiple of 32, so no ggml block type can hold it (try "
            "--type f16)",
            m.hf_module, src.k);
      const size_t idx = reports->size();
      reports->push_back({m.hf_module, m.gguf_name + ".weight", choice.type, choice.mode,
                          src.q.bits, 0, 0, choice.why});
      linear_types.push_back(choice.type);
      const std::vector<int64_t> order = row_order(m.rows, src.n, hp);
      pending.push_back(
          {m.gguf_name + ".weight",
           {src.k, src.n},
           choice.type,
           [store, m, src, choice, order, reports, idx]() {
             const UnpackedLayer lu = unpack(*store, m.hf_module, src);
             LayerReport* rep = &(*reports)[idx];
             if (choice.mode == LayerMode::kExact || choice.mode == LayerMode::kMapped)
               return encode_gptq(lu, order, choice, rep);
             const std::vector<float> wq = permute_rows(dequantize_layer(lu.data), order, src.k);
             return encode_rows(wq, src.n, src.k, choice.type, rep);
           }});
      // GPTQ writes a zero bias for layers without one (sizes only): dropped where the family has
      // none.
      if (const TensorInfo* b = store->find(m.hf_module + ".bias")) {
        std::vector<float> bias = tensor_to_f32(*b);
        if (!(all_zero(bias) && !bias_expected(hp, m.gguf_name)))
          pending.push_back({m.gguf_name + ".bias", {src.n}, GgmlType::kF32, [bias, order]() {
                               return to_bytes(permute_rows(bias, order, 1), GgmlType::kF32);
                             }});
      }
      continue;
    }
    const TensorInfo* wt = nn::find_param(*store, m.hf_module + ".weight");
    if (!wt)
      fail("{}: tensor {}.weight is missing (needed for GGUF {})", model_dir.string(), m.hf_module,
           m.gguf_name);
    const std::string wname = wt->name;
    if (m.is_linear) {
      const LinearKind kind = spec.linear_kind(local_name(m.hf_module, block_name));
      if (wt->shape.size() != 2)
        fail("{}: a linear weight must be 2-D, got {}", wname, wt->shape_str());
      const int64_t n = kind == LinearKind::kConv1D ? wt->shape[1] : wt->shape[0];
      const int64_t k = kind == LinearKind::kConv1D ? wt->shape[0] : wt->shape[1];
      GgmlType t = float_linear_type;
      std::string why =
          options.from_float
              ? (is_k_quant(t) ? "float weight, least-squares k-quant search"
                               : "float weight, ggml reference quantizer (llama-quantize "
                                 "without imatrix)")
              : "left float in the GPTQ checkpoint";
      apply_k_fallback(k, &t, &why);
      if (k % block_size(t) != 0)
        fail("{}: in_features {} is not a multiple of {} ({} blocks)", wname, k, block_size(t),
             type_name(t));
      const size_t idx = reports->size();
      const LayerMode mode = is_quantized(t) ? LayerMode::kRefit : LayerMode::kFloat;
      reports->push_back({m.hf_module, m.gguf_name + ".weight", t, mode, 0, 0, 0, why});
      linear_types.push_back(t);
      const std::vector<int64_t> order = row_order(m.rows, n, hp);
      pending.push_back({m.gguf_name + ".weight",
                         {k, n},
                         t,
                         [store, wname, kind, n, k, t, order, reports, idx]() {
                           const std::vector<float> wf = permute_rows(
                               nn::load_linear_weight(*store, wname, kind, n, k), order, k);
                           return encode_rows(wf, n, k, t, &(*reports)[idx]);
                         }});
      if (const TensorInfo* b = nn::find_param(*store, m.hf_module + ".bias")) {
        std::vector<float> bias = tensor_to_f32(*b);
        pending.push_back({m.gguf_name + ".bias", {n}, GgmlType::kF32, [bias, order]() {
                             return to_bytes(permute_rows(bias, order, 1), GgmlType::kF32);
                           }});
      }
      continue;
    }
    // Embeddings, positions, norms, head.
    std::vector<int64_t> ne(wt->shape.rbegin(), wt->shape.rend());
    const bool one_d = wt->shape.size() <= 1;
    const GgmlType t = (one_d || m.is_norm || m.keep_f32 || m.gguf_name == "position_embd")
                           ? GgmlType::kF32
                           : options.float_type;
    const bool offset = m.is_norm && g.norm_offset;
    const float scale = m.scale;
    pending.push_back({m.gguf_name + ".weight", ne, t, [store, wname, t, offset, scale]() {
                         std::vector<float> v = tensor_to_f32(store->get(wname));
                         if (offset)
                           for (float& x : v) x += 1.0f;
                         if (scale != 1.0f)
                           for (float& x : v) x *= scale;
                         const int64_t n = static_cast<int64_t>(v.size());
                         std::vector<std::byte> bytes(row_size(t, n));
                         quantize_row(t, v.data(), n, bytes.data());
                         return bytes;
                       }});
    if (const TensorInfo* b = nn::find_param(*store, m.hf_module + ".bias")) {
      const std::string bname = b->name;
      pending.push_back({m.gguf_name + ".bias", {b->numel()}, GgmlType::kF32, [store, bname]() {
                           return to_bytes(tensor_to_f32(store->get(bname)), GgmlType::kF32);
                         }});
    }
  }

  // general.file_type: the most frequent type of the block linears.
  GgmlType main_type = GgmlType::kF16;
  size_t best = 0;
  for (const GgmlType t : linear_types) {
    const size_t c = static_cast<size_t>(std::count(linear_types.begin(), linear_types.end(), t));
    if (c > best) best = c, main_type = t;
  }
  w.add_u32("general.file_type", file_type_of(main_type));
  if (is_quantized(main_type)) w.add_u32("general.quantization_version", 2);
  w.add_string("general.quantized_by",
               options.from_float ? "gptq.cpp (ggml reference quantizer)" : "gptq.cpp (GPTQ)");
  report.warnings = write_arch_metadata(w, g, config);
  const GgufVocab vocab = read_vocab(model_dir, hp.vocab, options.tokenizer_pre, g.arch);
  report.warnings.insert(report.warnings.end(), vocab.warnings.begin(), vocab.warnings.end());
  write_vocab(w, vocab);
  for (auto& p : pending) w.add_tensor(p.name, p.ne, p.type, std::move(p.produce));
  report.tensors = static_cast<int64_t>(w.tensor_count());
  w.write(out);
  report.bytes = std::filesystem::file_size(out);
  report.layers = *reports;
  return report;
}

}  // namespace gptq::gguf
