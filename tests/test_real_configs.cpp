// The published config.json files of popular checkpoints (testdata/configs/, sources in its
// README.md) read as transformers reads them: family, dimensions (with the defaults transformers'
// config classes supply for multimodal text_config), RoPE variant, sliding-window layers,
// Gemma's scales and soft-capping.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "model/model_config.h"
#include "nn/rotary.h"
#include "support/fixtures.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;

struct Expected {
  const char* file;
  const char* family;
  bool text_tower;
  int64_t layers, heads, kv_heads, head_dim, hidden, intermediate, vocab;
  const char* rope_type;
  double rope_theta;
  int64_t sliding_layers, sliding_window;
  bool tied;
};

const Expected kConfigs[] = {
    {"meta-llama--Llama-3.1-8B", "llama", false, 32, 32, 8, 128, 4096, 14336, 128256, "llama3", 500000, 0, 0, false},
    {"meta-llama--Llama-3.1-8B-Instruct", "llama", false, 32, 32, 8, 128, 4096, 14336, 128256, "llama3", 500000, 0, 0, false},
    {"meta-llama--Llama-3.2-1B", "llama", false, 16, 32, 8, 64, 2048, 8192, 128256, "llama3", 500000, 0, 0, true},
    {"meta-llama--Llama-3.3-70B-Instruct", "llama", false, 80, 64, 8, 128, 8192, 28672, 128256, "llama3", 500000, 0, 0, false},
    {"deepseek-ai--DeepSeek-R1-Distill-Llama-8B", "llama", false, 32, 32, 8, 128, 4096, 14336, 128256, "llama3", 500000, 0, 0, false},
    {"Qwen--Qwen2.5-7B-Instruct", "qwen2", false, 28, 28, 4, 128, 3584, 18944, 152064, "default", 1e6, 0, 0, false},
    {"Qwen--Qwen2.5-VL-7B-Instruct", "qwen2", true, 28, 28, 4, 128, 3584, 18944, 152064, "default", 1e6, 0, 0, false},
    {"Qwen--Qwen3-8B", "qwen3", false, 36, 32, 8, 128, 4096, 12288, 151936, "default", 1e6, 0, 0, false},
    {"Qwen--Qwen3-8B.resaved-tf4.57.1", "qwen3", false, 36, 32, 8, 128, 4096, 12288, 151936, "default", 1e6, 0, 0, false},
    {"google--gemma-7b", "gemma", false, 28, 16, 16, 256, 3072, 24576, 256000, "default", 10000, 0, 0, true},
    {"google--gemma-2-2b-it", "gemma2", false, 26, 8, 4, 256, 2304, 9216, 256000, "default", 10000, 13, 4096, true},
    {"google--gemma-2-9b", "gemma2", false, 42, 16, 8, 256, 3584, 14336, 256000, "default", 10000, 21, 4096, true},
    {"google--gemma-3-1b-it", "gemma3", false, 26, 4, 1, 256, 1152, 6912, 262144, "default", 1e6, 22, 512, true},
    {"google--gemma-3-4b-it", "gemma3", true, 34, 8, 4, 256, 2560, 10240, 262208, "linear", 1e6, 29, 1024, true},
    {"microsoft--Phi-3.5-mini-instruct", "phi3", false, 32, 32, 32, 96, 3072, 8192, 32064, "longrope", 10000, 32, 262144, false},
    {"microsoft--Phi-4-mini-instruct", "phi3", false, 32, 24, 8, 128, 3072, 8192, 200064, "longrope", 10000, 32, 262144, true},
    {"microsoft--phi-4", "phi3", false, 40, 40, 10, 128, 5120, 17920, 100352, "default", 250000, 0, 0, false},
    {"mistralai--Mistral-7B-Instruct-v0.3", "mistral", false, 32, 32, 8, 128, 4096, 14336, 32768, "default", 1e6, 0, 0, false},
    {"mistralai--Mistral-Small-3.1-24B-Instruct-2503", "mistral", true, 40, 32, 8, 128, 5120, 32768, 131072, "default", 1e9, 0, 0, false},
    {"bigcode--starcoder2-3b", "starcoder2", false, 30, 24, 2, 128, 3072, 12288, 49152, "default", 999999.4420358813, 30, 4096, true},
    {"llava-hf--llava-1.5-7b-hf", "llama", true, 32, 32, 32, 128, 4096, 11008, 32064, "default", 10000, 0, 0, false},
};

ModelConfig load_config(const std::string& name) {
  const fs::path dir = testing::scratch_dir("cfg-" + name);
  fs::copy_file(fs::path(GPTQ_SOURCE_DIR) / "testdata" / "configs" / (name + ".json"), dir / "config.json");
  return ModelConfig::load(dir);
}

class RealConfig : public ::testing::TestWithParam<Expected> {};

