// The test side for today's model families: tiny checkpoints shaped like the real ones
// (support/family_models) and the independent reference forward (support/reference_forward).
// These tests check the reference itself: against the engine where the engine already supports the
// family (Llama, Mistral, Qwen2 with plain RoPE), against values worked out by hand (RoPE
// frequencies, YaRN / LongRoPE attention factors, Gemma's normalizer), and against properties that
// fail when a piece is wrong (the sliding window's reach, which RoPE types depend on the sequence
// length, soft-capping, multimodal prefixes, transformers-5 configs), and, for the mixtures of
// experts, routing worked out by hand, which layers are sparse and an expert starved of tokens.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/model_config.h"
#include "nn/model_forward.h"
#include "support/family_models.h"
#include "support/reference_forward.h"
#include "support/tiny_models.h"
#include "util/error.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace ::gptq::testing;
using Logits = std::vector<double>;

constexpr int64_t T = kFamilyTestTokens;

std::vector<int32_t> random_ids(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> u(0, kFamilyVocab - 1);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& e : ids) e = u(rng);
  return ids;
}

fs::path write_config(const json& config, DType dtype = DType::BF16, uint32_t seed = 7,
                      MultimodalLayout layout = MultimodalLayout::kCurrent) {
  return write_tiny(tiny_from_config(config, layout), dtype, seed);
}

Logits reference_logits(const fs::path& dir, const std::vector<int32_t>& ids) {
  return ReferenceForward(dir).logits(ids);
}

double max_abs(const Logits& v) {
  double m = 0;
  for (double e : v) m = std::max(m, std::abs(e));
  return m;
}

