// convert_model: Optimum's block patterns (order and prefix semantics), suffix filtering, and the
// plans of the bundled fixtures.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/convert.h"
#include "model/plan_report.h"
#include "support/fixtures.h"
#include "support/tiny_models.h"
#include "util/error.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using ::gptq::testing::fixture_model;
using ::gptq::testing::scratch_dir;

TEST(BlockPatterns, OptimumOrder) {
  EXPECT_EQ(block_patterns(),
            (std::vector<std::string>{"transformer.h", "model.decoder.layers", "gpt_neox.layers", "model.layers",
                                      "model.language_model.layers", "language_model.model.layers", "h",
                                      "decoder.layers", "layers"}));
}

TEST(BlockPatterns, FirstPatternInOrderWins) {
  // Both "model.layers" and "transformer.h" present: transformer.h comes first in the list.
  EXPECT_EQ(detect_block_pattern({"model.layers", "model.layers.0", "transformer.h", "transformer.h.0"}),
            "transformer.h");
  EXPECT_EQ(detect_block_pattern({"model", "model.decoder", "model.decoder.layers", "model.decoder.layers.0"}),
            "model.decoder.layers");
  EXPECT_EQ(detect_block_pattern({"gpt_neox", "gpt_neox.layers", "gpt_neox.layers.0"}), "gpt_neox.layers");
  EXPECT_EQ(detect_block_pattern({"model", "model.layers", "model.layers.3"}), "model.layers");
  // A VLM text tower: "model.layers" is not a prefix of "model.language_model.layers".
  EXPECT_EQ(detect_block_pattern({"model", "model.language_model", "model.language_model.layers.0"}),
            "model.language_model.layers");
  // The older multimodal layout (Llava, Gemma 3 saved before transformers 4.52): our addition.
  EXPECT_EQ(detect_block_pattern({"language_model", "language_model.model", "language_model.model.layers.0",
                                  "vision_tower.vision_model.encoder.layers.0"}),
            "language_model.model.layers");
  EXPECT_EQ(detect_block_pattern({"encoder", "decoder.layers.0"}), "decoder.layers");
  EXPECT_EQ(detect_block_pattern({"emb", "blocks.0"}), "");
}

TEST(BlockPatterns, PrefixNotPathComponentMatch) {
  // Optimum tests name.startswith(pattern): "h" matches a module called "head", so a model with
  // "head" and "layers" resolves to "h" (pattern 6) before "layers" (pattern 8).
  EXPECT_EQ(detect_block_pattern({"head", "layers", "layers.0", "layers.0.fc"}), "h");
  // "transformer.h" also matches "transformer.hidden_proj".
  EXPECT_EQ(detect_block_pattern({"transformer", "transformer.hidden_proj", "model.layers.0"}), "transformer.h");
}

TEST(ModuleNames, AllPrefixesOfParameterNames) {
  EXPECT_EQ(module_names_from_tensors({"model.layers.0.mlp.up_proj.weight", "lm_head.weight"}),
            (std::vector<std::string>{"lm_head", "model", "model.layers", "model.layers.0", "model.layers.0.mlp",
                                      "model.layers.0.mlp.up_proj"}));
}

TEST(ModulesInBlock, SuffixMatch) {
  const std::vector<std::vector<std::string>> m{{"self_attn.q_proj", "self_attn.k_proj"}, {"mlp.down_proj"}};
  EXPECT_TRUE(matches_modules_in_block("model.layers.0.self_attn.q_proj", m));
  EXPECT_TRUE(matches_modules_in_block("model.layers.3.mlp.down_proj", m));
  EXPECT_FALSE(matches_modules_in_block("model.layers.0.self_attn.v_proj", m));
  EXPECT_FALSE(matches_modules_in_block("model.layers.0.mlp.up_proj", m));
  // A plain suffix test, as Optimum's endswith: "q_proj" also matches "xq_proj".
  EXPECT_TRUE(matches_modules_in_block("model.layers.0.attn.xq_proj", {{"q_proj"}}));
  EXPECT_FALSE(matches_modules_in_block("model.layers.0.self_attn.q_proj", {{"self_attn.q"}}));
}

TEST(ModulesInBlock, ParseCliForms) {
  EXPECT_EQ(parse_modules_in_block({"self_attn.q_proj,self_attn.k_proj", "mlp.down_proj"}),
            (std::vector<std::vector<std::string>>{{"self_attn.q_proj", "self_attn.k_proj"}, {"mlp.down_proj"}}));
  EXPECT_EQ(parse_modules_in_block({R"([["a","b"],["c"]])"}),
            (std::vector<std::vector<std::string>>{{"a", "b"}, {"c"}}));
  EXPECT_THROW(parse_modules_in_block({"[[1,"}), Error);
}

