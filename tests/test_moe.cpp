// Mixture-of-Experts quantization (Mixtral, Qwen2-MoE, Qwen3-MoE) and GPTQModel's `dynamic`
// per-module overrides, end to end:
//   * a starved expert (no token routed to it) in the float forward, against the reference;
//   * quantize -> load -> eval: GPTQ beats RTN on KL to the float model; every expert reports its
//     routed tokens, a starved one falls back to RTN; kernels equal the dequantized path; the
//     routers stay float; --moe-calibration all changes the experts' Hessians and is recorded; the
//     number of experts held at once does not change a byte;
//   * `dynamic`: "-:" leaves modules float, "+:" changes bits / group size per module, and the
//     checkpoint loads back with each layer's own settings.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "infer/load_model.h"
#include "io/safetensors.h"
#include "nn/eval.h"
#include "pipeline/quantize.h"
#include "support/family_models.h"
#include "support/family_quantize.h"
#include "support/fixtures.h"
#include "support/quantize_helpers.h"
#include "support/reference_forward.h"
#include "util/error.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace ::gptq::testing;

QuantizeOptions moe_options(QuantMethod method, const fs::path& calib) {
  QuantizeOptions o;
  o.quant.bits = 4;
  o.quant.group_size = 32;
  o.quant.damp_percent = 0.01;
  o.method = method;
  o.calib.file = calib;
  o.calib.nsamples = 32;
  o.calib.seqlen = kFamilyTestTokens;
  return o;
}

struct Starved {
  std::string kind;
  int64_t layer, expert;
};
const Starved kStarved[] = {{"mixtral", 1, 5}, {"qwen2_moe", 2, 0}, {"qwen3_moe", 0, 15}};

fs::path starved_model(const Starved& c, DType dtype) {
  const json config = family_config(c.kind);
  TinyModel m = tiny_from_config(config);
  starve_expert(m, config, c.layer, c.expert);
  return write_tiny(m, dtype, 5);
}

std::string expert_layer(const std::string& kind, int64_t layer, int64_t e, const char* which) {
  const std::string b = "model.layers." + std::to_string(layer) + ".";
  if (kind == "mixtral") {
    const std::string w = std::string(which) == "gate" ? "w1" : std::string(which) == "up" ? "w3" : "w2";
    return b + "block_sparse_moe.experts." + std::to_string(e) + "." + w;
  }
  return b + "mlp.experts." + std::to_string(e) + "." + which + "_proj";
}

class StarvedExpert : public ::testing::TestWithParam<Starved> {};

TEST_P(StarvedExpert, ForwardMatchesReference) {
  const fs::path dir = starved_model(GetParam(), DType::F32);
  const std::vector<int32_t> ids = family_ids(kFamilyTestTokens, 9);
  const ReferenceForward ref(dir);
  const auto counts = ref.expert_token_counts(ids);
  ASSERT_EQ(counts.at(static_cast<size_t>(GetParam().layer)).at(static_cast<size_t>(GetParam().expert)), 0);
  const auto loaded = load_model(dir);
  const std::vector<float> got = loaded->model->logits(ids);
  const std::vector<double> want = ref.logits(ids);
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  std::printf("[ %s starved ] engine vs reference: %.3g of max|logit| %.3f\n", GetParam().kind.c_str(), err, scale);
  EXPECT_LE(err, 1e-4 * scale);
}

