// load_quantized_model: checkpoints written by `gptq quantize` evaluate through the QuantLinear
// kernels exactly as their dequantized weights through the float path, and checkpoints in the
// layouts the peers write (AutoGPTQ file naming with quantize_config.json only, v1 zeros,
// act-order g_idx, bf16 scales) load and compute what the spec's dequantization formula says.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "infer/load_model.h"
#include "infer/quantized_layer.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "kernels/quant_linear.h"
#include "model/json_util.h"
#include "nn/eval.h"
#include "pipeline/quantize.h"
#include "support/fixtures.h"
#include "support/quantize_helpers.h"
#include "util/error.h"
#include "util/fp16.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using ::gptq::testing::eval_ids;
using ::gptq::testing::fixture_model;
using ::gptq::testing::fixture_quantize_options;
using ::gptq::testing::kSilent;
using ::gptq::testing::read_file;
using ::gptq::testing::scratch_dir;

fs::path quantize(const std::string& fixture, int bits, int gs, bool sym, bool act_order) {
  const QuantizeOptions o = fixture_quantize_options(bits, gs, sym, act_order, 8);
  const fs::path out = scratch_dir("q") / "model";
  quantize_model(fixture_model(fixture), out, o, kSilent);
  return out;
}

double ppl(const fs::path& model, LinearBackend backend, const std::vector<int32_t>& ids) {
  EvalOptions eo;
  eo.seqlen = 256;
  eo.max_windows = 12;
  return evaluate_perplexity(*load_model(model, backend)->model, ids, eo).ppl;
}

struct LoadCase {
  std::string fixture;
  int bits, group_size;
  bool sym, act_order;
  std::string name;
};

class KernelVsDequantized : public ::testing::TestWithParam<LoadCase> {};

TEST_P(KernelVsDequantized, SamePerplexity) {
  const auto& c = GetParam();
  const fs::path q = quantize(c.fixture, c.bits, c.group_size, c.sym, c.act_order);
  const auto ids = eval_ids(c.fixture);
  const double kernel = ppl(q, LinearBackend::kKernel, ids);
  const double dense = ppl(q, LinearBackend::kDequantized, ids);
  std::printf("[ %s ] ppl kernel %.6f dequantized %.6f\n", c.name.c_str(), kernel, dense);
  EXPECT_NEAR(kernel / dense, 1.0, 1e-4);
  EXPECT_EQ(read_json_file(q / "config.json")["quantization_config"]["checkpoint_format"],
            "gptq");  // asym too
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, KernelVsDequantized,
    ::testing::Values(LoadCase{"tiny-llama", 4, 128, true, false, "llama_w4g128"},
                      LoadCase{"tiny-llama", 3, 128, true, false, "llama_w3g128"},
                      LoadCase{"tiny-llama", 4, 128, true, true, "llama_w4_act"},
                      LoadCase{"tiny-llama", 4, 128, false, false, "llama_w4_asym_v1"},
                      LoadCase{"tiny-gpt2", 4, 128, true, false, "gpt2_w4g128"},
                      LoadCase{"tiny-gpt2", 3, 128, true, true, "gpt2_w3_act"},
                      LoadCase{"tiny-gpt2", 2, 64, false, false, "gpt2_w2_asym_v1"},
                      LoadCase{"tiny-llama-outliers", 8, 128, true, true, "outliers_w8_act"}),
    [](const auto& param_info) { return param_info.param.name; });

// The loader repacks qweight into kernel tiles straight from the mapping (map_qweight): the
// words it reads are the copied ones and the layer computes bit-identical outputs.
TEST(MappedQweight, SameWordsAndOutputsAsCopy) {
  const fs::path q = quantize("tiny-llama", 4, 128, true, false);
  const TensorStore store = TensorStore::open(q);
  const ModelConfig config = ModelConfig::load(q);
  const auto qc = QuantizationConfig::find_in_model_dir(q);
  ASSERT_TRUE(qc.has_value());
  const std::string name = "model.layers.0.mlp.down_proj";
  const TensorInfo& qw = store.get(name + ".qweight");
  const int64_t n = qw.shape[1], k = qw.shape[0] * 8;
  const QuantizedLayerData copied = read_quantized_layer(store, name, n, k, qc->for_module(name));
  const QuantizedLayerData mapped =
      read_quantized_layer(store, name, n, k, qc->for_module(name), true);
  EXPECT_EQ(copied.qweight_mapped, nullptr);
  ASSERT_NE(mapped.qweight_mapped, nullptr);
  EXPECT_TRUE(mapped.packed.qweight.empty());
  ASSERT_EQ(copied.packed.qweight.size(), static_cast<size_t>(n * k / 8));
  EXPECT_EQ(std::memcmp(mapped.qweight_mapped, copied.packed.qweight.data(),
                        copied.packed.qweight.size() * 4),
            0);
  kernels::QuantLinearDesc dm =
      kernels::describe_packed(mapped.packed, mapped.scales.data(), nullptr);
  dm.qweight = mapped.qweight_mapped;
  const kernels::QuantLinear a(
      kernels::describe_packed(copied.packed, copied.scales.data(), nullptr)),
      b(dm);
  std::vector<float> x(static_cast<size_t>(3 * k));
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  for (int64_t rows : {1, 3}) {
    std::vector<float> ya(static_cast<size_t>(rows * n)), yb(ya.size());
    a.forward(x.data(), rows, ya.data());
    b.forward(x.data(), rows, yb.data());
    EXPECT_EQ(std::memcmp(ya.data(), yb.data(), ya.size() * 4), 0) << rows << " rows";
  }
}