struct ExpectedLayer {
  std::string local;
  LinearKind kind;
  int64_t in, out;
  bool bias;
};

void expect_plan(const std::string& fixture, const std::string& block_name, const std::vector<ExpectedLayer>& layers) {
  const auto dir = fixture_model(fixture);
  const auto cfg = ModelConfig::load(dir);
  const auto store = TensorStore::open(dir);
  const auto plan = convert_model(cfg, store, {});
  EXPECT_EQ(plan.block_name, block_name);
  ASSERT_EQ(plan.num_blocks, 4);
  ASSERT_EQ(plan.layers.size(), 4 * layers.size());
  for (int64_t b = 0; b < 4; ++b) {
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& l = plan.layers[b * layers.size() + i];
      SCOPED_TRACE(l.name);
      EXPECT_EQ(l.name, fmt::format("{}.{}.{}", block_name, b, layers[i].local));
      EXPECT_EQ(l.kind, layers[i].kind);
      EXPECT_EQ(l.in_features, layers[i].in);
      EXPECT_EQ(l.out_features, layers[i].out);
      EXPECT_EQ(l.has_bias, layers[i].bias);
      EXPECT_TRUE(l.quantize);
      EXPECT_EQ(l.groups, (l.in_features + 127) / 128);
      EXPECT_EQ(l.qweight_shape(), (std::vector<int64_t>{l.in_features / 8, l.out_features}));
      EXPECT_EQ(l.qzeros_shape(), (std::vector<int64_t>{l.groups, l.out_features / 8}));
    }
  }
}

const std::vector<ExpectedLayer> kLlamaLayers{
    {"self_attn.q_proj", LinearKind::kLinear, 256, 256, false}, {"self_attn.k_proj", LinearKind::kLinear, 256, 128, false},
    {"self_attn.v_proj", LinearKind::kLinear, 256, 128, false}, {"self_attn.o_proj", LinearKind::kLinear, 256, 256, false},
    {"mlp.gate_proj", LinearKind::kLinear, 256, 768, false},    {"mlp.up_proj", LinearKind::kLinear, 256, 768, false},
    {"mlp.down_proj", LinearKind::kLinear, 768, 256, false}};

TEST(ConvertFixtures, TinyLlama) { expect_plan("tiny-llama", "model.layers", kLlamaLayers); }
TEST(ConvertFixtures, TinyLlamaSharded) { expect_plan("tiny-llama-sharded", "model.layers", kLlamaLayers); }
TEST(ConvertFixtures, TinyGpt2Conv1D) {
  expect_plan("tiny-gpt2", "transformer.h",
              {{"attn.c_attn", LinearKind::kConv1D, 256, 768, true},
               {"attn.c_proj", LinearKind::kConv1D, 256, 256, true},
               {"mlp.c_fc", LinearKind::kConv1D, 256, 1024, true},
               {"mlp.c_proj", LinearKind::kConv1D, 1024, 256, true}});
}

