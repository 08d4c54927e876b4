// Generation: the KV-cached incremental forward against the whole-sequence forward (fixtures and
// random tiny checkpoints of the other families; float and 4-bit GPTQ), greedy generation of the
// float and quantized tiny-llama, the sampler on hand-made logits, streaming detokenization and
// the errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "calib/tokenizer.h"
#include "infer/generate.h"
#include "infer/load_model.h"
#include "infer/text_stream.h"
#include "io/safetensors_writer.h"
#include "nn/kv_cache.h"
#include "nn/model_forward.h"
#include "nn/sampler.h"
#include "pipeline/quantize.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using ::gptq::testing::fixture_data;
using ::gptq::testing::fixture_model;
using ::gptq::testing::read_file;
using ::gptq::testing::scratch_dir;
using json = nlohmann::json;

constexpr const char* kPrompt = "And the LORD said unto Moses,";

// ---------------------------------------------------------------------------------------------
// Random tiny checkpoints (as tests/test_forward.cpp builds them)

constexpr int64_t kVocab = 50, kLayers = 2, kMaxPos = 64;

struct TinyCheckpoint {
  json config;
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;
  std::map<std::string, std::pair<float, float>> init;  // name -> {offset, scale}; default {0, 1}

  void linear(const std::string& name, int64_t n, int64_t k, bool bias) {
    tensors.push_back({name + ".weight", {n, k}});
    init[name + ".weight"] = {0.0f, 1.0f / std::sqrt(static_cast<float>(k))};
    if (bias) {
      tensors.push_back({name + ".bias", {n}});
      init[name + ".bias"] = {0.0f, 0.1f};
    }
  }
  void norm(const std::string& name, int64_t d) {
    tensors.push_back({name + ".weight", {d}});
    init[name + ".weight"] = {1.0f, 0.1f};
    tensors.push_back({name + ".bias", {d}});
    init[name + ".bias"] = {0.0f, 0.1f};
  }
  void table(const std::string& name, int64_t rows, int64_t d, float scale) {
    tensors.push_back({name, {rows, d}});
    init[name] = {0.0f, scale};
  }

  fs::path write(uint32_t seed) const {
    const fs::path dir = scratch_dir(config.at("model_type").get<std::string>());
    {
      std::FILE* f = std::fopen((dir / "config.json").c_str(), "w");
      const std::string s = config.dump(2);
      std::fwrite(s.data(), 1, s.size(), f);
      std::fclose(f);
    }
    std::vector<TensorSpec> specs;
    for (const auto& [name, shape] : tensors) specs.push_back({name, DType::F32, shape});
    SafetensorsWriter w(dir, specs, {});
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (const auto& [name, shape] : tensors) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      const auto [offset, scale] = init.at(name);
      std::vector<float> v(static_cast<size_t>(n));
      for (float& x : v) x = offset + scale * nd(rng);
      w.write(name, v.data(), v.size() * sizeof(float));
    }
    w.finish();
    return dir;
  }
};

// GPT-NeoX: fused per-head qkv, partial rotary (rotary_pct 0.25), parallel residual or not.
TinyCheckpoint neox_model(bool parallel) {
  const int64_t hidden = 32, heads = 4, inter = 4 * hidden;
  TinyCheckpoint m;
  m.config = {{"model_type", "gpt_neox"},
              {"hidden_size", hidden},
              {"num_attention_heads", heads},
              {"intermediate_size", inter},
              {"num_hidden_layers", kLayers},
              {"vocab_size", kVocab},
              {"max_position_embeddings", kMaxPos},
              {"rotary_pct", 0.25},
              {"rotary_emb_base", 10000},
              {"layer_norm_eps", 1e-5},
              {"hidden_act", "gelu"},
              {"use_parallel_residual", parallel}};
  m.table("gpt_neox.embed_in.weight", kVocab, hidden, 1.0f);
  for (int64_t i = 0; i < kLayers; ++i) {
    const std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
    m.norm(p + "input_layernorm", hidden);
    m.norm(p + "post_attention_layernorm", hidden);
    m.linear(p + "attention.query_key_value", 3 * hidden, hidden, true);
    m.linear(p + "attention.dense", hidden, hidden, true);
    m.linear(p + "mlp.dense_h_to_4h", inter, hidden, true);
    m.linear(p + "mlp.dense_4h_to_h", hidden, inter, true);
  }
  m.norm("gpt_neox.final_layer_norm", hidden);
  m.linear("embed_out", kVocab, hidden, false);
  return m;
}

