// Numerical faults in the quantize pipeline, on small random Llama checkpoints written here:
//   * dead columns (a layer input channel that is always zero; a layer whose inputs are all zero)
//     are handled by the solver (H[d, d] = 1, W[:, d] = 0) and counted in the report;
//   * a rank-deficient Hessian with a tiny damping fails Cholesky with a clear numerical error
//     (exit code 5), or, with --damp-auto-increment, is retried with more damping, recorded in the
//     report (damp, damp_retries) and in quantization_config.meta;
//   * NaN/Inf in the checkpoint (a norm, an embedding, a bias) is damaged input (exit code 3)
//     naming the tensor, caught before any output; activations that overflow to Inf during the
//     run are a numerical error (exit code 5) naming the layer;
//   * degenerate weights (all zero, constant rows) quantize to finite scales.
// Whatever succeeds is loaded back and must be finite everywhere: no silent NaN in the output.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <random>

#include "infer/load_model.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "pipeline/quantize.h"
#include "support/fixtures.h"
#include "support/quantize_helpers.h"
#include "util/error.h"
#include "util/fp16.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using ::gptq::testing::kSilent;
using ::gptq::testing::scratch_dir;

constexpr int64_t kHidden = 64, kInter = 128, kVocab = 64, kLayers = 2;

// Value of element i of tensor `name` (default: N(0, 0.05), norms 1 + N(0, 0.05)).
using Filler = std::function<bool(const std::string& name, size_t i, float* value)>;

// A random two-block Llama (hidden 64, 2 heads of 32, intermediate 128, vocab 64); `fill` may
// override values. F16 unless `dtype` says otherwise.
fs::path write_llama(const Filler& fill = {}, DType dtype = DType::F16, uint32_t seed = 1) {
  const fs::path dir = scratch_dir("model");
  const nlohmann::json cfg{{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"hidden_size", kHidden},
                           {"intermediate_size", kInter},
                           {"num_attention_heads", 2},
                           {"num_key_value_heads", 2},
                           {"num_hidden_layers", kLayers},
                           {"vocab_size", kVocab},
                           {"max_position_embeddings", 128},
                           {"rms_norm_eps", 1e-5},
                           {"tie_word_embeddings", false}};
  std::ofstream(dir / "config.json") << cfg.dump(2);
  std::vector<TensorSpec> specs{{"model.embed_tokens.weight", dtype, {kVocab, kHidden}},
                                {"model.norm.weight", dtype, {kHidden}},
                                {"lm_head.weight", dtype, {kVocab, kHidden}}};
  for (int64_t b = 0; b < kLayers; ++b) {
    const std::string p = "model.layers." + std::to_string(b) + ".";
    for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"})
      specs.push_back({p + n + ".weight", dtype, {kHidden, kHidden}});
    specs.push_back({p + "mlp.gate_proj.weight", dtype, {kInter, kHidden}});
    specs.push_back({p + "mlp.up_proj.weight", dtype, {kInter, kHidden}});
    specs.push_back({p + "mlp.down_proj.weight", dtype, {kHidden, kInter}});
    specs.push_back({p + "input_layernorm.weight", dtype, {kHidden}});
    specs.push_back({p + "post_attention_layernorm.weight", dtype, {kHidden}});
  }
  SafetensorsWriter w(dir, specs, {});
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  for (const auto& s : specs) {
    const size_t n = s.nbytes() / dtype_size(dtype);
    std::vector<float> v(n);
    const bool norm = s.shape.size() == 1;
    for (size_t i = 0; i < n; ++i) {
      v[i] = norm ? 1.0f + nd(rng) : (s.name.find("embed") != std::string::npos ? 20 : 1) * nd(rng);
      if (fill) fill(s.name, i, &v[i]);
    }
    if (dtype == DType::F32) {
      w.write(s.name, v.data(), n * 4);
    } else {
      std::vector<uint16_t> h(n);
      f32_to_f16(v.data(), h.data(), n);
      w.write(s.name, h.data(), n * 2);
    }
  }
  w.finish();
  return dir;
}