TEST_P(StarvedExpert, QuantizeRoundTrip) {
  const Starved& c = GetParam();
  const fs::path model = starved_model(c, DType::BF16);
  const fs::path calib = family_calibration(32), dir = scratch_dir("moe-" + c.kind);
  const auto g = quantize_model(model, dir / "gptq", moe_options(QuantMethod::kGptq, calib), kSilent);
  quantize_model(model, dir / "rtn", moe_options(QuantMethod::kRtn, calib), kSilent);
  const auto base = load_model(model), q = load_model(dir / "gptq"), r = load_model(dir / "rtn");
  EXPECT_EQ(q->float_layers, 0);
  const std::vector<int32_t> ids = family_ids(8 * kFamilyTestTokens, 7);
  EvalOptions eo;
  eo.seqlen = kFamilyTestTokens;
  const ComparisonResult cg = compare_models(*base->model, *q->model, ids, eo);
  const ComparisonResult cr = compare_models(*base->model, *r->model, ids, eo);
  std::printf("[ %s ] KL to float: GPTQ %.5f, RTN %.5f (ratio %.2f)\n", c.kind.c_str(), cg.mean_kl, cr.mean_kl,
              cg.mean_kl / cr.mean_kl);
  EXPECT_LT(cg.mean_kl, cr.mean_kl);

  // Every expert layer reports its routed tokens; the starved expert has none and is rounded.
  const json& layers = g.report.at("layers");
  int64_t experts_seen = 0, routed = 0;
  for (const auto& l : layers) {
    if (!l.contains("tokens")) continue;
    ++experts_seen;
    const std::string name = l.at("name");
    if (name == expert_layer(c.kind, c.layer, c.expert, "gate")) {
      EXPECT_EQ(l.at("tokens"), 0);
      EXPECT_EQ(l.at("fallback"), "rtn");
    } else if (name.find(".down") != std::string::npos || name.ends_with(".w2")) {
      routed += l.at("tokens").get<int64_t>();
    }
  }
  EXPECT_GT(experts_seen, 0);
  // Each token goes to top_k experts in every sparse layer.
  const json config = family_config(c.kind);
  int64_t sparse = 0;
  for (int64_t i = 0; i < config.at("num_hidden_layers").get<int64_t>(); ++i)
    sparse += (c.kind != "qwen2_moe" || i != 1);
  EXPECT_EQ(routed, sparse * 32 * kFamilyTestTokens * config.at("num_experts_per_tok").get<int64_t>());

  // Routers (and the shared-expert gate) stay float; experts are packed under their HF names.
  const TensorStore out = TensorStore::open(dir / "gptq");
  const std::string router =
      c.kind == "mixtral" ? "model.layers.0.block_sparse_moe.gate.weight" : "model.layers.0.mlp.gate.weight";
  EXPECT_NE(out.find(router), nullptr);
  EXPECT_NE(out.find(expert_layer(c.kind, 0, 1, "down") + ".qweight"), nullptr);
  if (c.kind == "qwen2_moe") {
    EXPECT_NE(out.find("model.layers.0.mlp.shared_expert_gate.weight"), nullptr);
    EXPECT_NE(out.find("model.layers.0.mlp.shared_expert.down_proj.qweight"), nullptr);
    EXPECT_NE(out.find("model.layers.1.mlp.down_proj.qweight"), nullptr);  // the dense layer
  }
  const json cfg = json::parse(read_file(dir / "gptq" / "config.json"));
  EXPECT_EQ(cfg.at("quantization_config").at("meta").at("moe").at("calibration"), "routed");

  // Kernels equal the dequantized float weights.
  EXPECT_LE(kernel_vs_dequantized(dir / "gptq"), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Moe, StarvedExpert, ::testing::ValuesIn(kStarved),
                         [](const auto& p) { return p.param.kind; });

std::string file_bytes(const fs::path& p) { return read_file(p); }

TEST(MoeCalibration, AllChangesHessiansAndChunkingChangesNothing) {
  const Starved c{"qwen2_moe", 2, 0};
  const fs::path model = starved_model(c, DType::BF16);
  const fs::path calib = family_calibration(32), dir = scratch_dir("moe-all");
  auto o = moe_options(QuantMethod::kGptq, calib);
  const auto routed = quantize_model(model, dir / "routed", o, kSilent);
  o.moe_experts_per_chunk = 1;
  quantize_model(model, dir / "chunk1", o, kSilent);
  o.moe_experts_per_chunk = 3;
  quantize_model(model, dir / "chunk3", o, kSilent);
  EXPECT_EQ(file_bytes(dir / "routed" / "model.safetensors"), file_bytes(dir / "chunk1" / "model.safetensors"));
  EXPECT_EQ(file_bytes(dir / "routed" / "model.safetensors"), file_bytes(dir / "chunk3" / "model.safetensors"));
  o.moe_calibration = MoeCalibration::kAll;
  const auto all = quantize_model(model, dir / "all", o, kSilent);
  EXPECT_NE(file_bytes(dir / "routed" / "model.safetensors"), file_bytes(dir / "all" / "model.safetensors"));
  // Experts' losses differ (other Hessians); attention layers of block 0 do not.
  int64_t expert_diff = 0, attn_same = 0;
  std::map<std::string, json> by_name;  // the report's order follows the chunks
  for (const auto& l : routed.report.at("layers")) by_name[l.at("name")] = l;
  const json& a = all.report.at("layers");
  ASSERT_EQ(a.size(), by_name.size());
  for (const auto& l : a) {
    const std::string name = l.at("name");
    const json& r = by_name.at(name);
    if (l.contains("tokens")) expert_diff += l.at("loss") != r.at("loss");
    if (name.starts_with("model.layers.0.self_attn")) attn_same += l.at("loss") == r.at("loss");
    if (name == expert_layer(c.kind, c.layer, c.expert, "gate")) {
      EXPECT_FALSE(l.contains("fallback"));
    }
  }
  EXPECT_GT(expert_diff, 0);
  EXPECT_EQ(attn_same, 4);
  const json cfg = json::parse(read_file(dir / "all" / "config.json"));
  EXPECT_EQ(cfg.at("quantization_config").at("meta").at("moe").at("calibration"), "all");
}

// ---------------------------------------------------------------------------------------------
// dynamic

TEST(Dynamic, PerModuleBitsGroupSizeAndExclusion) {
  const fs::path model = write_tiny(tiny_from_config(family_config("llama3")), DType::BF16, 11);
  const fs::path calib = family_calibration(16), dir = scratch_dir("dynamic");
  auto o = moe_options(QuantMethod::kGptq, calib);
  o.calib.nsamples = 16;
  o.dynamic = json::parse(R"({"-:.*self_attn\\.o_proj": {}, "+:.*\\.down_proj": {"bits": 8, "group_size": 64},
                              "+:model\\.layers\\.1\\.mlp\\.(gate|up)_proj": {"bits": 2, "sym": false}})");
  const auto summary = quantize_model(model, dir / "q", o, kSilent);
  const TensorStore out = TensorStore::open(dir / "q");
  // o_proj float; down_proj 8 bits with groups of 64; layer 1's gate 2 bits; the rest 4 bits / 32.
  EXPECT_NE(out.find("model.layers.0.self_attn.o_proj.weight"), nullptr);
  EXPECT_EQ(out.find("model.layers.0.self_attn.o_proj.qweight"), nullptr);
  const json config = family_config("llama3");
  const int64_t hidden = config.at("hidden_size"), inter = config.at("intermediate_size");
  EXPECT_EQ(out.get("model.layers.0.mlp.down_proj.qweight").shape, (std::vector<int64_t>{inter * 8 / 32, hidden}));
  EXPECT_EQ(out.get("model.layers.0.mlp.down_proj.scales").shape, (std::vector<int64_t>{(inter + 63) / 64, hidden}));
  EXPECT_EQ(out.get("model.layers.1.mlp.gate_proj.qweight").shape, (std::vector<int64_t>{hidden * 2 / 32, inter}));
  EXPECT_EQ(out.get("model.layers.0.mlp.gate_proj.qweight").shape, (std::vector<int64_t>{hidden * 4 / 32, inter}));
  const json cfg = json::parse(read_file(dir / "q" / "config.json"));
  EXPECT_EQ(cfg.at("quantization_config").at("dynamic"), o.dynamic);
  // Loads back with each layer's settings; kernels equal the dequantized path; quality sane.
  const auto q = load_model(dir / "q");
  EXPECT_EQ(q->float_layers, 2);  // the two o_proj
  EXPECT_LE(kernel_vs_dequantized(dir / "q"), 1e-4);
  const auto base = load_model(model);
  EvalOptions eo;
  eo.seqlen = kFamilyTestTokens;
  const ComparisonResult c = compare_models(*base->model, *q->model, family_ids(4 * kFamilyTestTokens, 8), eo);
  std::printf("[ dynamic ] KL to float %.5f\n", c.mean_kl);
  EXPECT_TRUE(std::isfinite(c.mean_kl));
  EXPECT_LT(c.mean_kl, 0.5);
}

