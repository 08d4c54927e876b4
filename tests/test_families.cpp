// Today's families end to end:
//   * quantize -> load -> eval: GPTQ 4-bit g32 beats round-to-nearest on the KL divergence to the
//     float model; the QuantLinear kernels equal the dequantized float path; a multimodal
//     checkpoint keeps its vision tower and projector byte for byte and gets quantization_config
//     at the top level;
//   * `gptq inspect` on a tiny checkpoint of each published config.json in testdata/configs/
//     (dimensions shrunk, structure kept) lists the right block list and layers.
// The float forward itself is checked against the reference in test_reference_forward.cpp.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>
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
#include "util/error.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace ::gptq::testing;

QuantizeOptions family_options(QuantMethod method, const fs::path& calib, int nsamples) {
  QuantizeOptions o;
  o.quant.bits = 4;
  o.quant.group_size = 32;
  o.quant.damp_percent = 0.01;
  o.method = method;
  o.calib.file = calib;
  o.calib.nsamples = nsamples;
  o.calib.seqlen = kFamilyTestTokens;
  return o;
}

class FamilyQuantize : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyQuantize, GptqBeatsRtnAndLoads) {
  const json config = family_config(GetParam());
  const fs::path model = write_tiny(tiny_from_config(config), DType::BF16, 11);
  const fs::path calib = family_calibration(32);
  const fs::path dir = scratch_dir("fq-" + GetParam());
  const auto gptq = quantize_model(model, dir / "gptq", family_options(QuantMethod::kGptq, calib, 32), kSilent);
  quantize_model(model, dir / "rtn", family_options(QuantMethod::kRtn, calib, 32), kSilent);

  const auto base = load_model(model);
  const auto q = load_model(dir / "gptq");
  const auto r = load_model(dir / "rtn");
  EXPECT_GT(q->quantized_layers, 0);
  EXPECT_EQ(q->float_layers, 0);
  // Held-out windows from the calibration distribution.
  const std::vector<int32_t> ids = family_ids(8 * kFamilyTestTokens, 7);
  EvalOptions eo;
  eo.seqlen = kFamilyTestTokens;
  const ComparisonResult cg = compare_models(*base->model, *q->model, ids, eo);
  const ComparisonResult cr = compare_models(*base->model, *r->model, ids, eo);
  std::printf("[ %s ] KL to float: GPTQ %.5f, RTN %.5f (ratio %.2f); ppl float %.3f GPTQ %.3f RTN %.3f\n",
              GetParam().c_str(), cg.mean_kl, cr.mean_kl, cg.mean_kl / cr.mean_kl, cg.base.ppl, cg.model.ppl,
              cr.model.ppl);
  EXPECT_LT(cg.mean_kl, cr.mean_kl);
  EXPECT_TRUE(std::isfinite(cg.mean_kl));

  // The kernels compute what the dequantized float weights compute.
  EXPECT_LE(kernel_vs_dequantized(dir / "gptq"), 1e-4);

  // Every linear of every block was quantized and reported with its loss.
  EXPECT_EQ(gptq.report.at("layers").size(),
            static_cast<size_t>(q->quantized_layers));