// Pre-tokenized calibration data: `n` sequences of `len` tokens (random, or all `token`).
fs::path calib_file(int n, int len, int token = -1) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> tok(0, kVocab - 1);
  nlohmann::json j = nlohmann::json::array();
  for (int s = 0; s < n; ++s) {
    std::vector<int> ids(static_cast<size_t>(len));
    for (int& t : ids) t = token >= 0 ? token : tok(rng);
    j.push_back(ids);
  }
  const fs::path p = scratch_dir("calib") / "calib.json";
  std::ofstream(p) << j.dump();
  return p;
}

QuantizeOptions options(const fs::path& calib, int n, int len) {
  QuantizeOptions o;
  o.quant.bits = 4;
  o.quant.group_size = 32;
  o.quant.damp_percent = 0.01;
  o.calib.file = calib;
  o.calib.nsamples = n;
  o.calib.seqlen = len;
  return o;
}

// Every tensor of the output is finite, and so are the logits of the loaded model.
void expect_finite_checkpoint(const fs::path& out) {
  const TensorStore store = TensorStore::open(out);
  for (const auto& name : store.names()) {
    const TensorInfo& t = store.get(name);
    if (t.dtype != DType::F16 && t.dtype != DType::F32 && t.dtype != DType::BF16) continue;
    for (float v : tensor_to_f32(t)) {
      ASSERT_TRUE(std::isfinite(v)) << name;
    }
  }
  for (const auto backend : {LinearBackend::kKernel, LinearBackend::kDequantized}) {
    const auto m = load_model(out, backend);
    EXPECT_EQ(m->quantized_layers, 7 * kLayers);
    for (float v : m->model->logits(std::vector<int32_t>{1, 2, 3, 4, 5})) {
      ASSERT_TRUE(std::isfinite(v));
    }
  }
}

const nlohmann::json& layer_report(const QuantizeSummary& s, const std::string& name) {
  for (const auto& l : s.report.at("layers"))
    if (l.at("name") == name) return l;
  throw std::runtime_error("no report for " + name);
}