// ---- Peer layouts ----

struct RawTensor {
  TensorSpec spec;
  std::vector<std::byte> bytes;
};

std::vector<RawTensor> read_all(const fs::path& dir) {
  const TensorStore store = TensorStore::open(dir);
  std::vector<RawTensor> out;
  for (const auto& n : store.names()) {
    const TensorInfo& t = store.get(n);
    out.push_back({{n, t.dtype, t.shape}, std::vector<std::byte>(t.data, t.data + t.nbytes)});
  }
  return out;
}

void write_all(const fs::path& dir, const std::string& base,
               const std::vector<RawTensor>& tensors) {
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back(t.spec);
  SafetensorsWriter::Options o;
  o.base_name = base;
  SafetensorsWriter w(dir, specs, o);
  for (const auto& t : tensors) w.write(t.spec.name, t.bytes.data(), t.bytes.size());
  w.finish();
}

// The spec 3.6 formula written out for 4-bit (independent of src/quant/pack.cpp): the float
// weight [N, K] of a v1 checkpoint layer with float scales.
std::vector<float> dequantize_v1_4bit(const int32_t* qweight, const int32_t* qzeros,
                                      const float* scales, const int32_t* g_idx, int64_t k,
                                      int64_t n) {
  std::vector<float> w(static_cast<size_t>(n * k));
  for (int64_t c = 0; c < k; ++c) {
    const int64_t g = g_idx[c];
    for (int64_t r = 0; r < n; ++r) {
      const uint32_t word = static_cast<uint32_t>(qweight[(c / 8) * n + r]);
      const int code = static_cast<int>((word >> (4 * (c % 8))) & 15u);
      const uint32_t zword = static_cast<uint32_t>(qzeros[g * (n / 8) + r / 8]);
      const int zero = static_cast<int>((zword >> (4 * (r % 8))) & 15u) + 1;
      w[r * k + c] = scales[g * n + r] * static_cast<float>(code - zero);
    }
  }
  return w;
}