  // Multimodal: quantization_config at the top level, text_config kept, every non-text tensor
  // copied byte for byte.
  if (config.contains("vision_config")) {
    const json out_cfg = json::parse(read_file(dir / "gptq" / "config.json"));
    EXPECT_TRUE(out_cfg.contains("quantization_config"));
    EXPECT_EQ(out_cfg.at("model_type"), config.at("model_type"));
    const TensorStore in = TensorStore::open(model), out = TensorStore::open(dir / "gptq");
    int copied = 0;
    for (const auto& name : in.names()) {
      if (name.find("language_model") != std::string::npos ||
          (name.starts_with("model.") && !name.starts_with("model.vision_tower") &&
           !name.starts_with("model.multi_modal_projector") && !name.starts_with("model.visual")) ||
          name.starts_with("lm_head"))
        continue;  // the language model
      const TensorInfo* t = out.find(name);
      ASSERT_NE(t, nullptr) << name;
      const TensorInfo& s = in.get(name);
      ASSERT_EQ(t->nbytes, s.nbytes) << name;
      EXPECT_EQ(std::memcmp(t->data, s.data, s.nbytes), 0) << name;
      ++copied;
    }
    EXPECT_GE(copied, 4);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyQuantize,
                         ::testing::Values("llama3", "llama_yarn", "mistral_sliding", "qwen2", "qwen3",
                                           "gemma", "gemma2", "gemma3_text", "phi3_longrope", "phi4_mini",
                                           "starcoder2", "gemma3", "mistral3", "llava", "qwen2_5_vl"),
                         [](const auto& p) { return p.param; });

// ---------------------------------------------------------------------------------------------
// gptq inspect on the structure of each published config.json

// The text part of a config (text_config, or the top level) shrunk to test size: every key kept,
// dimensions replaced, lists that follow the layer count or the rotary dimension cut to size.
json shrink(json config) {
  json& t = config.contains("text_config") ? config["text_config"] : config;
  const int64_t heads = t.value("num_attention_heads", int64_t{8});
  const int64_t kv = t.value("num_key_value_heads", heads);
  t["hidden_size"] = 64;
  t["intermediate_size"] = 128;
  t["num_hidden_layers"] = 2;
  t["num_attention_heads"] = 4;
  t["num_key_value_heads"] = kv == heads ? 4 : (kv == 1 ? 1 : 2);
  t["head_dim"] = 32;  // explicit: MQA (one kv head) keeps k/v at 32 features
  t["vocab_size"] = kFamilyVocab;
  if (config.contains("text_config") && config.contains("vocab_size")) config["vocab_size"] = kFamilyVocab;
  if (t.contains("layer_types")) t["layer_types"] = json::array({t["layer_types"][0], t["layer_types"].back()});
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!t.contains(key) || !t[key].is_object()) continue;
    const double partial = t.value("partial_rotary_factor", 1.0);
    const auto half = static_cast<size_t>(static_cast<int64_t>(32 * partial) / 2);
    for (const char* f : {"long_factor", "short_factor"})
      if (t[key].contains(f)) {
        json cut = json::array();
        for (size_t i = 0; i < half; ++i) cut.push_back(t[key][f][i]);
        t[key][f] = cut;
      }
  }
  if (config.contains("vision_config")) {
    json& v = config["vision_config"];
    v["hidden_size"] = 32;
    v["intermediate_size"] = 64;
    v["image_size"] = 28;
    v["patch_size"] = 14;
    if (v.contains("out_hidden_size")) v["out_hidden_size"] = 64;
  }
  return config;
}

struct InspectCase {
  const char* file;
  const char* block_name;
  std::vector<std::string> layers;  // local names, registration order
};