TEST(ConvertFixtures, ModulesInBlockAndSequentialGroups) {
  const auto dir = fixture_model("tiny-llama");
  const auto cfg = ModelConfig::load(dir);
  const auto store = TensorStore::open(dir);
  ConvertOptions opt;
  opt.modules_in_block = {{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, {"mlp.down_proj"}};
  opt.bits = 3;
  opt.group_size = -1;
  const auto plan = convert_model(cfg, store, opt);
  int quantized = 0;
  for (const auto& l : plan.layers) {
    quantized += l.quantize;
    if (l.local_name == "mlp.down_proj") {
      EXPECT_TRUE(l.quantize);
      EXPECT_EQ(l.groups, 1);
      EXPECT_EQ(l.qweight_shape(), (std::vector<int64_t>{768 * 3 / 32, 256}));
      EXPECT_EQ(l.qzeros_shape(), (std::vector<int64_t>{1, 256 * 3 / 32}));
    }
    if (l.local_name == "self_attn.o_proj") {
      EXPECT_FALSE(l.quantize);
    }
  }
  EXPECT_EQ(quantized, 4 * 4);
  EXPECT_EQ(plan.sequential_groups, opt.modules_in_block);

  // true_sequential without modules: one group per layer in registration order.
  const auto plan2 = convert_model(cfg, store, {});
  ASSERT_EQ(plan2.sequential_groups.size(), 7u);
  EXPECT_EQ(plan2.sequential_groups[0], std::vector<std::string>{"self_attn.q_proj"});
  EXPECT_EQ(plan2.sequential_groups[6], std::vector<std::string>{"mlp.down_proj"});
}

// A checkpoint whose names trip the prefix rule: "head" matches pattern "h" before "layers".
fs::path write_prefix_trap_model(const fs::path& dir, int64_t in = 64) {
  std::vector<TensorSpec> specs{{"head.weight", DType::F32, {8, 64}}, {"layers.0.fc.weight", DType::F32, {32, in}},
                                {"layers.1.fc.weight", DType::F32, {32, in}}};
  SafetensorsWriter w(dir, specs, {});
  for (const auto& s : specs) {
    std::vector<float> zeros(s.nbytes() / 4, 0.5f);
    w.write(s.name, zeros.data(), s.nbytes());
  }
  w.finish();
  std::ofstream(dir / "config.json") << R"({"model_type": "toy", "architectures": ["ToyForCausalLM"]})";
  return dir;
}

TEST(ConvertSynthetic, PrefixTrapIsReportedAndBlockNameOverrides) {
  const auto dir = write_prefix_trap_model(scratch_dir("trap"));
  const auto cfg = ModelConfig::load(dir);
  EXPECT_EQ(cfg.arch, nullptr);
  const auto store = TensorStore::open(dir);
  try {
    convert_model(cfg, store, {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'h'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("matched module 'head'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--block-name"), std::string::npos) << msg;
  }
  ConvertOptions opt;
  opt.block_name = "layers";
  const auto plan = convert_model(cfg, store, opt);
  EXPECT_EQ(plan.num_blocks, 2);
  ASSERT_EQ(plan.layers.size(), 2u);
  EXPECT_EQ(plan.layers[0].name, "layers.0.fc");
  EXPECT_EQ(plan.layers[0].in_features, 64);
  EXPECT_EQ(plan.layers[0].out_features, 32);
}

TEST(ConvertSynthetic, UnalignedLayersStayFloat) {
  const auto dir = write_prefix_trap_model(scratch_dir("unaligned"), 48);
  const auto cfg = ModelConfig::load(dir);
  const auto store = TensorStore::open(dir);
  ConvertOptions opt;
  opt.block_name = "layers";
  auto plan = convert_model(cfg, store, opt);
  ASSERT_EQ(plan.layers.size(), 2u);
  EXPECT_FALSE(plan.layers[0].quantize);
  EXPECT_NE(plan.layers[0].skip_reason.find("multiples of 32"), std::string::npos);
  EXPECT_FALSE(plan.warnings.empty());
  EXPECT_TRUE(plan.loader_warnings.empty());  // a float layer loads everywhere
  opt.allow_unaligned = true;
  plan = convert_model(cfg, store, opt);
  EXPECT_TRUE(plan.layers[0].quantize);
  EXPECT_EQ(plan.layers[0].qweight_shape(), (std::vector<int64_t>{6, 32}));  // ceil(48*4/32)
  // Quantized anyway: the loaders that refuse it are named.
  EXPECT_FALSE(plan.layers[0].loader_issues.empty());
  ASSERT_EQ(plan.loader_warnings.size(), 1u);  // one line for the layer name of both blocks
  const std::string& w = plan.loader_warnings[0];
  EXPECT_NE(w.find("fc (32x48, 2 blocks)"), std::string::npos) << w;
  EXPECT_NE(w.find("in_features 48 is not a multiple of 32: auto-gptq refuses the checkpoint"), std::string::npos) << w;
  EXPECT_NE(w.find("vllm"), std::string::npos) << w;
  EXPECT_NE(w.find("without --allow-unaligned"), std::string::npos) << w;
}

TEST(LoaderCompat, ShapeIssues) {
  EXPECT_TRUE(loader_shape_issues(256, 768, 4, 128).empty());
  EXPECT_TRUE(loader_shape_issues(192, 256, 4, -1).empty());
  EXPECT_TRUE(loader_shape_issues(192, 256, 4, 64).empty());
  // The issue's example: 192 columns with g128.
  const auto g = loader_shape_issues(192, 256, 4, 128);
  std::vector<std::string> loaders;
  for (const auto& i : g) loaders.push_back(i.loader);
  EXPECT_EQ(loaders, (std::vector<std::string>{"auto-gptq", "exllama", "vllm"}));
  EXPECT_EQ(g[0].condition, "in_features 192 is not a multiple of group_size 128");
  const std::string d = describe_loader_issues(g);
  EXPECT_EQ(d.find("in_features 192"), 0u);
  EXPECT_EQ(d.find("in_features 192", 1), std::string::npos) << d;  // the condition once
  // Not multiples of 32: auto-gptq sizes its buffers with floor(K/32); vLLM needs whole words.
  const auto a = loader_shape_issues(48, 40, 4, -1);
  EXPECT_EQ(std::count_if(a.begin(), a.end(), [](const LoaderIssue& i) { return i.loader == "auto-gptq"; }), 2);
  EXPECT_EQ(std::count_if(a.begin(), a.end(), [](const LoaderIssue& i) { return i.loader == "vllm"; }), 0);  // 48*4, 40 % 8
  const auto b = loader_shape_issues(48, 40, 3, -1);
  EXPECT_EQ(std::count_if(b.begin(), b.end(), [](const LoaderIssue& i) { return i.loader == "vllm"; }), 2);
}

// in_features not a multiple of the group size: warned (named loaders, a group size that works),
// listed per layer in the plan JSON (gptq inspect --json).
TEST(ConvertSynthetic, GroupSizeNotDividingInFeaturesIsWarned) {
  const fs::path dir =
      testing::write_tiny(testing::llama_like("llama", 64, 4, 2, 16, false, false, 1e4, 160), DType::F16, 3);
  const auto cfg = ModelConfig::load(dir);
  const auto store = TensorStore::open(dir);
  ConvertOptions opt;
  opt.group_size = 64;
  const ModelPlan plan = convert_model(cfg, store, opt);
  ASSERT_EQ(plan.loader_warnings.size(), 1u);
  const std::string& w = plan.loader_warnings[0];
  EXPECT_EQ(w.find("mlp.down_proj (64x160, 2 blocks): in_features 160 is not a multiple of group_size 64: "
                   "auto-gptq fails"),
            0u)
      << w;
  EXPECT_NE(w.find("vllm refuses it"), std::string::npos) << w;
  EXPECT_NE(w.find("--group-size 32 avoids it"), std::string::npos) << w;
  const auto j = plan_to_json(cfg, plan);
  EXPECT_EQ(j.at("loader_warnings").size(), 1u);
  for (const auto& l : j.at("layers")) {
    EXPECT_EQ(l.at("loader_issues").empty(), !l.at("name").get<std::string>().ends_with("mlp.down_proj"));
    EXPECT_EQ(l.at("packed").at("bias").at("shape"), nlohmann::json::array({l.at("out_features")}));  // zero biases
  }
}

TEST(ConvertOptionsCheck, BadBitsAndGroupSize) {
  const auto dir = fixture_model("tiny-llama");
  const auto cfg = ModelConfig::load(dir);
  const auto store = TensorStore::open(dir);
  ConvertOptions opt;
  opt.bits = 5;
  EXPECT_THROW(convert_model(cfg, store, opt), Error);
  opt.bits = 4;
  opt.group_size = 0;
  EXPECT_THROW(convert_model(cfg, store, opt), Error);
}

TEST(ModelConfigTest, ArchitecturesAndSeqlen) {
  const auto llama = ModelConfig::load(fixture_model("tiny-llama"));
  ASSERT_NE(llama.arch, nullptr);
  EXPECT_EQ(llama.arch->name, "llama");
  EXPECT_EQ(llama.hp.hidden, 256);
  EXPECT_EQ(llama.hp.kv_heads, 4);
  EXPECT_EQ(llama.hp.head_dim, 32);
  EXPECT_DOUBLE_EQ(llama.hp.norm_eps, 1e-5);
  EXPECT_EQ(llama.default_seqlen(), 512);
  const auto gpt2 = ModelConfig::load(fixture_model("tiny-gpt2"));
  ASSERT_NE(gpt2.arch, nullptr);
  EXPECT_EQ(gpt2.hp.intermediate, 1024);  // n_inner null -> 4 * n_embd
  EXPECT_TRUE(gpt2.hp.tie_word_embeddings);
  EXPECT_EQ(gpt2.hp.act, Activation::kGeluTanh);
}

TEST(ModelPath, HubCacheResolution) {
  const auto cache = scratch_dir("hub");
  const auto snap = cache / "models--org--tiny" / "snapshots" / "abc123";
  fs::create_directories(snap);
  fs::create_directories(cache / "models--org--tiny" / "refs");
  std::ofstream(cache / "models--org--tiny" / "refs" / "main") << "abc123";
  ::setenv("HF_HUB_CACHE", cache.c_str(), 1);
  EXPECT_EQ(resolve_model_path("org/tiny"), snap);
  EXPECT_THROW(resolve_model_path("org/missing"), Error);
  ::unsetenv("HF_HUB_CACHE");
  ::setenv("HF_HOME", (cache.parent_path() / "hfhome").c_str(), 1);
  fs::create_directories(cache.parent_path() / "hfhome" / "hub" / "models--a--b" / "snapshots" / "only");
  EXPECT_EQ(resolve_model_path("a/b"), cache.parent_path() / "hfhome" / "hub" / "models--a--b" / "snapshots" / "only");
  ::unsetenv("HF_HOME");
}

}  // namespace
}  // namespace gptq