// Our act-order checkpoint rewritten as AutoGPTQ writes it: gptq_model-4bit-128g.safetensors,
// quantize_config.json only (no quantization_config in config.json), bf16 scales. It must give
// the same logits as a float checkpoint holding the formula's weights.
TEST(PeerLayout, AutoGptqNamingBf16ScalesActOrder) {
  const fs::path ours = quantize("tiny-llama", 4, 128, true, true);
  const fs::path peer = scratch_dir("peer") / "autogptq";
  const fs::path dense = scratch_dir("dense") / "float";
  fs::create_directories(peer);
  fs::create_directories(dense);
  std::vector<RawTensor> tensors = read_all(ours);
  bool nontrivial_g_idx = false;
  for (auto& t : tensors) {
    if (t.spec.name.ends_with(".scales")) {
      std::vector<uint16_t> h(t.bytes.size() / 2), b(h.size());
      std::memcpy(h.data(), t.bytes.data(), t.bytes.size());
      for (size_t i = 0; i < h.size(); ++i) b[i] = f32_to_bf16(f16_to_f32(h[i]));
      std::memcpy(t.bytes.data(), b.data(), t.bytes.size());
      t.spec.dtype = DType::BF16;
    }
    if (t.spec.name.ends_with(".g_idx")) {
      const auto* g = reinterpret_cast<const int32_t*>(t.bytes.data());
      for (int64_t i = 0; i < t.spec.shape[0]; ++i) nontrivial_g_idx |= g[i] != i / 128;
    }
  }
  EXPECT_TRUE(nontrivial_g_idx);
  write_all(peer, "gptq_model-4bit-128g", tensors);
  ASSERT_TRUE(fs::exists(peer / "gptq_model-4bit-128g.safetensors"));
  nlohmann::json cfg = read_json_file(ours / "config.json");
  cfg.erase("quantization_config");
  std::ofstream(peer / "config.json") << cfg.dump(2);
  std::ofstream(peer / "quantize_config.json") << nlohmann::json{
      {"bits", 4},
      {"group_size", 128},
      {"damp_percent", 0.01},
      {"desc_act", true},
      {"static_groups", false},
      {"sym", true},
      {"true_sequential", true},
      {"model_name_or_path", nullptr},
      {"model_file_base_name", "gptq_model-4bit-128g"},
      {"quant_method", "gptq"},
      {"checkpoint_format", "gptq"}}.dump(2);
  fs::copy_file(ours / "tokenizer.json", peer / "tokenizer.json");

  // The float reference: every quantized layer replaced by the formula's weight.
  const TensorStore store = TensorStore::open(peer);
  std::vector<RawTensor> float_tensors;
  for (const auto& n : store.names()) {
    const TensorInfo& t = store.get(n);
    if (n.ends_with(".qweight")) {
      const std::string layer = n.substr(0, n.size() - 8);
      const int64_t n_out = t.shape[1], k = t.shape[0] * 8;
      const std::vector<float> scales = tensor_to_f32(store.get(layer + ".scales"));
      const std::vector<float> w = dequantize_v1_4bit(
          reinterpret_cast<const int32_t*>(t.data),
          reinterpret_cast<const int32_t*>(store.get(layer + ".qzeros").data), scales.data(),
          reinterpret_cast<const int32_t*>(store.get(layer + ".g_idx").data), k, n_out);
      RawTensor r{{layer + ".weight", DType::F32, {n_out, k}},
                  std::vector<std::byte>(w.size() * 4)};
      std::memcpy(r.bytes.data(), w.data(), r.bytes.size());
      float_tensors.push_back(std::move(r));
    } else if (!n.ends_with(".qzeros") && !n.ends_with(".scales") && !n.ends_with(".g_idx")) {
      float_tensors.push_back(
          {{n, t.dtype, t.shape}, std::vector<std::byte>(t.data, t.data + t.nbytes)});
    }
  }
  write_all(dense, "model", float_tensors);
  std::ofstream(dense / "config.json") << cfg.dump(2);

  const auto loaded = load_model(peer);
  ASSERT_TRUE(loaded->quant.has_value());
  EXPECT_TRUE(loaded->quant->desc_act);
  EXPECT_EQ(loaded->quantized_layers, 28);
  const auto reference = load_model(dense);
  const auto ids = eval_ids("tiny-llama");
  const std::vector<int32_t> window(ids.begin(), ids.begin() + 256);
  const auto a = loaded->model->logits(window), b = reference->model->logits(window);
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::abs(a[i] - b[i])));
    max_abs = std::max(max_abs, static_cast<double>(std::abs(b[i])));
  }
  std::printf("peer layout: max |logit diff| %.3g (max |logit| %.3g)\n", max_diff, max_abs);
  EXPECT_LT(max_diff, 1e-3 * max_abs);
}

TEST(PeerLayout, ConfigSynonymsAndChecks) {
  const auto q = QuantizationConfig::from_json(
      {{"w_bit", 4}, {"q_group_size", 64}, {"method", "gptq"}, {"format", "gptq_v2"}}, "x");
  EXPECT_EQ(q.bits, 4);
  EXPECT_EQ(q.group_size, 64);
  EXPECT_EQ(q.format, CheckpointFormat::kGptqV2);
  EXPECT_TRUE(q.sym);  // missing sym -> True
  EXPECT_THROW(QuantizationConfig::from_json({{"bits", 5}}, "x"), Error);
  EXPECT_THROW(QuantizationConfig::from_json({{"bits", 4}, {"quant_method", "awq"}}, "x"), Error);
  EXPECT_THROW(QuantizationConfig::from_json({{"bits", 4}, {"checkpoint_format", "marlin"}}, "x"),
               Error);
}

TEST(PeerLayout, MissingQzerosIsAClearError) {
  const fs::path ours = quantize("tiny-gpt2", 4, 128, true, false);
  std::vector<RawTensor> tensors = read_all(ours);
  std::erase_if(tensors, [](const RawTensor& t) {
    return t.spec.name == "transformer.h.1.attn.c_proj.qzeros";
  });
  const fs::path broken = scratch_dir("broken") / "m";
  fs::create_directories(broken);
  write_all(broken, "model", tensors);
  fs::copy_file(ours / "config.json", broken / "config.json");
  try {
    load_model(broken);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("transformer.h.1.attn.c_proj.qzeros is missing"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace gptq