const std::vector<std::string> kLlamaLayers{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                            "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                            "mlp.down_proj"};
const std::vector<std::string> kPhi3Layers{"self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj",
                                           "mlp.down_proj"};
const std::vector<std::string> kStarcoder2Layers{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                 "self_attn.o_proj", "mlp.c_fc",         "mlp.c_proj"};

std::vector<InspectCase> inspect_cases() {
  return {
      {"meta-llama--Llama-3.1-8B", "model.layers", kLlamaLayers},
      {"meta-llama--Llama-3.1-8B-Instruct", "model.layers", kLlamaLayers},
      {"meta-llama--Llama-3.2-1B", "model.layers", kLlamaLayers},
      {"meta-llama--Llama-3.3-70B-Instruct", "model.layers", kLlamaLayers},
      {"deepseek-ai--DeepSeek-R1-Distill-Llama-8B", "model.layers", kLlamaLayers},
      {"Qwen--Qwen2.5-7B-Instruct", "model.layers", kLlamaLayers},
      {"Qwen--Qwen2.5-VL-7B-Instruct", "model.language_model.layers", kLlamaLayers},
      {"Qwen--Qwen3-8B", "model.layers", kLlamaLayers},
      {"Qwen--Qwen3-8B.resaved-tf4.57.1", "model.layers", kLlamaLayers},
      {"google--gemma-7b", "model.layers", kLlamaLayers},
      {"google--gemma-2-2b-it", "model.layers", kLlamaLayers},
      {"google--gemma-2-9b", "model.layers", kLlamaLayers},
      {"google--gemma-3-1b-it", "model.layers", kLlamaLayers},
      {"google--gemma-3-4b-it", "model.language_model.layers", kLlamaLayers},
      {"microsoft--Phi-3.5-mini-instruct", "model.layers", kPhi3Layers},
      {"microsoft--Phi-4-mini-instruct", "model.layers", kPhi3Layers},
      {"microsoft--phi-4", "model.layers", kPhi3Layers},
      {"mistralai--Mistral-7B-Instruct-v0.3", "model.layers", kLlamaLayers},
      {"mistralai--Mistral-Small-3.1-24B-Instruct-2503", "model.language_model.layers", kLlamaLayers},
      {"bigcode--starcoder2-3b", "model.layers", kStarcoder2Layers},
      {"llava-hf--llava-1.5-7b-hf", "model.language_model.layers", kLlamaLayers},
  };
}

class InspectRealConfig : public ::testing::TestWithParam<InspectCase> {};

TEST_P(InspectRealConfig, ListsBlocksAndLayers) {
  const InspectCase& c = GetParam();
  const json real = json::parse(read_file(fs::path(GPTQ_SOURCE_DIR) / "testdata" / "configs" / (std::string(c.file) + ".json")));
  const fs::path model = write_tiny(tiny_from_config(shrink(real)), DType::BF16, 5);
  const fs::path out = scratch_dir("inspect") / "inspect.json";
  const std::string cmd = std::string(GPTQ_EXE) + " inspect " + model.string() + " --json > " + out.string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(out);
  const json j = json::parse(read_file(out));
  EXPECT_TRUE(j.at("arch_supported").get<bool>());
  EXPECT_EQ(j.at("block_name"), c.block_name);
  EXPECT_EQ(j.at("num_blocks"), 2);
  std::vector<std::string> want;
  for (int b = 0; b < 2; ++b)
    for (const auto& l : c.layers) want.push_back(std::string(c.block_name) + "." + std::to_string(b) + "." + l);
  std::vector<std::string> got;
  for (const auto& l : j.at("layers")) {
    got.push_back(l.at("name").get<std::string>());
    EXPECT_TRUE(l.at("quantize").get<bool>()) << l.dump();
  }
  EXPECT_EQ(got, want);
}

INSTANTIATE_TEST_SUITE_P(Published, InspectRealConfig, ::testing::ValuesIn(inspect_cases()), [](const auto& p) {
  std::string s = p.param.file;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
});

// ---------------------------------------------------------------------------------------------
// The CLI on a family checkpoint that has a real tokenizer (tiny-llama's byte-level BPE, the
// vocabulary resized to it): quantize from text, eval against the float model, generate.

int run(const std::string& cmd, const fs::path& log) {
  return std::system((cmd + " > " + log.string() + " 2>&1").c_str());
}

class FamilyCli : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyCli, QuantizeEvalGenerate) {
  json config = family_config(GetParam());
  json& text = config.contains("text_config") ? config["text_config"] : config;
  text["vocab_size"] = 4096;
  if (config.contains("text_config") && config.contains("vocab_size")) config["vocab_size"] = 4096;
  const fs::path model = write_tiny(tiny_from_config(config), DType::BF16, 3);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(fixture_model("tiny-llama") / f, model / f);
  const fs::path dir = scratch_dir("cli-" + GetParam()), out = dir / "q", log = dir / "log.txt";
  const std::string exe = GPTQ_EXE;
  ASSERT_EQ(run(exe + " quantize " + model.string() + " " + out.string() + " --calib " +
                    fixture_data("calib.txt").string() + " --nsamples 8 --seqlen 40 --group-size 32",
                log),
            0)
      << read_file(log);
  const std::string qlog = read_file(log);
  EXPECT_NE(qlog.find(config.contains("vision_config") ? "language_model" : "model.layers.1."), std::string::npos)
      << qlog;
  ASSERT_EQ(run(exe + " eval " + out.string() + " --text " + fixture_data("eval.txt").string() +
                    " --seqlen 40 --max-windows 4 --json --base " + model.string(),
                log),
            0)
      << read_file(log);
  const std::string elog = read_file(log);
  const json e = json::parse(elog.substr(elog.find('{')));
  std::printf("[ %s ] gptq eval: %s\n", GetParam().c_str(), e.dump().c_str());
  EXPECT_TRUE(e.dump().find("null") == std::string::npos) << e.dump();  // no NaN anywhere
  ASSERT_EQ(run(exe + " generate " + out.string() +
                    " --prompt \"And God said\" --max-new-tokens 12 --temperature 0",
                log),
            0)
      << read_file(log);
  EXPECT_NE(read_file(log).find("And God said"), std::string::npos) << read_file(log);
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyCli,
                         ::testing::Values("llama3", "qwen3", "gemma2", "gemma3", "phi3_longrope", "starcoder2",
                                           "mistral3", "mixtral", "qwen2_moe", "qwen3_moe"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace gptq