TEST(Dynamic, BadRulesAreRefused) {
  const fs::path model = write_tiny(tiny_from_config(family_config("llama3")), DType::BF16, 11);
  const fs::path calib = family_calibration(4), dir = scratch_dir("dynamic-bad");
  auto o = moe_options(QuantMethod::kRtn, calib);
  for (const char* bad : {R"({"+:.*down_proj": {"bits": 5}})", R"({"+:(": {}})", R"({"+:.*": 3})",
                          R"({"+:.*": {"group_size": "x"}})", R"([1, 2])"}) {
    o.dynamic = json::parse(bad);
    try {
      quantize_model(model, dir / "q", o, kSilent);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("dynamic"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir / "q"));
  }
}

// ---------------------------------------------------------------------------------------------
// --lm-head

TEST(LmHead, QuantizedHeadRoundTripAndResume) {
  const fs::path model = write_tiny(tiny_from_config(family_config("llama3")), DType::BF16, 11);
  const fs::path calib = family_calibration(16), dir = scratch_dir("lm-head");
  auto o = moe_options(QuantMethod::kGptq, calib);
  o.calib.nsamples = 16;
  o.lm_head = true;
  const auto g = quantize_model(model, dir / "gptq", o, kSilent);
  const TensorStore out = TensorStore::open(dir / "gptq");
  EXPECT_NE(out.find("lm_head.qweight"), nullptr);
  EXPECT_EQ(out.find("lm_head.weight"), nullptr);
  EXPECT_EQ(g.report.at("layers").back().at("name"), "lm_head");
  const json cfg = json::parse(read_file(dir / "gptq" / "config.json"));
  EXPECT_EQ(cfg.at("quantization_config").at("lm_head"), true);
  const auto q = load_model(dir / "gptq");
  EXPECT_TRUE(q->model->head_replaced());
  EXPECT_LE(kernel_vs_dequantized(dir / "gptq"), 1e-4);

  // GPTQ of the head beats rounding it.
  o.method = QuantMethod::kRtn;
  quantize_model(model, dir / "rtn", o, kSilent);
  const auto base = load_model(model), r = load_model(dir / "rtn");
  EvalOptions eo;
  eo.seqlen = kFamilyTestTokens;
  const std::vector<int32_t> ids = family_ids(8 * kFamilyTestTokens, 7);
  const double kg = compare_models(*base->model, *q->model, ids, eo).mean_kl;
  const double kr = compare_models(*base->model, *r->model, ids, eo).mean_kl;
  std::printf("[ lm_head ] KL to float: GPTQ %.5f, RTN %.5f\n", kg, kr);
  EXPECT_LT(kg, kr);

  // Stopped after the last block (before the head): --resume gives the same bytes.
  o.method = QuantMethod::kGptq;
  const int64_t blocks = family_config("llama3").at("num_hidden_layers").get<int64_t>();
  Callbacks stop;
  stop.progress = [&](const Progress& p) { return p.done < blocks; };
  EXPECT_THROW(quantize_model(model, dir / "resumed", o, stop), Error);
  o.resume = true;
  quantize_model(model, dir / "resumed", o, kSilent);
  EXPECT_EQ(read_file(dir / "gptq" / "model.safetensors"), read_file(dir / "resumed" / "model.safetensors"));
}

TEST(LmHead, TiedHeadIsRefused) {
  json config = family_config("llama3");
  config["tie_word_embeddings"] = true;
  const fs::path model = write_tiny(tiny_from_config(config), DType::BF16, 11);
  auto o = moe_options(QuantMethod::kRtn, family_calibration(4));
  o.lm_head = true;
  try {
    quantize_model(model, scratch_dir("lm-tied") / "q", o, kSilent);
    ADD_FAILURE() << "a tied head was quantized";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ties its output head"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), ExitCode::kUsage);
  }
}

}  // namespace
}  // namespace gptq