// OPT: learned positions with the offset of 2, separate q/k/v with biases, ReLU MLP.
TinyCheckpoint opt_model() {
  const int64_t hidden = 32, heads = 4, ffn = 3 * hidden;
  TinyCheckpoint m;
  m.config = {{"model_type", "opt"},
              {"hidden_size", hidden},
              {"num_attention_heads", heads},
              {"ffn_dim", ffn},
              {"num_hidden_layers", kLayers},
              {"vocab_size", kVocab},
              {"max_position_embeddings", kMaxPos},
              {"do_layer_norm_before", true},
              {"activation_function", "relu"},
              {"word_embed_proj_dim", hidden}};
  m.table("model.decoder.embed_tokens.weight", kVocab, hidden, 1.0f);
  m.table("model.decoder.embed_positions.weight", kMaxPos + 2, hidden, 0.5f);
  for (int64_t i = 0; i < kLayers; ++i) {
    const std::string p = "model.decoder.layers." + std::to_string(i) + ".";
    m.linear(p + "self_attn.k_proj", hidden, hidden, true);
    m.linear(p + "self_attn.v_proj", hidden, hidden, true);
    m.linear(p + "self_attn.q_proj", hidden, hidden, true);
    m.linear(p + "self_attn.out_proj", hidden, hidden, true);
    m.norm(p + "self_attn_layer_norm", hidden);
    m.linear(p + "fc1", ffn, hidden, true);
    m.linear(p + "fc2", hidden, ffn, true);
    m.norm(p + "final_layer_norm", hidden);
  }
  m.norm("model.decoder.final_layer_norm", hidden);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Incremental (KV cache) forward == whole-sequence forward

std::vector<int32_t> eval_ids(const std::string& fixture, size_t n) {
  auto ids = json::parse(read_file(fixture_model(fixture) / "reference" / "eval_ids.json"))
                 .get<std::vector<int32_t>>();
  ids.resize(n);
  return ids;
}

std::vector<int32_t> random_ids(size_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return ids;
}

// Max |logit difference| between the whole-sequence forward of `ids` and the cached forward run
// in the chunks `steps` (their sum = ids.size(); e.g. {prefill, 1, 1, ...}).
double incremental_vs_full(const ModelForward& model, const std::vector<int32_t>& ids,
                           const std::vector<int64_t>& steps) {
  const int64_t vocab = model.vocab(), hidden = model.hidden();
  const std::vector<float> full = model.logits(ids);
  nn::KvCache cache = model.make_kv_cache(static_cast<int64_t>(ids.size()));
  double max_err = 0;
  int64_t pos = 0;
  for (const int64_t n : steps) {
    std::vector<float> x(static_cast<size_t>(n * hidden)), logits(static_cast<size_t>(n * vocab));
    model.forward_cached(ids.data() + pos, n, cache, x.data());
    model.head(x.data(), n, logits.data());
    for (int64_t i = 0; i < n * vocab; ++i)
      max_err = std::max(max_err, static_cast<double>(std::abs(logits[i] - full[pos * vocab + i])));
    pos += n;
    EXPECT_EQ(cache.length(), pos);
  }
  EXPECT_EQ(pos, static_cast<int64_t>(ids.size()));
  return max_err;
}

// prefill, then one token at a time up to `total`.
std::vector<int64_t> prefill_then_decode(int64_t prefill, int64_t total) {
  std::vector<int64_t> steps{prefill};
  for (int64_t i = prefill; i < total; ++i) steps.push_back(1);
  return steps;
}

double logit_scale(const ModelForward& model, const std::vector<int32_t>& ids) {
  double m = 0;
  for (float v : model.logits(ids)) m = std::max(m, static_cast<double>(std::abs(v)));
  return m;
}

class IncrementalFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(IncrementalFixture, MatchesFullForward) {
  const auto m = load_model(fixture_model(GetParam()));
  const std::vector<int32_t> ids = eval_ids(GetParam(), 48);
  const double decode_err = incremental_vs_full(*m->model, ids, prefill_then_decode(9, 48));
  const double chunk_err = incremental_vs_full(*m->model, ids, {5, 1, 7, 1, 1, 16, 17});
  std::printf(
      "[ %s ] cached vs full logits: prefill 9 + 39 decode steps %.3g, chunks %.3g "
      "(max |logit| %.3g)\n",
      GetParam().c_str(), decode_err, chunk_err, logit_scale(*m->model, ids));
  EXPECT_LE(decode_err, 1e-4);
  EXPECT_LE(chunk_err, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, IncrementalFixture, ::testing::Values("tiny-llama", "tiny-gpt2"),
                         [](const auto& p) {
                           std::string s = p.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

struct TinyCase {
  std::string name;
  TinyCheckpoint (*make)();
};

class IncrementalTiny : public ::testing::TestWithParam<TinyCase> {};

TEST_P(IncrementalTiny, MatchesFullForward) {
  const fs::path dir = GetParam().make().write(7);
  const auto m = load_model(dir);
  const std::vector<int32_t> ids = random_ids(kMaxPos, kVocab, 3);  // the whole context
  const double decode_err = incremental_vs_full(*m->model, ids, prefill_then_decode(5, kMaxPos));
  const double chunk_err = incremental_vs_full(*m->model, ids, {1, 1, 30, 2, 30});
  std::printf("[ %s ] cached vs full logits: %.3g (decode), %.3g (chunks)\n",
              GetParam().name.c_str(), decode_err, chunk_err);
  EXPECT_LE(decode_err, 1e-4);
  EXPECT_LE(chunk_err, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    Families, IncrementalTiny,
    ::testing::Values(TinyCase{"gpt_neox_parallel", [] { return neox_model(true); }},
                      TinyCase{"gpt_neox_sequential", [] { return neox_model(false); }},
                      TinyCase{"opt", opt_model}),
    [](const auto& p) { return p.param.name; });

// ---------------------------------------------------------------------------------------------
// 4-bit GPTQ tiny-llama (quantized once per process, as the README's demo does)

const fs::path& quantized_tiny_llama() {
  static const fs::path dir = [] {
    const fs::path out = scratch_dir("q4") / "gptq-w4g128";
    QuantizeOptions o;
    o.quant.bits = 4;
    o.quant.group_size = 128;
    o.quant.damp_percent = 0.01;
    o.calib.file = fixture_data("calib.txt");
    o.calib.nsamples = 32;
    o.calib.seqlen = 256;
    o.quiet = true;
    quantize_model(fixture_model("tiny-llama"), out, o, [](const std::string&) {});
    return out;
  }();
  return dir;
}

// The fused GEMV (decode, rows = 1) and fused GEMM (prefill, full forward) paths of QuantLinear.
TEST(IncrementalQuantized, KernelDecodeMatchesFullForward) {
  for (const auto backend : {LinearBackend::kKernel, LinearBackend::kDequantized}) {
    const auto m = load_model(quantized_tiny_llama(), backend);
    const std::vector<int32_t> ids = eval_ids("tiny-llama", 48);
    const double err = incremental_vs_full(*m->model, ids, prefill_then_decode(9, 48));
    std::printf("[ tiny-llama 4-bit %s ] cached vs full logits: %.3g\n",
                backend == LinearBackend::kKernel ? "kernels" : "dequantized", err);
    EXPECT_LE(err, 1e-4);
  }
}

// ---------------------------------------------------------------------------------------------
// Greedy generation

GenerateOptions greedy(int64_t n) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0;
  return o;
}

// Greedy tokens by recomputing the whole sequence's logits at every step (no cache).
std::vector<int32_t> greedy_by_full_forward(const ModelForward& model, std::vector<int32_t> ids,
                                            int64_t n) {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<float> logits = model.logits(ids);
    const int32_t next =
        argmax_token(logits.data() + (ids.size() - 1) * model.vocab(), model.vocab());
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

TEST(Generate, GreedyEqualsFullForwardArgmax) {
  const auto m = load_model(fixture_model("tiny-llama"));
  const auto tok = Tokenizer::from_model_dir(m->dir);
  const std::vector<int32_t> prompt = tok->encode(kPrompt, true);
  const GenerateResult r = generate(*m->model, prompt, greedy(24));
  ASSERT_EQ(r.tokens.size(), 24u);
  EXPECT_FALSE(r.stopped_at_eos);
  EXPECT_EQ(r.prompt_tokens, static_cast<int64_t>(prompt.size()));
  EXPECT_EQ(r.decode_steps, 23);
  EXPECT_EQ(r.tokens, greedy_by_full_forward(*m->model, prompt, 24));
  std::printf("[ tiny-llama greedy ] %s|%s\n", kPrompt, tok->decode(r.tokens).c_str());
}

TEST(Generate, QuantizedGreedyStartsLikeFloat) {
  const auto fp = load_model(fixture_model("tiny-llama"));
  const auto q = load_model(quantized_tiny_llama(), LinearBackend::kKernel);
  const auto dq = load_model(quantized_tiny_llama(), LinearBackend::kDequantized);
  const auto tok = Tokenizer::from_model_dir(fp->dir);
  for (const char* text : {kPrompt, "In the beginning God created", "And it came to pass, when"}) {
    const std::vector<int32_t> prompt = tok->encode(text, true);
    const GenerateResult rf = generate(*fp->model, prompt, greedy(20));
    const GenerateResult rq = generate(*q->model, prompt, greedy(20));
    const GenerateResult rd = generate(*dq->model, prompt, greedy(20));
    std::printf("[ greedy ] float: %s|%s\n           4-bit: %s|%s\n", text,
                tok->decode(rf.tokens).c_str(), text, tok->decode(rq.tokens).c_str());
    ASSERT_GE(rq.tokens.size(), 3u);
    ASSERT_GE(rd.tokens.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(rq.tokens[i], rf.tokens[i]) << text << ": token " << i;
      EXPECT_EQ(rd.tokens[i], rf.tokens[i]) << text << ": token " << i;
    }
    for (int32_t id : rq.tokens) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, q->model->vocab());
    }
    // The text round-trips through the tokenizer.
    const std::string s = tok->decode(rq.tokens);
    EXPECT_EQ(tok->decode(tok->encode(s, false)), s);
  }
}

TEST(Generate, SamplingIsDeterministicForASeed) {
  const auto m = load_model(fixture_model("tiny-llama"));
  const auto tok = Tokenizer::from_model_dir(m->dir);
  const std::vector<int32_t> prompt = tok->encode(kPrompt, true);
  GenerateOptions o;
  o.max_new_tokens = 32;
  o.sampling = {0.8, 40, 0.95, 1};
  const GenerateResult a = generate(*m->model, prompt, o);
  const GenerateResult b = generate(*m->model, prompt, o);
  EXPECT_EQ(a.tokens, b.tokens);
  o.sampling.seed = 2;
  const GenerateResult c = generate(*m->model, prompt, o);
  EXPECT_NE(a.tokens, c.tokens);
}

TEST(Generate, StopsAtEosAndReportsIt) {
  const auto m = load_model(fixture_model("tiny-llama"));
  const auto tok = Tokenizer::from_model_dir(m->dir);
  const std::vector<int32_t> prompt = tok->encode(kPrompt, true);
  const GenerateResult all = generate(*m->model, prompt, greedy(8));
  GenerateOptions o = greedy(8);
  o.eos_ids = {all.tokens[3]};  // the 4th token plays the EOS
  std::vector<int32_t> streamed;
  const GenerateResult r =
      generate(*m->model, prompt, o, [&](int32_t id) { streamed.push_back(id); });
  EXPECT_TRUE(r.stopped_at_eos);
  const auto first = std::find(all.tokens.begin(), all.tokens.end(), all.tokens[3]);
  EXPECT_EQ(r.tokens, std::vector<int32_t>(all.tokens.begin(), first));
  EXPECT_EQ(streamed, r.tokens);
  EXPECT_TRUE(generate(*m->model, prompt, greedy(0)).tokens.empty());
  // tiny-llama: eos_token_id 4095 in generation_config.json, config.json and the tokenizer.
  EXPECT_EQ(eos_token_ids(m->config, tok->eos_id()), std::vector<int32_t>{4095});
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(GenerateErrors, PromptTooLongForTheContext) {
  const auto m = load_model(fixture_model("tiny-llama"));  // max_position_embeddings 512
  EXPECT_EQ(context_length(*m->model), 512);
  const std::vector<int32_t> prompt = eval_ids("tiny-llama", 500);
  try {
    generate(*m->model, prompt, greedy(13));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("500 tokens"), std::string::npos) << msg;
    EXPECT_NE(msg.find("512"), std::string::npos) << msg;
    EXPECT_NE(msg.find("at most 12"), std::string::npos) << msg;
  }
  EXPECT_EQ(generate(*m->model, prompt, greedy(12)).tokens.size(), 12u);  // exactly fits
  EXPECT_THROW(generate(*m->model, {}, greedy(4)), Error);
  EXPECT_THROW(generate(*m->model, {1, 2}, greedy(-1)), Error);
}

TEST(GenerateErrors, CacheOverflowAndMismatch) {
  const auto m = load_model(fixture_model("tiny-llama"));
  nn::KvCache cache = m->model->make_kv_cache(4);
  std::vector<float> x(static_cast<size_t>(8 * m->model->hidden()));
  const std::vector<int32_t> ids{10, 11, 12, 13, 14};
  EXPECT_THROW(m->model->forward_cached(ids.data(), 5, cache, x.data()), Error);
  EXPECT_EQ(cache.length(), 0);
  m->model->forward_cached(ids.data(), 4, cache, x.data());
  EXPECT_EQ(cache.length(), 4);
  cache.reserve(5);  // grows, keeping the cached rows
  m->model->forward_cached(ids.data() + 4, 1, cache, x.data());
  EXPECT_EQ(cache.length(), 5);
  nn::KvCache wrong(3, 16, 8);
  EXPECT_THROW(m->model->forward_cached(ids.data(), 1, wrong, x.data()), Error);
}

TEST(KvCache, ReserveKeepsRows) {
  nn::KvCache c(2, 3, 2);
  for (int64_t b = 0; b < 2; ++b) {
    const nn::KvBlockView v = c.block(b, 2);
    for (int64_t i = 0; i < 6; ++i) {
      v.keys[i] = static_cast<float>(100 * b + i);
      v.values[i] = static_cast<float>(-100 * b - i);
    }
  }
  c.advance(2);
  c.reserve(10);
  EXPECT_EQ(c.capacity(), 10);
  EXPECT_EQ(c.length(), 2);
  EXPECT_EQ(c.key(1, 1)[2], 105.0f);
  EXPECT_EQ(c.value(1, 0)[1], -101.0f);
  EXPECT_EQ(c.block(1, 8).past, 2);
  EXPECT_THROW(c.block(1, 9), Error);
  EXPECT_THROW(c.key(0, 2), Error);
}

// ---------------------------------------------------------------------------------------------
// Sampler

std::vector<int32_t> draws(Sampler& s, const std::vector<float>& logits, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(logits.data(), std::ssize(logits)));
  return out;
}

const std::vector<float> kLogits{1.0f, 3.0f, 2.5f, -1.0f, 3.0f, 0.0f};  // ids 1 and 4 tie

TEST(Sampler, GreedyAndTopKOneAreArgmax) {
  Sampler g({0.0, 40, 1.0, 0});
  EXPECT_TRUE(g.greedy());
  EXPECT_EQ(g.sample(kLogits.data(), 6), 1);  // the first maximum
  for (const double t : {0.1, 1.0, 5.0}) {
    Sampler k1({t, 1, 1.0, 123});
    for (int32_t id : draws(k1, kLogits, 50)) EXPECT_EQ(id, 1);
  }
  const std::vector<float> nan_first{NAN, 1.0f, 2.0f};
  EXPECT_EQ(argmax_token(nan_first.data(), 3), 2);
}

TEST(Sampler, DeterministicForASeed) {
  Sampler a({1.0, 0, 1.0, 42}), b({1.0, 0, 1.0, 42}), c({1.0, 0, 1.0, 43});
  const auto da = draws(a, kLogits, 200);
  EXPECT_EQ(da, draws(b, kLogits, 200));
  EXPECT_NE(da, draws(c, kLogits, 200));
}

TEST(Sampler, TopKTemperatureFrequencies) {
  // top-k 3 keeps ids 1, 4 (3.0) and 2 (2.5); p ~ exp(l / T) over them.
  for (const double t : {0.5, 1.0, 2.0}) {
    Sampler s({t, 3, 1.0, 7});
    const int n = 60000;
    std::map<int32_t, int> count;
    for (int32_t id : draws(s, kLogits, n)) ++count[id];
    EXPECT_EQ(count.size(), 3u);
    const double e3 = std::exp(3.0 / t), e25 = std::exp(2.5 / t), z = 2 * e3 + e25;
    for (const auto& [id, expected] :
         std::map<int32_t, double>{{1, e3 / z}, {4, e3 / z}, {2, e25 / z}})
      EXPECT_NEAR(count[id] / static_cast<double>(n), expected, 0.01) << "T " << t << " id " << id;
  }
  // Lower temperature concentrates the mass on the top.
  Sampler cold({0.05, 0, 1.0, 1});
  std::map<int32_t, int> count;
  for (int32_t id : draws(cold, kLogits, 2000)) ++count[id];
  EXPECT_EQ(count[1] + count[4], 2000);
}

TEST(Sampler, TopP) {
  const std::vector<float> l{std::log(0.2f), std::log(0.5f), std::log(0.3f)};
  auto support = [&](double p) {
    Sampler s({1.0, 0, p, 5});
    std::map<int32_t, int> count;
    for (int32_t id : draws(s, l, 3000)) ++count[id];
    std::vector<int32_t> ids;
    for (const auto& [id, c] : count) ids.push_back(id);
    return ids;
  };
  // Sorted: 0.5 (id 1), 0.3 (id 2), 0.2 (id 0); a token is kept while the mass before it < top_p.
  EXPECT_EQ(support(0.4), std::vector<int32_t>{1});
  EXPECT_EQ(support(0.6), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(support(0.75), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(support(0.85), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(support(1.0), (std::vector<int32_t>{0, 1, 2}));
}

TEST(Sampler, RejectsBadOptions) {
  for (const SamplerOptions& o : {SamplerOptions{-0.1, 40, 1.0, 0}, SamplerOptions{NAN, 40, 1.0, 0},
                                  SamplerOptions{1.0, -1, 1.0, 0}, SamplerOptions{1.0, 40, 0.0, 0},
                                  SamplerOptions{1.0, 40, 1.5, 0}}) {
    try {
      Sampler s(o);
      ADD_FAILURE() << "accepted temperature " << o.temperature << " top-k " << o.top_k << " top-p "
                    << o.top_p;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kUsage);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Streaming detokenization

TEST(TextStream, MultiByteCharactersComeOutWhole) {
  for (const char* fixture : {"tiny-llama", "tiny-gpt2"}) {
    const auto tok = Tokenizer::from_model_dir(fixture_model(fixture));
    const std::string text = " héllo — 日本語 “quoted” ✓ and the LORD";
    const std::vector<int32_t> prompt = tok->encode(kPrompt, true);
    const std::vector<int32_t> gen = tok->encode(text, false);
    TextStream stream(*tok, prompt);
    std::string out;
    for (int32_t id : gen) {
      const std::string piece = stream.push(id);
      EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << fixture << ": a broken char";
      out += piece;
    }
    out += stream.finish();
    EXPECT_EQ(out, text) << fixture;
    EXPECT_EQ(stream.text(), text) << fixture;
    EXPECT_GT(gen.size(), 20u);  // the characters are split into byte tokens
  }
}

}  // namespace
}  // namespace gptq