// Runs quantize_model expecting a gptq::Error; returns it (code, message).
Error expect_error(const fs::path& model, const fs::path& out, const QuantizeOptions& o) {
  try {
    quantize_model(model, out, o, kSilent);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "quantize_model succeeded";
  return Error("none", ExitCode::kOk);
}

TEST(NumericalFaults, DeadInputChannelsAreHandledBySolver) {
  // Channels 0..9 of block 0's attention input are always zero (their norm weight is 0).
  const fs::path model = write_llama([](const std::string& name, size_t i, float* v) {
    if (name == "model.layers.0.input_layernorm.weight" && i < 10) *v = 0.0f;
    return true;
  });
  const fs::path out = scratch_dir("out") / "q";
  auto o = options(calib_file(8, 32), 8, 32);
  o.quant.desc_act = true;
  const QuantizeSummary s = quantize_model(model, out, o, kSilent);
  for (const char* n : {"q_proj", "k_proj", "v_proj"})
    EXPECT_EQ(layer_report(s, std::string("model.layers.0.self_attn.") + n).at("dead_columns"), 10);
  EXPECT_EQ(layer_report(s, "model.layers.0.mlp.gate_proj").at("dead_columns"), 0);
  EXPECT_EQ(layer_report(s, "model.layers.1.self_attn.q_proj").at("dead_columns"), 0);
  for (const auto& l : s.report.at("layers")) EXPECT_TRUE(std::isfinite(l.at("loss").get<double>())) << l;
  expect_finite_checkpoint(out);
}

TEST(NumericalFaults, LayerWithAllZeroInputs) {
  // Block 1's MLP input is all zero: every column of gate/up is dead (H = 0).
  const fs::path model = write_llama([](const std::string& name, size_t, float* v) {
    if (name == "model.layers.1.post_attention_layernorm.weight") *v = 0.0f;
    return true;
  });
  for (const bool act_order : {false, true}) {
    const fs::path out = scratch_dir("out") / "q";
    auto o = options(calib_file(4, 32), 4, 32);
    o.quant.desc_act = act_order;
    const QuantizeSummary s = quantize_model(model, out, o, kSilent);
    EXPECT_EQ(layer_report(s, "model.layers.1.mlp.gate_proj").at("dead_columns"), kHidden);
    EXPECT_EQ(layer_report(s, "model.layers.1.mlp.up_proj").at("dead_columns"), kHidden);
    // down_proj sees act(0) * 0 = 0 too.
    EXPECT_EQ(layer_report(s, "model.layers.1.mlp.down_proj").at("dead_columns"), kInter);
    for (const auto& l : s.report.at("layers")) EXPECT_TRUE(std::isfinite(l.at("loss").get<double>())) << l;
    expect_finite_checkpoint(out);
  }
}

// One token repeated: every row of every layer input is the same vector, so H has rank 1.
TEST(NumericalFaults, RankDeficientHessianFailsClearlyWithoutEscalation) {
  const fs::path model = write_llama();
  const fs::path out = scratch_dir("out") / "q";
  auto o = options(calib_file(2, 16, 7), 2, 16);
  o.quant.damp_percent = 1e-9;
  const Error e = expect_error(model, out, o);
  EXPECT_EQ(e.code(), ExitCode::kNumerical) << e.what();
  const std::string msg = e.what();
  EXPECT_NE(msg.find("model.layers.0."), std::string::npos) << msg;
  EXPECT_NE(msg.find("Cholesky"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--damp-auto-increment"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(out));
  // The run had started: its staging directory is resumable, not a corrupt output.
  EXPECT_TRUE(fs::exists(out.string() + ".partial/.gptq-run/state.json"));
}

TEST(NumericalFaults, RankDeficientHessianWithDampAutoIncrement) {
  const fs::path model = write_llama();
  const fs::path out = scratch_dir("out") / "q";
  auto o = options(calib_file(2, 16, 7), 2, 16);
  o.quant.damp_percent = 1e-9;
  o.quant.damp_auto_increment = 0.01;
  const QuantizeSummary s = quantize_model(model, out, o, kSilent);
  int raised = 0;
  for (const auto& l : s.report.at("layers")) {
    const int retries = l.at("damp_retries").get<int>();
    const double damp = l.at("damp").get<double>();
    EXPECT_NEAR(damp, 1e-9 + retries * 0.01, 1e-6) << l;
    raised += retries > 0;
  }
  EXPECT_GT(raised, 0) << "the rank-1 Hessians needed more damping";
  EXPECT_DOUBLE_EQ(s.report.at("options").at("damp_auto_increment").get<double>(), 0.01);
  const auto cfg = nlohmann::json::parse(::gptq::testing::read_file(out / "config.json"));
  EXPECT_DOUBLE_EQ(cfg.at("quantization_config").at("meta").at("damp_auto_increment").get<double>(), 0.01);
  expect_finite_checkpoint(out);
}

TEST(NumericalFaults, NanInNormIsDamagedInputNamedBeforeAnyOutput) {
  const fs::path model = write_llama([](const std::string& name, size_t i, float* v) {
    if (name == "model.layers.1.input_layernorm.weight" && i == 5) *v = NAN;
    return true;
  });
  const fs::path out = scratch_dir("out") / "q";
  const Error e = expect_error(model, out, options(calib_file(4, 32), 4, 32));
  EXPECT_EQ(e.code(), ExitCode::kBadInput) << e.what();
  EXPECT_NE(std::string(e.what()).find("model.layers.1.input_layernorm.weight"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out.string() + ".partial"));
}

TEST(NumericalFaults, InfInEmbeddingAndNanInWeight) {
  {
    const fs::path model = write_llama([](const std::string& name, size_t i, float* v) {
      if (name == "model.embed_tokens.weight" && i == 3 * kHidden + 2) *v = INFINITY;
      return true;
    });
    const Error e = expect_error(model, scratch_dir("out") / "q", options(calib_file(4, 32), 4, 32));
    EXPECT_EQ(e.code(), ExitCode::kBadInput) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.embed_tokens.weight"), std::string::npos) << e.what();
  }
  for (const auto method : {QuantMethod::kGptq, QuantMethod::kRtn}) {
    const fs::path model = write_llama([](const std::string& name, size_t i, float* v) {
      if (name == "model.layers.1.mlp.down_proj.weight" && i == 100) *v = NAN;
      return true;
    });
    auto o = options(calib_file(4, 32), 4, 32);
    o.method = method;
    const fs::path out = scratch_dir("out") / "q";
    const Error e = expect_error(model, out, o);
    EXPECT_EQ(e.code(), ExitCode::kBadInput) << e.what();
    EXPECT_NE(std::string(e.what()).find(method == QuantMethod::kGptq ? "model.layers.1.mlp.down_proj" : "non-finite"),
              std::string::npos)
        << e.what();
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST(NumericalFaults, OverflowingActivationsAreANumericalError) {
  // Finite F32 weights whose products overflow: block 0's MLP input is ~1e15, its gate * up
  // ~1e29, so down_proj's Hessian (sums of squares) is Inf.
  const fs::path model = write_llama(
      [](const std::string& name, size_t, float* v) {
        if (name == "model.layers.0.post_attention_layernorm.weight") *v = 1e15f;
        return true;
      },
      DType::F32);
  const fs::path out = scratch_dir("out") / "q";
  const Error e = expect_error(model, out, options(calib_file(4, 32), 4, 32));
  EXPECT_EQ(e.code(), ExitCode::kNumerical) << e.what();
  EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.down_proj"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  EXPECT_FALSE(fs::exists(out));
}

TEST(NumericalFaults, WeightsBeyondFp16RangeAreANumericalError) {
  // A scale above 65504 cannot be stored in the checkpoint's fp16 scales: refused, not Inf.
  const fs::path model = write_llama(
      [](const std::string& name, size_t, float* v) {
        if (name == "model.layers.1.self_attn.o_proj.weight") *v *= 1e8f;
        return true;
      },
      DType::F32);
  for (const auto method : {QuantMethod::kGptq, QuantMethod::kRtn}) {
    const fs::path out = scratch_dir("out") / "q";
    auto o = options(calib_file(4, 32), 4, 32);
    o.method = method;
    const Error e = expect_error(model, out, o);
    EXPECT_EQ(e.code(), ExitCode::kNumerical) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.layers.1.self_attn.o_proj"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fp16"), std::string::npos) << e.what();
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST(NumericalFaults, DegenerateWeightsGiveFiniteScales) {
  // q_proj all zero, k_proj rows constant, v_proj one huge outlier per row.
  const fs::path model = write_llama([](const std::string& name, size_t i, float* v) {
    if (name == "model.layers.0.self_attn.q_proj.weight") *v = 0.0f;
    if (name == "model.layers.0.self_attn.k_proj.weight") *v = 0.01f * static_cast<float>(i / kHidden);
    if (name == "model.layers.0.self_attn.v_proj.weight" && i % kHidden == 3) *v = 60000.0f;
    return true;
  });
  for (const bool sym : {true, false}) {
    for (const auto method : {QuantMethod::kGptq, QuantMethod::kRtn}) {
      const fs::path out = scratch_dir("out") / "q";
      auto o = options(calib_file(4, 32), 4, 32);
      o.quant.sym = sym;
      o.method = method;
      quantize_model(model, out, o, kSilent);
      expect_finite_checkpoint(out);
    }
  }
}

}  // namespace
}  // namespace gptq