// max |a - b| over rows [r0, r1) of two [*, vocab] logit matrices.
double max_diff_rows(const Logits& a, const Logits& b, int64_t r0, int64_t r1) {
  double m = 0;
  for (int64_t i = r0 * kFamilyVocab; i < r1 * kFamilyVocab; ++i)
    m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

const std::string kS = "sliding_attention", kF = "full_attention";

bool is_moe_kind(const std::string& kind) {
  return std::find(moe_kinds().begin(), moe_kinds().end(), kind) != moe_kinds().end();
}

// The kinds the engine supports today (every kind but the mixtures of experts).
std::vector<std::string> dense_kinds() {
  std::vector<std::string> out;
  for (const std::string& k : family_kinds())
    if (!is_moe_kind(k)) out.push_back(k);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The configs and checkpoints

// The text part of a config (multimodal: text_config; Qwen2.5-VL keeps it at top level).
json text_part(const json& c) {
  return c.contains("text_config") ? c.at("text_config") : c;
}

TEST(FamilyConfigs, ShrunkDimensionsAndRealKeys) {
  std::set<std::string> seen;
  for (const std::string& kind : family_kinds()) {
    SCOPED_TRACE(kind);
    EXPECT_TRUE(seen.insert(kind).second);
    const json c = family_config(kind);
    ASSERT_TRUE(c.contains("architectures"));
    EXPECT_TRUE(c.contains("torch_dtype") || c.contains("dtype"));
    EXPECT_TRUE(c.contains("transformers_version"));
    const json t = text_part(c);
    EXPECT_EQ(t.at("vocab_size").get<int64_t>(), kFamilyVocab);
    EXPECT_EQ(t.at("num_attention_heads").get<int64_t>(), 4);
    EXPECT_EQ(t.at("num_key_value_heads").get<int64_t>(), 2);
    const int64_t hidden = t.at("hidden_size").get<int64_t>();
    EXPECT_EQ(hidden % 32, 0);
    EXPECT_TRUE(hidden >= 64 && hidden <= 128);
    EXPECT_EQ(t.at("intermediate_size").get<int64_t>() % 32, 0);
    const int64_t layers = t.at("num_hidden_layers").get<int64_t>();
    EXPECT_TRUE(layers >= 2 && layers <= 6);
    const TextSpec s = text_spec(c);
    EXPECT_TRUE(s.head_dim == 16 || s.head_dim == 32) << s.head_dim;
    // Every sliding window a family uses is shorter than the test sequence, except Phi-4-mini's
    // (262144, as published).
    if (s.sliding_window && kind != "phi4_mini") {
      EXPECT_LT(*s.sliding_window, T);
    }
  }
  EXPECT_THROW(family_config("nope"), std::invalid_argument);
}

// The Gemma 3 and Mistral 3 text configs are as sparse as the published ones: class defaults
// must fill them in.
TEST(FamilyConfigs, MultimodalTextConfigsRelyOnDefaults) {
  const json g = family_config("gemma3").at("text_config");
  for (const char* k : {"rope_theta", "rope_local_base_freq", "sliding_window_pattern",
                        "query_pre_attn_scalar", "rms_norm_eps", "hidden_activation"})
    EXPECT_FALSE(g.contains(k)) << k;
  const json l = family_config("llava").at("text_config");
  for (const char* k : {"rope_theta", "hidden_act", "tie_word_embeddings"})
    EXPECT_FALSE(l.contains(k)) << k;
  EXPECT_FALSE(family_config("qwen3_v5").contains("rope_theta"));
  EXPECT_FALSE(family_config("gemma3_v5").contains("rope_theta"));
}

class FamilyCheckpoint : public ::testing::TestWithParam<std::string> {};

// Every kind writes, reads back with the names and shapes the reference derives from the config,
// and gives finite, non-trivial logits.
TEST_P(FamilyCheckpoint, WritesAndGivesFiniteLogits) {
  const json config = family_config(GetParam());
  const TinyModel m = tiny_from_config(config);
  EXPECT_EQ(m.family, config.at("model_type").get<std::string>());
  const fs::path dir = write_tiny(m, DType::BF16, 11);
  const TensorStore store = TensorStore::open(dir);
  EXPECT_EQ(store.size(), m.tensors.size());
  for (const auto& t : m.tensors) {
    const TensorInfo* info = store.find(t.name);
    ASSERT_NE(info, nullptr) << t.name;
    EXPECT_EQ(info->shape, t.shape) << t.name;
    EXPECT_EQ(info->dtype, DType::BF16);
  }
  const ReferenceForward ref(dir);
  EXPECT_EQ(ref.vocab(), kFamilyVocab);
  const Logits l = ref.logits(random_ids(T, 3));
  ASSERT_EQ(static_cast<int64_t>(l.size()), T * kFamilyVocab);
  for (double e : l) ASSERT_TRUE(std::isfinite(e));
  const double mx = max_abs(l);
  std::printf("[ %s ] text prefix %s, head %s, max|logit| %.3f\n", GetParam().c_str(),
              ref.prefix().c_str(), ref.head_name().c_str(), mx);
  EXPECT_GT(mx, 0.1);
  // Rows differ (positions and tokens matter).
  EXPECT_GT(max_diff_rows(l, Logits(l.begin() + kFamilyVocab, l.end()), 0, T - 1), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Kinds, FamilyCheckpoint, ::testing::ValuesIn(family_kinds()),
                         [](const auto& p) { return p.param; });

TEST(FamilyCheckpoint, RealTensorNames) {
  auto names = [](const json& c, MultimodalLayout layout = MultimodalLayout::kCurrent) {
    std::set<std::string> s;
    for (const auto& t : tiny_from_config(c, layout).tensors) s.insert(t.name);
    return s;
  };
  const auto phi3 = names(family_config("phi3_longrope"));
  EXPECT_TRUE(phi3.count("model.layers.1.self_attn.qkv_proj.weight"));
  EXPECT_TRUE(phi3.count("model.layers.1.mlp.gate_up_proj.weight"));
  EXPECT_TRUE(phi3.count("lm_head.weight"));
  EXPECT_FALSE(names(family_config("phi4_mini")).count("lm_head.weight"));  // tied
  const auto qwen3 = names(family_config("qwen3"));
  EXPECT_TRUE(qwen3.count("model.layers.0.self_attn.q_norm.weight"));
  EXPECT_FALSE(qwen3.count("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_TRUE(names(family_config("qwen2")).count("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_FALSE(names(family_config("qwen2")).count("model.layers.0.self_attn.o_proj.bias"));
  const auto g2 = names(family_config("gemma2"));
  for (const char* n : {"pre_feedforward_layernorm", "post_feedforward_layernorm",
                        "post_attention_layernorm", "input_layernorm"})
    EXPECT_TRUE(g2.count(std::string("model.layers.1.") + n + ".weight")) << n;
  EXPECT_FALSE(g2.count("lm_head.weight"));
  const auto sc = names(family_config("starcoder2"));
  for (const char* n :
       {"model.layers.0.self_attn.o_proj.bias", "model.layers.0.mlp.c_fc.bias",
        "model.layers.0.mlp.c_proj.bias", "model.layers.0.input_layernorm.bias", "model.norm.bias"})
    EXPECT_TRUE(sc.count(n)) << n;
  EXPECT_FALSE(sc.count("lm_head.weight"));
  const auto g3 = names(family_config("gemma3"));
  EXPECT_TRUE(g3.count("model.language_model.layers.5.self_attn.k_norm.weight"));
  EXPECT_TRUE(g3.count("model.vision_tower.vision_model.embeddings.patch_embedding.weight"));
  EXPECT_TRUE(g3.count("model.multi_modal_projector.mm_input_projection_weight"));
  EXPECT_FALSE(g3.count("lm_head.weight"));
  const auto g3l = names(family_config("gemma3"), MultimodalLayout::kLegacy);
  EXPECT_TRUE(g3l.count("language_model.model.layers.5.self_attn.k_norm.weight"));
  EXPECT_TRUE(g3l.count("vision_tower.vision_model.embeddings.patch_embedding.weight"));
  EXPECT_TRUE(g3l.count("multi_modal_projector.mm_soft_emb_norm.weight"));
  EXPECT_TRUE(
      names(family_config("mistral3")).count("model.multi_modal_projector.linear_1.weight"));
  EXPECT_TRUE(names(family_config("mistral3"), MultimodalLayout::kLegacy)
                  .count("language_model.lm_head.weight"));
  EXPECT_TRUE(
      names(family_config("llava")).count("model.vision_tower.vision_model.pre_layrnorm.bias"));
  const auto vl = names(family_config("qwen2_5_vl"));
  EXPECT_TRUE(vl.count("model.language_model.layers.0.self_attn.q_proj.bias"));
  EXPECT_TRUE(vl.count("model.visual.merger.mlp.0.weight"));
  EXPECT_TRUE(vl.count("lm_head.weight"));
  const auto vll = names(family_config("qwen2_5_vl"), MultimodalLayout::kLegacy);
  EXPECT_TRUE(vll.count("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_TRUE(vll.count("visual.patch_embed.proj.weight"));
}

// ---------------------------------------------------------------------------------------------
// The reference against the engine

// max |engine - reference| over the logits of T random tokens, and max |reference|.
std::pair<double, double> engine_vs_reference(const json& config, DType dtype,
                                              MultimodalLayout layout, const char* label) {
  const fs::path dir = write_config(config, dtype, 5, layout);
  const ModelConfig mc = ModelConfig::load(dir);
  const TensorStore store = TensorStore::open(dir);
  const ModelForward engine(mc, store);
  const std::vector<int32_t> ids = random_ids(T, 9);
  const std::vector<float> got = engine.logits(ids);
  const Logits want = reference_logits(dir, ids);
  EXPECT_EQ(got.size(), want.size());
  double err = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i)
    err = std::max(err, std::abs(static_cast<double>(got[i]) - want[i]));
  std::printf("[ %s ] engine vs reference: max error %.3g, max|logit| %.3f\n", label, err,
              max_abs(want));
  return {err, max_abs(want)};
}

// The acceptance check of the model families: every kind (both layouts of the multimodal ones,
// float32 and bfloat16 checkpoints) through the engine's ModelForward agrees with the reference
// within 1e-4 x max|logit| at 40 tokens, where every RoPE scaling and sliding window is active.
class AllKindsMatchEngine : public ::testing::TestWithParam<std::string> {};

TEST_P(AllKindsMatchEngine, Within1e4OfMaxLogit) {
  const json config = family_config(GetParam());
  const bool multimodal = config.contains("vision_config");
  for (const MultimodalLayout layout : {MultimodalLayout::kCurrent, MultimodalLayout::kLegacy}) {
    if (!multimodal && layout == MultimodalLayout::kLegacy) continue;
    for (const DType dtype : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(std::string(layout == MultimodalLayout::kLegacy ? "legacy " : "") +
                   (dtype == DType::F32 ? "f32" : "bf16"));
      const auto [err, scale] = engine_vs_reference(config, dtype, layout, GetParam().c_str());
      EXPECT_LE(err, 1e-4 * scale);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, AllKindsMatchEngine, ::testing::ValuesIn(dense_kinds()),
                         [](const auto& p) { return p.param; });

// ---------------------------------------------------------------------------------------------
// RoPE frequencies worked out by hand

void expect_rel(double got, double want, double rel = 1e-6) {
  EXPECT_NEAR(got, want, rel * std::abs(want)) << "want " << want;
}

// Llama 3.1 (_compute_llama3_parameters), theta 500000, head_dim 16, factor 8, low 1, high 4,
// original context 64: low_freq_wavelen = 64, high_freq_wavelen = 16.
//   j = 0: inv 1, wavelength 2 pi = 6.28 < 16: kept, 1.
//   j = 1: inv 500000^(-1/8) = 0.19392274, wavelength 32.40 in [16, 64]:
//          smooth = (64 / 32.40 - 1) / (4 - 1) = 0.32509362,
//          (1 - smooth) * inv / 8 + smooth * inv = 0.07940301.
//   j = 2: inv 500000^(-1/4) = 0.03760603, wavelength 167 > 64: inv / 8 = 0.00470075.
//   j = 7: inv 500000^(-7/8) = 1.0313385e-5: / 8 = 1.2891732e-6.
TEST(Rope, Llama3InverseFrequencies) {
  const TextSpec s = text_spec(family_config("llama3"));
  const RefRopeSpec& r = s.rope.at(kF);
  EXPECT_EQ(r.type, "llama3");
  EXPECT_EQ(*r.original_max_position_embeddings, 64);
  const RopeFrequencies f = rope_frequencies(r, s.head_dim, s.max_position_embeddings, T);
  ASSERT_EQ(f.inv_freq.size(), 8u);
  EXPECT_EQ(f.attention_factor, 1.0);
  expect_rel(f.inv_freq[0], 1.0);
  expect_rel(f.inv_freq[1], 0.0794030091792082);
  expect_rel(f.inv_freq[2], 0.004700753866357992);
  expect_rel(f.inv_freq[7], 1.2891731721515574e-06);
}

// YaRN (_compute_yarn_parameters), theta 10000, head_dim 16, factor 4, original 32, beta 32 / 1:
//   find_correction_dim(32) = 16 ln(32 / (64 pi)) / (2 ln 10000) = -1.596 -> floor -2 -> 0,
//   find_correction_dim(1)  = 16 ln(32 / (2 pi)) / (2 ln 10000)  =  1.414 -> ceil 2,
//   ramp (j - 0) / 2 clamped: extrapolation weight 1, 0.5, 0, 0, ... for j = 0, 1, 2, ...
//   inv_1 = 0.5 / (4 * 10000^(1/8)) + 0.5 / 10000^(1/8) = 0.19764235, inv_2 = 1 / (4 * 10) = 0.025.
//   attention_factor (unset) = 0.1 ln 4 + 1 = 1.13862944.
// Without truncation the range is [0, 1.414]: inv_1 = 0.14849025.
// With mscale 1 and mscale_all_dim 0.5: (0.1 ln 4 + 1) / (0.05 ln 4 + 1) = 1.06482163.
TEST(Rope, YarnRampAndAttentionFactor) {
  const TextSpec s = text_spec(family_config("llama_yarn"));
  RefRopeSpec r = s.rope.at(kF);
  EXPECT_EQ(r.type, "yarn");
  RopeFrequencies f = rope_frequencies(r, s.head_dim, s.max_position_embeddings, T);
  expect_rel(f.attention_factor, 1.138629436111989, 1e-12);
  expect_rel(f.inv_freq[0], 1.0);
  expect_rel(f.inv_freq[1], 0.19764235376052372);
  expect_rel(f.inv_freq[2], 0.025);
  expect_rel(f.inv_freq[3], 0.007905694150420948);
  r.truncate = false;
  f = rope_frequencies(r, s.head_dim, s.max_position_embeddings, T);
  expect_rel(f.inv_freq[1], 0.14849024701094485);
  r.truncate = true;
  r.mscale = 1.0;
  r.mscale_all_dim = 0.5;
  expect_rel(rope_frequencies(r, s.head_dim, s.max_position_embeddings, T).attention_factor,
             1.0648216253695715, 1e-12);
  r.attention_factor = 0.75;  // explicit: used as is
  EXPECT_EQ(rope_frequencies(r, s.head_dim, s.max_position_embeddings, T).attention_factor, 0.75);
}

// LongRoPE (_compute_longrope_parameters) on Phi-3.5's shape: factor = 256 / 32 = 8, attention
// factor sqrt(1 + ln 8 / ln 32) = sqrt(1.6) = 1.26491106 whatever the length; short factors up
// to 32 tokens, long ones beyond: inv_1 = 1 / (1.02 * 10000^(1/8)) = 0.31002722 (short),
// 1 / (1.5 * 10000^(1/8)) = 0.21081851 (long).
TEST(Rope, LongropePicksLongFactorsOnlyBeyondOriginalMax) {
  const TextSpec s = text_spec(family_config("phi3_longrope"));
  const RefRopeSpec& r = s.rope.at(kS);
  EXPECT_EQ(r.type, "longrope");
  EXPECT_EQ(*r.original_max_position_embeddings, 32);
  for (int64_t seq : {1, 20, 32}) {
    const RopeFrequencies f = rope_frequencies(r, s.head_dim, s.max_position_embeddings, seq);
    expect_rel(f.inv_freq[1], 0.3100272215851352);
    expect_rel(f.attention_factor, 1.2649110640673518, 1e-12);
  }
  for (int64_t seq : {33, 40, 256}) {
    const RopeFrequencies f = rope_frequencies(r, s.head_dim, s.max_position_embeddings, seq);
    expect_rel(f.inv_freq[1], 0.21081851067789195);
    expect_rel(f.attention_factor, 1.2649110640673518, 1e-12);
  }
}

// Phi-4-mini: partial_rotary_factor 0.75 of head_dim 32 = 24 rotary dims, 12 frequencies:
// inv_1 = 1 / (1.1183 * 10000^(2/24)) = 0.41505757 with the long factors.
TEST(Rope, PartialRotaryFactor) {
  const TextSpec s = text_spec(family_config("phi4_mini"));
  EXPECT_EQ(s.head_dim, 32);
  const RopeFrequencies f =
      rope_frequencies(s.rope.at(kS), s.head_dim, s.max_position_embeddings, T);
  EXPECT_EQ(f.rotary_dim(), 24);
  expect_rel(f.inv_freq[1], 0.4150575725308753);
}

// Dynamic NTK (_compute_dynamic_ntk_parameters), theta 10000, head_dim 16, factor 2, max 32: at
// 40 tokens base = 10000 * (2 * 40 / 32 - 1)^(16 / 14) = 15894.51, inv_1 = base^(-1/8) =
// 0.29843112; up to 32 tokens the default 10000^(-1/8) = 0.31622777.
TEST(Rope, DynamicNtkRescalesOnlyBeyondMaxPositions) {
  const TextSpec s = text_spec(family_config("llama_dynamic"));
  const RefRopeSpec& r = s.rope.at(kF);
  EXPECT_EQ(r.type, "dynamic");
  expect_rel(rope_frequencies(r, 16, 32, 40).inv_freq[1], 0.2984311179636415);
  expect_rel(rope_frequencies(r, 16, 32, 32).inv_freq[1], 0.31622776601683794);
  expect_rel(rope_frequencies(r, 16, 32, 5).inv_freq[1], 0.31622776601683794);
}

// Linear: the default frequencies divided by the factor (2 here; "type" spelled the Llama-2 way).
TEST(Rope, LinearDividesByFactor) {
  const TextSpec s = text_spec(family_config("llama_linear"));
  EXPECT_EQ(s.rope.at(kF).type, "linear");
  const RopeFrequencies f = rope_frequencies(s.rope.at(kF), 16, 256, T);
  expect_rel(f.inv_freq[0], 0.5);
  expect_rel(f.inv_freq[1], 0.31622776601683794 / 2);
}

// Gemma 3: linear x8 on theta 1e6 for full layers, default theta 1e4 on sliding ones, from the
// published (v4) keys and from transformers 5's per-layer-type rope_parameters alike.
TEST(Rope, Gemma3LocalAndGlobal) {
  for (const char* kind : {"gemma3", "gemma3_v5"}) {
    SCOPED_TRACE(kind);
    const TextSpec s = text_spec(family_config(kind));
    const RefRopeSpec& full = s.rope.at(kF);
    const RefRopeSpec& local = s.rope.at(kS);
    EXPECT_EQ(full.type, "linear");
    EXPECT_EQ(*full.factor, 8.0);
    EXPECT_EQ(full.theta, 1e6);
    EXPECT_EQ(local.type, "default");
    EXPECT_EQ(local.theta, 1e4);
  }
  const TextSpec t = text_spec(family_config("gemma3_text"));
  EXPECT_EQ(t.rope.at(kF).type, "default");
  EXPECT_EQ(t.rope.at(kF).theta, 1e6);
  EXPECT_EQ(t.rope.at(kS).theta, 1e4);
  // transformers 5's flat rope_parameters (Qwen3).
  const TextSpec q = text_spec(family_config("qwen3_v5"));
  EXPECT_EQ(q.rope.at(kF).type, "default");
  EXPECT_EQ(q.rope.at(kF).theta, 1e6);
  // Qwen2.5-VL's mrope is plain RoPE for text.
  EXPECT_EQ(text_spec(family_config("qwen2_5_vl")).rope.at(kF).type, "default");
}

// ---------------------------------------------------------------------------------------------
// Which RoPE types depend on the sequence length: logits of a prefix run alone equal the first
// rows of the longer run exactly, unless the frequencies change with T.

TEST(ReferenceForwardTest, PrefixRowsDependOnLengthOnlyForLongropeAndDynamic) {
  const std::vector<int32_t> ids = random_ids(T, 21);
  const std::vector<int32_t> ids32(ids.begin(), ids.begin() + 32),
      ids20(ids.begin(), ids.begin() + 20);
  for (const std::string& kind : family_kinds()) {
    SCOPED_TRACE(kind);
    const ReferenceForward ref(write_config(family_config(kind)));
    const Logits l40 = ref.logits(ids), l32 = ref.logits(ids32), l20 = ref.logits(ids20);
    EXPECT_EQ(max_diff_rows(l32, l20, 0, 20), 0.0);  // both within the original context
    const bool length_dependent =
        kind == "phi3_longrope" || kind == "phi4_mini" || kind == "llama_dynamic";
    if (length_dependent) {
      EXPECT_GT(max_diff_rows(l40, l32, 0, 32), 1e-3 * max_abs(l32));
    } else {
      EXPECT_EQ(max_diff_rows(l40, l32, 0, 32), 0.0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Masks and layer types

TEST(ReferenceForwardTest, AttendsIsCausalWithExclusiveWindow) {
  EXPECT_TRUE(attends(10, 0, std::nullopt));
  EXPECT_TRUE(attends(10, 10, std::nullopt));
  EXPECT_FALSE(attends(3, 4, std::nullopt));
  EXPECT_TRUE(attends(10, 3, 8));   // 10 - 3 = 7 < 8
  EXPECT_FALSE(attends(10, 2, 8));  // 10 - 2 = 8
  EXPECT_TRUE(attends(10, 10, 1));
  EXPECT_FALSE(attends(10, 9, 1));
  EXPECT_FALSE(attends(3, 4, 8));
}

// One sliding layer of window 8: changing token 5 changes rows 5..12 and no other.
TEST(ReferenceForwardTest, SlidingWindowReach) {
  json c = family_config("mistral_sliding");
  c["num_hidden_layers"] = 1;
  const ReferenceForward ref(write_config(c));
  std::vector<int32_t> ids = random_ids(T, 4), other = ids;
  other[5] = (other[5] + 1) % kFamilyVocab;
  const Logits a = ref.logits(ids), b = ref.logits(other);
  EXPECT_EQ(max_diff_rows(a, b, 0, 5), 0.0);
  for (int64_t r = 5; r <= 12; ++r) EXPECT_GT(max_diff_rows(a, b, r, r + 1), 1e-6) << r;
  EXPECT_EQ(max_diff_rows(a, b, 13, T), 0.0);

  // Two sliding layers reach 2 * 7 positions further; a full layer (Gemma 2's layer 1) all.
  const ReferenceForward two(write_config(family_config("mistral_sliding")));
  EXPECT_GT(max_diff_rows(two.logits(ids), two.logits(other), 19, 20), 1e-6);
  EXPECT_EQ(max_diff_rows(two.logits(ids), two.logits(other), 20, T), 0.0);
  const ReferenceForward g2(write_config(family_config("gemma2")));
  EXPECT_GT(max_diff_rows(g2.logits(ids), g2.logits(other), T - 1, T), 1e-6);
  // Without a window (Mistral v0.3: sliding_window null) the last row sees token 5.
  const ReferenceForward full(write_config(family_config("mistral")));
  EXPECT_GT(max_diff_rows(full.logits(ids), full.logits(other), T - 1, T), 1e-6);
}

TEST(ReferenceForwardTest, LayerTypesPerFamily) {
  using V = std::vector<std::string>;
  auto spec = [](const std::string& kind) { return text_spec(family_config(kind)); };
  EXPECT_EQ(spec("gemma2").layer_types, (V{kS, kF}));                  // Gemma2: even layers slide
  EXPECT_EQ(spec("gemma3_text").layer_types, (V{kS, kF, kS, kF}));     // sliding_window_pattern 2
  EXPECT_EQ(spec("gemma3").layer_types, (V{kS, kS, kS, kS, kS, kF}));  // default pattern 6
  EXPECT_EQ(spec("gemma3_v5").layer_types, (V{kS, kS, kF, kS}));       // explicit layer_types
  EXPECT_EQ(*spec("gemma3").sliding_window, 8);
  EXPECT_EQ(spec("mistral_sliding").layer_types, (V{kS, kS}));
  EXPECT_EQ(*spec("mistral_sliding").sliding_window, 8);
  EXPECT_EQ(spec("mistral").layer_types, (V{kF, kF}));
  EXPECT_EQ(spec("phi3_longrope").layer_types, (V{kS, kS}));
  EXPECT_EQ(*spec("phi4_mini").sliding_window, 262144);
  EXPECT_EQ(spec("starcoder2").layer_types, (V{kS, kS}));
  EXPECT_EQ(spec("qwen2").layer_types, (V{kF, kF}));  // use_sliding_window false
  EXPECT_FALSE(spec("qwen2").sliding_window);
  EXPECT_EQ(spec("qwen2_5_vl").layer_types, (V{kF, kF}));
  EXPECT_EQ(spec("llama").layer_types, (V{kF, kF}));
  // Qwen2 with use_sliding_window: layers from max_window_layers on slide.
  json q = family_config("qwen2");
  q["use_sliding_window"] = true;
  q["max_window_layers"] = 1;
  EXPECT_EQ(text_spec(q).layer_types, (V{kF, kS}));
  EXPECT_EQ(*text_spec(q).sliding_window, 8);
  // MistralConfig's default sliding_window (4096) applies when the key is absent.
  json m = family_config("mistral");
  m.erase("sliding_window");
  EXPECT_EQ(*text_spec(m).sliding_window, 4096);
  // Llama never slides.
  json l = family_config("llama");
  l["sliding_window"] = 8;
  EXPECT_FALSE(text_spec(l).sliding_window);
}

// ---------------------------------------------------------------------------------------------
// Gemma specifics

// sqrt(3072) = 55.4256: bfloat16 55.5 (8 significant bits), float16 55.4375 (steps of 1/32),
// float32 unchanged. sqrt(96) = 9.79796: bfloat16 9.8125.
TEST(Gemma, NormalizerRoundedToModelDtype) {
  EXPECT_EQ(gemma_embed_scale(3072, "bfloat16"), 55.5);
  EXPECT_EQ(gemma_embed_scale(3072, "float16"), 55.4375);
  EXPECT_EQ(gemma_embed_scale(3072, "float32"), static_cast<double>(std::sqrt(3072.0f)));
  EXPECT_EQ(gemma_embed_scale(3072, ""), static_cast<double>(std::sqrt(3072.0f)));
  EXPECT_EQ(gemma_embed_scale(96, "bfloat16"), 9.8125);
  EXPECT_THROW(gemma_embed_scale(96, "int8"), Error);
  EXPECT_EQ(text_spec(family_config("gemma")).embed_scale, 9.8125);
  EXPECT_EQ(text_spec(family_config("gemma3")).embed_scale, 9.8125);
  EXPECT_EQ(text_spec(family_config("gemma2")).embed_scale,
            static_cast<double>(std::sqrt(96.0f)));  // float32 config
  EXPECT_EQ(text_spec(family_config("llama")).embed_scale, 1.0);

  // The rounding shows in the logits: the same weights under a float32 config differ.
  json c = family_config("gemma");
  const std::vector<int32_t> ids = random_ids(T, 8);
  const Logits bf = reference_logits(write_config(c), ids);
  c["torch_dtype"] = "float32";
  const Logits f = reference_logits(write_config(c), ids);
  EXPECT_GT(max_diff_rows(bf, f, 0, T), 1e-4 * max_abs(f));
}

// Gemma 2 caps the logits: capped = 30 tanh(uncapped / 30) element by element, all within 30.
TEST(Gemma, FinalLogitSoftcapping) {
  json c = family_config("gemma2");
  const std::vector<int32_t> ids = random_ids(T, 12);
  const Logits capped = reference_logits(write_config(c), ids);
  c["final_logit_softcapping"] = nullptr;
  const Logits raw = reference_logits(write_config(c), ids);
  ASSERT_EQ(capped.size(), raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    ASSERT_LT(std::abs(capped[i]), 30.0);
    ASSERT_NEAR(capped[i], 30.0 * std::tanh(raw[i] / 30.0), 1e-9);
  }
  EXPECT_GT(max_diff_rows(capped, raw, 0, T), 1e-3);
  // The attention soft-cap (50) is applied too: removing it changes the logits.
  c["attn_logit_softcapping"] = nullptr;
  EXPECT_GT(max_diff_rows(reference_logits(write_config(c), ids), raw, 0, T), 1e-6);
  // Gemma 3 ignores attn_logit_softcapping (Gemma3Attention does not pass it on).
  json g3 = family_config("gemma3_text");
  const Logits plain = reference_logits(write_config(g3), ids);
  g3["attn_logit_softcapping"] = 1.0;
  EXPECT_EQ(max_diff_rows(reference_logits(write_config(g3), ids), plain, 0, T), 0.0);
}

// Gemma 1 reads hidden_act ("gelu": the erf form), Gemma 2/3 hidden_activation.
TEST(Gemma, ActivationKeys) {
  EXPECT_EQ(text_spec(family_config("gemma")).activation, "gelu");
  EXPECT_EQ(text_spec(family_config("gemma2")).activation, "gelu_pytorch_tanh");
  EXPECT_EQ(text_spec(family_config("gemma3")).activation, "gelu_pytorch_tanh");
  json c = family_config("gemma");
  const std::vector<int32_t> ids = random_ids(T, 13);
  const Logits erf = reference_logits(write_config(c), ids);
  c["hidden_act"] = "gelu_pytorch_tanh";
  EXPECT_GT(max_diff_rows(reference_logits(write_config(c), ids), erf, 0, T), 1e-6);
}

TEST(Gemma, AttentionScaleAndHead) {
  EXPECT_DOUBLE_EQ(text_spec(family_config("gemma2")).attn_scale, 1.0 / std::sqrt(24.0));
  EXPECT_DOUBLE_EQ(text_spec(family_config("gemma3_text")).attn_scale, 1.0 / std::sqrt(48.0));
  EXPECT_DOUBLE_EQ(text_spec(family_config("gemma3")).attn_scale, 1.0 / 16);  // default 256
  EXPECT_DOUBLE_EQ(text_spec(family_config("gemma")).attn_scale, 1.0 / std::sqrt(32.0));
  EXPECT_TRUE(text_spec(family_config("gemma3")).tie_word_embeddings);
  EXPECT_FALSE(text_spec(family_config("gemma3")).final_softcap);
  EXPECT_EQ(*text_spec(family_config("gemma2")).final_softcap, 30.0);
}

// ---------------------------------------------------------------------------------------------
// Multimodal checkpoints and transformers-5 configs

// Both layouts of a multimodal checkpoint hold the same text model.
TEST(Multimodal, CurrentAndLegacyLayoutsAgree) {
  const std::vector<int32_t> ids = random_ids(T, 14);
  for (const char* kind : {"gemma3", "mistral3", "llava", "qwen2_5_vl"}) {
    SCOPED_TRACE(kind);
    const json c = family_config(kind);
    const ReferenceForward cur(write_config(c, DType::BF16, 3, MultimodalLayout::kCurrent));
    const ReferenceForward leg(write_config(c, DType::BF16, 3, MultimodalLayout::kLegacy));
    EXPECT_EQ(cur.prefix(), "model.language_model.");
    EXPECT_EQ(leg.prefix(), std::string(kind) == "qwen2_5_vl" ? "model." : "language_model.model.");
    EXPECT_EQ(max_diff_rows(cur.logits(ids), leg.logits(ids), 0, T), 0.0);
  }
}

// A multimodal model's text tower computes what the text-only family computes from the same text
// config and weights (the text tensors come first, so the same seed gives the same weights).
TEST(Multimodal, TextTowerEqualsTextOnlyModel) {
  const std::vector<int32_t> ids = random_ids(T, 15);
  auto same = [&](const json& mm, json text) {
    const Logits a = reference_logits(write_config(mm, DType::BF16, 6), ids);
    const Logits b = reference_logits(write_config(text, DType::BF16, 6), ids);
    EXPECT_EQ(max_diff_rows(a, b, 0, T), 0.0);
    EXPECT_GT(max_abs(a), 0.1);
  };
  {
    const json mm = family_config("mistral3");
    json text = mm.at("text_config");
    text["torch_dtype"] = "bfloat16";
    same(mm, text);
  }
  {
    const json mm = family_config("llava");
    same(mm, mm.at("text_config"));
  }
  {
    const json mm = family_config("gemma3");
    json text = mm.at("text_config");
    text["torch_dtype"] = "bfloat16";  // the normalizer is rounded alike
    same(mm, text);
  }
  {
    const json mm = family_config("qwen2_5_vl");
    json text = mm;
    text.erase("vision_config");
    text["model_type"] = "qwen2";
    text["architectures"] = {"Qwen2ForCausalLM"};
    text["rope_scaling"] = nullptr;
    same(mm, text);
  }
}

// transformers-5 configs (rope_parameters, dtype, layer_types) describe the same models as the
// published ones.
TEST(Multimodal, TransformersFiveConfigsMatchPublishedForm) {
  const std::vector<int32_t> ids = random_ids(T, 16);
  EXPECT_EQ(max_diff_rows(reference_logits(write_config(family_config("qwen3")), ids),
                          reference_logits(write_config(family_config("qwen3_v5")), ids), 0, T),
            0.0);
  const json v5 = family_config("gemma3_v5");
  json v4 = v5;
  v4.erase("rope_parameters");
  v4["rope_theta"] = 1000000;
  v4["rope_local_base_freq"] = 10000;
  v4["rope_scaling"] = {{"factor", 8.0}, {"rope_type", "linear"}};
  const Logits a = reference_logits(write_config(v5), ids);
  EXPECT_EQ(max_diff_rows(a, reference_logits(write_config(v4), ids), 0, T), 0.0);
  // ... and the linear factor matters.
  v4["rope_scaling"] = nullptr;
  EXPECT_GT(max_diff_rows(a, reference_logits(write_config(v4), ids), 0, T), 1e-4 * max_abs(a));
}

TEST(ReferenceForwardTest, MissingHeadWithoutTyingIsAnError) {
  json c = family_config("llama");
  const TinyModel m = tiny_from_config(c);
  const fs::path dir = write_tiny(m, DType::F32, 1, "lm_head.weight");
  EXPECT_THROW(ReferenceForward{dir}, Error);
}

// ---------------------------------------------------------------------------------------------
// Mixtures of experts (Mixtral, Qwen2-MoE, Qwen3-MoE)

// Router logits (1, 3, 2, 0.5) of one token: softmax = (0.08536889, 0.63079554, 0.23205671,
// 0.05177885) (sum e^x = 31.84159600). Top-2: experts 1 and 2, largest first. Renormalised:
// e^3 / (e^3 + e^2) = 1 / (1 + e^-1) = 0.73105858 and 1 / (1 + e) = 0.26894142; not renormalised
// (Qwen's norm_topk_prob false): the softmax values themselves. Top-1 renormalised: weight 1.
TEST(MoeRouting, HandWorkedTopTwo) {
  const std::vector<double> logits = {1.0, 3.0, 2.0, 0.5};
  const RefRouting renorm = route_token(logits, 2, true);
  EXPECT_EQ(renorm.experts, (std::vector<int64_t>{1, 2}));
  ASSERT_EQ(renorm.weights.size(), 2u);
  EXPECT_NEAR(renorm.weights[0], 0.7310585786300049, 1e-15);
  EXPECT_NEAR(renorm.weights[1], 0.2689414213699951, 1e-15);
  const RefRouting plain = route_token(logits, 2, false);
  EXPECT_EQ(plain.experts, (std::vector<int64_t>{1, 2}));
  EXPECT_NEAR(plain.weights[0], 0.6307955432474669, 1e-15);
  EXPECT_NEAR(plain.weights[1], 0.23205671194331448, 1e-15);
  const RefRouting one = route_token(logits, 1, true);
  EXPECT_EQ(one.experts, (std::vector<int64_t>{1}));
  EXPECT_EQ(one.weights, (std::vector<double>{1.0}));
  EXPECT_NEAR(route_token(logits, 1, false).weights[0], 0.6307955432474669, 1e-15);
  // Shifting every logit changes nothing (softmax); all experts: the softmax itself.
  const RefRouting shifted = route_token({101.0, 103.0, 102.0, 100.5}, 2, false);
  EXPECT_EQ(shifted.experts, plain.experts);
  EXPECT_NEAR(shifted.weights[0], plain.weights[0], 1e-15);
  const RefRouting all = route_token(logits, 4, true);
  EXPECT_EQ(all.experts, (std::vector<int64_t>{1, 2, 0, 3}));
  EXPECT_NEAR(all.weights[3], 0.05177885129942981, 1e-15);
  EXPECT_THROW(route_token(logits, 5, true), Error);
  EXPECT_THROW(route_token(logits, 0, true), Error);
}

// Equal probabilities go to the lower index (the convention; the tiny models never tie):
// logits (2, 1, 2, 2), top-2 = experts 0 and 2, each e^2 / (3 e^2 + e) = 0.29692274 unnormalised.
TEST(MoeRouting, TiesGoToTheLowerIndex) {
  const RefRouting r = route_token({2.0, 1.0, 2.0, 2.0}, 2, false);
  EXPECT_EQ(r.experts, (std::vector<int64_t>{0, 2}));
  EXPECT_NEAR(r.weights[0], 0.2969227424756547, 1e-15);
  EXPECT_NEAR(r.weights[1], 0.2969227424756547, 1e-15);
  EXPECT_EQ(route_token({2.0, 1.0, 2.0, 2.0}, 2, true).weights, (std::vector<double>{0.5, 0.5}));
}

TEST(MoeConfigs, KindsAndResolvedSpecs) {
  for (const std::string& kind : moe_kinds()) {
    EXPECT_NE(std::find(family_kinds().begin(), family_kinds().end(), kind), family_kinds().end())
        << kind;
    EXPECT_NO_THROW(family_config(kind)) << kind;
  }
  EXPECT_EQ(moe_kinds(), (std::vector<std::string>{"mixtral", "qwen2_moe", "qwen3_moe"}));
  for (const std::string& kind : dense_kinds()) {
    const TextSpec s = text_spec(family_config(kind));
    EXPECT_EQ(s.experts, 0) << kind;
    EXPECT_EQ(s.sparse_layers, std::vector<bool>(static_cast<size_t>(s.layers), false)) << kind;
  }
  using B = std::vector<bool>;
  using V = std::vector<std::string>;
  const TextSpec m = text_spec(family_config("mixtral"));
  EXPECT_EQ(m.family, "mixtral");
  EXPECT_EQ(m.experts, 8);
  EXPECT_EQ(m.experts_per_tok, 2);
  EXPECT_EQ(m.moe_intermediate, 96);
  EXPECT_EQ(m.shared_intermediate, 0);
  EXPECT_TRUE(m.norm_topk_prob);
  EXPECT_EQ(m.sparse_layers, (B{true, true}));
  EXPECT_EQ(m.head_dim, 16);
  EXPECT_FALSE(m.qkv_bias || m.o_bias);
  EXPECT_EQ(m.layer_types, (V{kF, kF}));  // sliding_window null
  EXPECT_EQ(m.rope.at(kF).theta, 1e6);
  const TextSpec q2 = text_spec(family_config("qwen2_moe"));
  EXPECT_EQ(q2.experts, 8);
  EXPECT_EQ(q2.experts_per_tok, 2);
  EXPECT_EQ(q2.moe_intermediate, 64);
  EXPECT_EQ(q2.shared_intermediate, 128);
  EXPECT_EQ(q2.intermediate, 160);
  EXPECT_FALSE(q2.norm_topk_prob);
  EXPECT_EQ(q2.sparse_layers, (B{true, false, true}));  // mlp_only_layers [1]
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_FALSE(q2.o_bias);
  EXPECT_EQ(q2.head_dim, 16);
  EXPECT_EQ(q2.layer_types, (V{kF, kF, kF}));  // use_sliding_window false
  const TextSpec q3 = text_spec(family_config("qwen3_moe"));
  EXPECT_EQ(q3.experts, 16);
  EXPECT_EQ(q3.experts_per_tok, 4);
  EXPECT_EQ(q3.moe_intermediate, 64);
  EXPECT_EQ(q3.shared_intermediate, 0);
  EXPECT_TRUE(q3.norm_topk_prob);
  EXPECT_EQ(q3.sparse_layers, (B{true, true}));
  EXPECT_EQ(q3.head_dim, 32);  // explicit, not hidden / heads = 16
  EXPECT_FALSE(q3.qkv_bias);
  EXPECT_EQ(q3.layer_types, (V{kF, kF}));
}

// Which layers are sparse: (i + 1) % decoder_sparse_step == 0 and i not in mlp_only_layers;
// class defaults fill absent keys; the sliding-window rules of each class.
TEST(MoeConfigs, SparseLayersDefaultsAndWindows) {
  using B = std::vector<bool>;
  using V = std::vector<std::string>;
  json q = family_config("qwen3_moe");
  q["num_hidden_layers"] = 4;
  q["decoder_sparse_step"] = 2;
  EXPECT_EQ(text_spec(q).sparse_layers, (B{false, true, false, true}));
  q["decoder_sparse_step"] = 1;
  q["mlp_only_layers"] = json::array({0, 3});
  EXPECT_EQ(text_spec(q).sparse_layers, (B{false, true, true, false}));
  q["mlp_only_layers"] = nullptr;  // None: []
  EXPECT_EQ(text_spec(q).sparse_layers, (B{true, true, true, true}));
  q.erase("norm_topk_prob");  // Qwen3MoeConfig default False
  EXPECT_FALSE(text_spec(q).norm_topk_prob);
  q["num_experts"] = 0;  // no experts: every layer dense
  EXPECT_EQ(text_spec(q).sparse_layers, (B{false, false, false, false}));
  json q2 = family_config("qwen2_moe");
  q2.erase("mlp_only_layers");
  q2.erase("norm_topk_prob");
  EXPECT_EQ(text_spec(q2).sparse_layers, (B{true, true, true}));
  EXPECT_FALSE(text_spec(q2).norm_topk_prob);
  // Mixtral: rope_theta defaults to 1e6, norm_topk_prob does not exist (always renormalised).
  json m = family_config("mixtral");
  m.erase("rope_theta");
  m["norm_topk_prob"] = false;
  EXPECT_EQ(text_spec(m).rope.at(kF).theta, 1e6);
  EXPECT_TRUE(text_spec(m).norm_topk_prob);
  // Windows: Mixtral and Qwen3-MoE slide on every layer when they slide at all; Qwen2-MoE on
  // layers with (i + 1) % 2 != 0 below max_window_layers.
  m["sliding_window"] = 8;
  EXPECT_EQ(text_spec(m).layer_types, (V{kS, kS}));
  json q3 = family_config("qwen3_moe");
  q3["sliding_window"] = 8;
  EXPECT_EQ(text_spec(q3).layer_types, (V{kF, kF}));  // use_sliding_window false
  q3["use_sliding_window"] = true;
  EXPECT_EQ(text_spec(q3).layer_types, (V{kS, kS}));
  json w = family_config("qwen2_moe");
  w["use_sliding_window"] = true;
  w["max_window_layers"] = 2;
  EXPECT_EQ(text_spec(w).layer_types, (V{kS, kF, kF}));
  EXPECT_EQ(*text_spec(w).sliding_window, 8);
  json bad = family_config("mixtral");
  bad["num_experts_per_tok"] = 9;
  EXPECT_THROW(text_spec(bad), Error);
}

TEST(MoeCheckpoint, RealTensorNames) {
  auto names = [](const std::string& kind) {
    std::set<std::string> s;
    for (const auto& t : tiny_from_config(family_config(kind)).tensors) s.insert(t.name);
    return s;
  };
  const auto m = names("mixtral");
  for (const char* n : {"model.layers.1.block_sparse_moe.gate.weight",
                        "model.layers.1.block_sparse_moe.experts.7.w1.weight",
                        "model.layers.0.block_sparse_moe.experts.0.w2.weight",
                        "model.layers.0.block_sparse_moe.experts.3.w3.weight", "lm_head.weight"})
    EXPECT_TRUE(m.count(n)) << n;
  EXPECT_FALSE(m.count("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_FALSE(m.count("model.layers.0.block_sparse_moe.experts.8.w1.weight"));
  const auto q2 = names("qwen2_moe");
  for (const char* n :
       {"model.layers.0.mlp.gate.weight", "model.layers.0.mlp.experts.7.gate_proj.weight",
        "model.layers.2.mlp.experts.0.up_proj.weight",
        "model.layers.2.mlp.experts.5.down_proj.weight",
        "model.layers.0.mlp.shared_expert.gate_proj.weight",
        "model.layers.2.mlp.shared_expert.down_proj.weight",
        "model.layers.0.mlp.shared_expert_gate.weight",
        "model.layers.1.mlp.gate_proj.weight",  // the dense layer
        "model.layers.1.mlp.down_proj.weight", "model.layers.0.self_attn.q_proj.bias"})
    EXPECT_TRUE(q2.count(n)) << n;
  EXPECT_FALSE(q2.count("model.layers.1.mlp.gate.weight"));
  EXPECT_FALSE(q2.count("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_FALSE(q2.count("model.layers.0.self_attn.o_proj.bias"));
  const auto q3 = names("qwen3_moe");
  for (const char* n :
       {"model.layers.1.mlp.gate.weight", "model.layers.1.mlp.experts.15.down_proj.weight",
        "model.layers.0.self_attn.q_norm.weight"})
    EXPECT_TRUE(q3.count(n)) << n;
  EXPECT_FALSE(q3.count("model.layers.0.mlp.shared_expert_gate.weight"));
  EXPECT_FALSE(q3.count("model.layers.0.mlp.experts.16.gate_proj.weight"));
  EXPECT_FALSE(q3.count("model.layers.0.self_attn.q_proj.bias"));
  // Shapes: router [E, hidden], shared gate [1, hidden], experts at their own width.
  const std::map<std::string, std::vector<int64_t>> shapes = {
      {"model.layers.0.mlp.gate.weight", {8, 64}},
      {"model.layers.0.mlp.shared_expert_gate.weight", {1, 64}},
      {"model.layers.0.mlp.experts.3.down_proj.weight", {64, 64}},
      {"model.layers.0.mlp.shared_expert.up_proj.weight", {128, 64}},
      {"model.layers.1.mlp.up_proj.weight", {160, 64}}};
  size_t found = 0;
  for (const auto& t : tiny_from_config(family_config("qwen2_moe")).tensors) {
    const auto it = shapes.find(t.name);
    if (it == shapes.end()) continue;
    ++found;
    EXPECT_EQ(t.shape, it->second) << t.name;
  }
  EXPECT_EQ(found, shapes.size());
}

// The smallest gap, over the tokens of a sparse layer, between the k-th and (k+1)-th largest
// router logits: how far every routing decision is from a tie.
double min_routing_gap(const std::vector<double>& logits, int64_t experts, int64_t k) {
  double gap = INFINITY;
  for (size_t t = 0; t * experts < logits.size(); ++t) {
    std::vector<double> row(logits.begin() + t * experts, logits.begin() + (t + 1) * experts);
    std::sort(row.begin(), row.end(), std::greater<>());
    gap = std::min(gap, row[k - 1] - row[k]);
  }
  return gap;
}

// Finite logits; routing counts that add up (T x top_k per sparse layer, none for dense layers);
// routing that varies with the token (most experts used); decisions away from ties. The
// checkpoints and tokens are those of MoeKindsMatchEngine (seed 5, tokens of seed 9).
TEST(MoeReference, FiniteLogitsAndRoutingCounts) {
  const std::vector<int32_t> ids = random_ids(T, 9);
  for (const std::string& kind : moe_kinds()) {
    for (const DType dtype : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(kind + (dtype == DType::F32 ? " f32" : " bf16"));
      const ReferenceForward ref(write_config(family_config(kind), dtype, 5));
      const TextSpec& s = ref.spec();
      const Logits l = ref.logits(ids);
      ASSERT_EQ(static_cast<int64_t>(l.size()), T * kFamilyVocab);
      for (double e : l) ASSERT_TRUE(std::isfinite(e));
      EXPECT_GT(max_abs(l), 0.1);
      const auto counts = ref.expert_token_counts(ids);
      const auto router = ref.router_logits(ids);
      ASSERT_EQ(static_cast<int64_t>(counts.size()), s.layers);
      for (int64_t i = 0; i < s.layers; ++i) {
        if (!s.sparse_layers[i]) {
          EXPECT_TRUE(counts[i].empty()) << i;
          EXPECT_TRUE(router[i].empty()) << i;
          continue;
        }
        ASSERT_EQ(static_cast<int64_t>(counts[i].size()), s.experts);
        ASSERT_EQ(static_cast<int64_t>(router[i].size()), T * s.experts);
        int64_t sum = 0, used = 0;
        std::string line;
        for (const int64_t c : counts[i]) {
          sum += c;
          used += c > 0;
          line += ' ';
          line += std::to_string(c);
        }
        EXPECT_EQ(sum, T * s.experts_per_tok) << i;
        EXPECT_GE(used, s.experts * 3 / 4) << i;
        const double gap = min_routing_gap(router[i], s.experts, s.experts_per_tok);
        std::printf("[ %s %s ] layer %lld tokens per expert:%s; min top-k gap %.3g\n", kind.c_str(),
                    dtype == DType::F32 ? "f32" : "bf16", static_cast<long long>(i), line.c_str(),
                    gap);
        EXPECT_GT(gap, 1e-4) << i;
      }
    }
  }
}

// Renormalising the top-k weights matters (Qwen: norm_topk_prob), Mixtral has no such switch, and
// top_k matters.
TEST(MoeReference, RenormalisationSwitch) {
  const std::vector<int32_t> ids = random_ids(T, 32);
  for (const char* kind : {"qwen2_moe", "qwen3_moe"}) {
    SCOPED_TRACE(kind);
    json c = family_config(kind);
    const Logits a = reference_logits(write_config(c), ids);
    c["norm_topk_prob"] = !c.at("norm_topk_prob").get<bool>();
    EXPECT_GT(max_diff_rows(a, reference_logits(write_config(c), ids), 0, T), 1e-3 * max_abs(a));
  }
  json m = family_config("mixtral");
  const Logits a = reference_logits(write_config(m), ids);
  m["norm_topk_prob"] = false;
  EXPECT_EQ(max_diff_rows(a, reference_logits(write_config(m), ids), 0, T), 0.0);
  // With every expert routed (top_k = E) and renormalisation, the routing weights are the
  // softmax; with top_k = E - 1 the output changes.
  json q = family_config("qwen3_moe");
  const Logits base = reference_logits(write_config(q), ids);
  q["num_experts_per_tok"] = 16;
  const Logits every = reference_logits(write_config(q), ids);
  EXPECT_GT(max_diff_rows(base, every, 0, T), 1e-3 * max_abs(base));
  for (double e : every) ASSERT_TRUE(std::isfinite(e));
}

// starve_expert(): the starved expert of the starved layer receives no token, over many inputs
// and in both stored dtypes, while every other expert of that layer receives some.
TEST(MoeStarvedExpert, ReceivesNoToken) {
  struct Case {
    const char* kind;
    int64_t layer, expert;
  };
  for (const Case& c : {Case{"mixtral", 1, 5}, Case{"qwen2_moe", 2, 0}, Case{"qwen3_moe", 0, 15}}) {
    for (const DType dtype : {DType::BF16, DType::F32}) {
      SCOPED_TRACE(std::string(c.kind) + (dtype == DType::F32 ? " f32" : " bf16"));
      const json config = family_config(c.kind);
      TinyModel m = tiny_from_config(config);
      starve_expert(m, config, c.layer, c.expert);
      const ReferenceForward ref(write_tiny(m, dtype, 5));
      const TextSpec& s = ref.spec();
      // Random sequences, every token of the vocabulary, and one token repeated.
      std::vector<std::vector<int32_t>> inputs;
      for (uint32_t seed = 40; seed < 46; ++seed) inputs.push_back(random_ids(T, seed));
      std::vector<int32_t> vocab(static_cast<size_t>(kFamilyVocab));
      for (int32_t v = 0; v < kFamilyVocab; ++v) vocab[v] = v;
      inputs.push_back(vocab);
      inputs.push_back(std::vector<int32_t>(8, 17));
      std::vector<int64_t> total(static_cast<size_t>(s.experts), 0);
      double margin = INFINITY;  // min over tokens: k-th largest logit - the starved logit
      for (const auto& ids : inputs) {
        const auto counts = ref.expert_token_counts(ids);
        ASSERT_EQ(static_cast<int64_t>(counts[c.layer].size()), s.experts);
        for (int64_t e = 0; e < s.experts; ++e) total[e] += counts[c.layer][e];
        const std::vector<double> r = ref.router_logits(ids)[c.layer];
        for (size_t t = 0; t * s.experts < r.size(); ++t) {
          std::vector<double> row(r.begin() + t * s.experts, r.begin() + (t + 1) * s.experts);
          EXPECT_EQ(row[c.expert], 0.0);
          std::sort(row.begin(), row.end(), std::greater<>());
          margin = std::min(margin, row[s.experts_per_tok - 1]);
        }
      }
      std::string line;
      for (const int64_t n : total) {
        line += ' ';
        line += std::to_string(n);
      }
      std::printf("[ %s ] starved layer %lld expert %lld, tokens per expert:%s; min margin %.3g\n",
                  c.kind, static_cast<long long>(c.layer), static_cast<long long>(c.expert),
                  line.c_str(), margin);
      EXPECT_EQ(total[c.expert], 0);
      for (int64_t e = 0; e < s.experts; ++e)
        if (e != c.expert) {
          EXPECT_GT(total[e], 0) << "expert " << e;
        }
      EXPECT_GT(margin, 1e-3);
    }
  }
}

TEST(MoeStarvedExpert, RejectsWhatCannotBeStarved) {
  const json q2 = family_config("qwen2_moe");
  TinyModel m = tiny_from_config(q2);
  EXPECT_THROW(starve_expert(m, q2, 1, 0), std::invalid_argument);  // the dense layer
  EXPECT_THROW(starve_expert(m, q2, 3, 0), std::invalid_argument);  // no such layer
  EXPECT_THROW(starve_expert(m, q2, 0, 8), std::invalid_argument);  // no such expert
  const json llama = family_config("llama");
  TinyModel l = tiny_from_config(llama);
  EXPECT_THROW(starve_expert(l, llama, 0, 0), std::invalid_argument);  // dense family
  json few = family_config("mixtral");
  few["num_local_experts"] = 4;  // 3 others cannot make 2 pairs
  TinyModel f = tiny_from_config(few);
  EXPECT_THROW(starve_expert(f, few, 0, 0), std::invalid_argument);
  // Only the router of the starved layer changes.
  const json mx = family_config("mixtral");
  const TinyModel plain = tiny_from_config(mx);
  TinyModel starved = plain;
  starve_expert(starved, mx, 1, 5);
  ASSERT_EQ(plain.tensors.size(), starved.tensors.size());
  for (size_t i = 0; i < plain.tensors.size(); ++i)
    EXPECT_EQ(starved.tensors[i].row_edits.empty(),
              starved.tensors[i].name != "model.layers.1.block_sparse_moe.gate.weight")
        << starved.tensors[i].name;
}

// The engine against the reference for the mixtures of experts, as AllKindsMatchEngine: float32
// and bfloat16 checkpoints, 40 tokens, within 1e-4 x max|logit|. A mismatch on few rows with a
// small "min top-k gap" is a routing decision near a tie, flipped by rounding.
class MoeKindsMatchEngine : public ::testing::TestWithParam<std::string> {};

TEST_P(MoeKindsMatchEngine, Within1e4OfMaxLogit) {
  const json config = family_config(GetParam());
  for (const DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype == DType::F32 ? "f32" : "bf16");
    const auto [err, scale] =
        engine_vs_reference(config, dtype, MultimodalLayout::kCurrent, GetParam().c_str());
    EXPECT_LE(err, 1e-4 * scale);
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, MoeKindsMatchEngine, ::testing::ValuesIn(moe_kinds()),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace gptq