TEST_P(RealConfig, ReadsAsTransformers) {
  const Expected& e = GetParam();
  const ModelConfig c = load_config(e.file);
  ASSERT_NE(c.arch, nullptr);
  EXPECT_EQ(c.arch->name, e.family);
  EXPECT_EQ(c.text_tower, e.text_tower);
  const ModelHparams& h = c.hp;
  EXPECT_EQ(h.layers, e.layers);
  EXPECT_EQ(h.heads, e.heads);
  EXPECT_EQ(h.kv_heads, e.kv_heads);
  EXPECT_EQ(h.head_dim, e.head_dim);
  EXPECT_EQ(h.hidden, e.hidden);
  EXPECT_EQ(h.intermediate, e.intermediate);
  EXPECT_EQ(h.vocab, e.vocab);
  EXPECT_EQ(h.rope.type, e.rope_type);
  EXPECT_DOUBLE_EQ(h.rope.theta, e.rope_theta);
  int64_t sliding = 0;
  for (bool s : h.layer_sliding) sliding += s;
  EXPECT_EQ(sliding, e.sliding_layers);
  EXPECT_EQ(h.sliding_window, e.sliding_window);
  EXPECT_EQ(h.tie_word_embeddings, e.tied);
}

INSTANTIATE_TEST_SUITE_P(Published, RealConfig, ::testing::ValuesIn(kConfigs), [](const auto& p) {
  std::string s = p.param.file;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
});

// Family-specific readings, checked against the numbers transformers computes.
TEST(RealConfigDetails, Llama31Rope) {
  const ModelConfig c = load_config("meta-llama--Llama-3.1-8B");
  EXPECT_DOUBLE_EQ(c.hp.rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.hp.rope.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.hp.rope.high_freq_factor, 4.0);
  EXPECT_EQ(c.hp.rope.original_max_positions, 8192);
  // wavelen = 2 pi / inv_freq: i = 0 (wavelength 2 pi, < 8192 / 4) is unchanged; the last
  // frequency (wavelength 2 pi * 500000^(126/128) >> 8192) is divided by 8.
  const std::vector<float> f = nn::rope_inv_freq(c.hp.rope, 128, 0);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_NEAR(f[63], 1.0 / std::pow(500000.0, 126.0 / 128.0) / 8.0, 1e-12);
}

TEST(RealConfigDetails, GemmaScalesAndCaps) {
  const ModelConfig g7 = load_config("google--gemma-7b");
  EXPECT_DOUBLE_EQ(g7.hp.embed_scale, 55.5);  // sqrt(3072) = 55.4256 rounded to bfloat16
  EXPECT_EQ(g7.hp.act, Activation::kGelu);  // hidden_act "gelu" (transformers >= 4.50 reads it)
  const ModelConfig g9 = load_config("google--gemma-2-9b");
  EXPECT_NEAR(g9.hp.embed_scale, std::sqrt(3584.0), 1e-4);  // float32 model: not rounded
  EXPECT_DOUBLE_EQ(g9.hp.attn_softcap, 50.0);
  EXPECT_DOUBLE_EQ(g9.hp.final_softcap, 30.0);
  EXPECT_DOUBLE_EQ(g9.hp.attn_scale, 1.0 / 16.0);  // query_pre_attn_scalar 256
  EXPECT_TRUE(g9.hp.layer_sliding[0]);
  EXPECT_FALSE(g9.hp.layer_sliding[1]);
  const ModelConfig g3 = load_config("google--gemma-3-4b-it");
  EXPECT_TRUE(g3.hp.has_rope_local);
  EXPECT_DOUBLE_EQ(g3.hp.rope_local.theta, 10000.0);
  EXPECT_EQ(g3.hp.rope_local.type, "default");
  EXPECT_DOUBLE_EQ(g3.hp.rope.factor, 8.0);
  EXPECT_FALSE(g3.hp.layer_sliding[5]);  // every 6th layer is global
  EXPECT_TRUE(g3.hp.layer_sliding[4]);
  EXPECT_DOUBLE_EQ(g3.hp.final_softcap, 0.0);
  EXPECT_DOUBLE_EQ(g3.hp.embed_scale, 50.5);  // sqrt(2560) = 50.596 rounded to bfloat16
}

TEST(RealConfigDetails, PhiLongrope) {
  const ModelConfig c = load_config("microsoft--Phi-3.5-mini-instruct");
  EXPECT_EQ(c.hp.rope.short_factor.size(), 48u);
  EXPECT_EQ(c.hp.rope.long_factor.size(), 48u);
  EXPECT_EQ(c.hp.rope.original_max_positions, 4096);
  // factor = 131072 / 4096 = 32: attention_factor = sqrt(1 + ln 32 / ln 4096)
  EXPECT_NEAR(c.hp.rope.attention_factor, std::sqrt(1 + std::log(32.0) / std::log(4096.0)), 1e-12);
  const ModelConfig m = load_config("microsoft--Phi-4-mini-instruct");
  EXPECT_DOUBLE_EQ(m.hp.rotary_pct, 0.75);  // 96 of 128 dims rotated: 48 factors
  EXPECT_EQ(m.hp.rope.long_factor.size(), 48u);
}

}  // namespace
}  // namespace gptq
