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
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "calib/tokenizer.h"
#include "infer/generate.h"
#include "infer/load_model.h"
#include "infer/text_stream.h"
#include "kernels/quant_kernels.h"
#include "nn/kv_cache.h"
#include "nn/model_forward.h"
#include "nn/sampler.h"
#include "pipeline/quantize.h"
#include "support/family_models.h"
#include "support/fixtures.h"
#include "support/tiny_models.h"
#include "util/error.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using ::gptq::testing::family_config;
using ::gptq::testing::fixture_data;
using ::gptq::testing::fixture_model;
using ::gptq::testing::gpt2_model;
using ::gptq::testing::kMaxPos;
using ::gptq::testing::kVocab;
using ::gptq::testing::llama_like;
using ::gptq::testing::neox_model;
using ::gptq::testing::opt_model;
using ::gptq::testing::tiny_from_config;
using ::gptq::testing::read_file;
using ::gptq::testing::scratch_dir;
using ::gptq::testing::TinyModel;
using ::gptq::testing::write_tiny;
using json = nlohmann::json;

constexpr const char* kPrompt = "And the LORD said unto Moses,";

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
  TinyModel (*make)();
};

void PrintTo(const TinyCase& c, std::ostream* os) {
  *os << c.name;
}

class IncrementalTiny : public ::testing::TestWithParam<TinyCase> {};

TEST_P(IncrementalTiny, MatchesFullForward) {
  const fs::path dir = write_tiny(GetParam().make(), DType::F32, 7);
  const auto m = load_model(dir);
  const std::vector<int32_t> ids = random_ids(kMaxPos, kVocab, 3);  // the whole context
  const double decode_err = incremental_vs_full(*m->model, ids, prefill_then_decode(5, kMaxPos));
  const double chunk_err = incremental_vs_full(*m->model, ids, {1, 1, 30, 2, 30});
  std::printf("[ %s ] cached vs full logits: %.3g (decode), %.3g (chunks)\n",
              GetParam().name.c_str(), decode_err, chunk_err);
  EXPECT_LE(decode_err, 1e-4);
  EXPECT_LE(chunk_err, 1e-4);
}

// The families beyond the fixtures: GQA with 1 kv head (mistral), qkv biases (qwen2), OPT's
// learned positions with the offset of 2, GPT-NeoX's fused per-head qkv, partial rotary
// (rotary_pct 0.25) and parallel residual.
INSTANTIATE_TEST_SUITE_P(
    Families, IncrementalTiny,
    ::testing::Values(TinyCase{"mistral_mqa",
                               [] { return llama_like("mistral", 32, 4, 1, 8, false, true, 1e6); }},
                      TinyCase{"qwen2_bias",
                               [] { return llama_like("qwen2", 32, 4, 2, 8, true, true, 1e6); }},
                      TinyCase{"gpt2", [] { return gpt2_model(32, 4); }},
                      TinyCase{"opt", [] { return opt_model(32, 4); }},
                      TinyCase{"gpt_neox_parallel", [] { return neox_model(64, 4, true); }},
                      TinyCase{"gpt_neox_sequential", [] { return neox_model(64, 4, false); }}),
    [](const auto& p) { return p.param.name; });

// Today's families: the KV cache with sliding windows (window 8 < 64 positions), soft-capping,
// sandwich and q/k norms, fused qkv / gate_up, scaled RoPE. Length-dependent RoPE (dynamic NTK,
// longrope) is left out: there transformers itself gives the cached tokens other frequencies than
// a whole-sequence forward.
class IncrementalFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(IncrementalFamily, MatchesFullForward) {
  const fs::path dir = write_tiny(tiny_from_config(family_config(GetParam())), DType::F32, 7);
  const auto m = load_model(dir);
  const std::vector<int32_t> ids = random_ids(kMaxPos, kVocab, 3);
  const double decode_err = incremental_vs_full(*m->model, ids, prefill_then_decode(5, kMaxPos));
  const double chunk_err = incremental_vs_full(*m->model, ids, {1, 1, 30, 2, 30});
  std::printf("[ %s ] cached vs full logits: %.3g (decode), %.3g (chunks)\n", GetParam().c_str(),
              decode_err, chunk_err);
  EXPECT_LE(decode_err, 1e-4);
  EXPECT_LE(chunk_err, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Families, IncrementalFamily,
                         ::testing::Values("llama3", "llama_yarn", "mistral_sliding", "qwen3", "gemma",
                                           "gemma2", "gemma3_text", "starcoder2", "gemma3", "qwen2_5_vl"),
                         [](const auto& p) { return p.param; });

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

// Int8 activations (LoadParams::int8_activations): batches of rows through the int8 GEMM, close
// to the exact kernels (8-bit activation rounding), one row (decode) exactly as before.
TEST(IncrementalQuantized, Int8ActivationsCloseToExactAndDecodeUnchanged) {
  const auto exact = load_model(quantized_tiny_llama(), LinearBackend::kKernel);
  const auto int8 = load_model(quantized_tiny_llama(), LinearBackend::kKernelInt8);
  const std::vector<int32_t> ids = eval_ids("tiny-llama", 48);
  const std::vector<float> a = exact->model->logits(ids), b = int8->model->logits(ids);
  ASSERT_EQ(a.size(), b.size());
  const int64_t vocab = exact->model->vocab();
  double kl = 0.0, worst = 0.0;
  int top1 = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    const float* p = a.data() + t * vocab;
    const float* q = b.data() + t * vocab;
    const float pm = *std::max_element(p, p + vocab), qm = *std::max_element(q, q + vocab);
    double zp = 0.0, zq = 0.0;
    for (int64_t v = 0; v < vocab; ++v) {
      zp += std::exp(double(p[v]) - pm);
      zq += std::exp(double(q[v]) - qm);
      worst = std::max(worst, std::abs(double(p[v]) - q[v]));
    }
    for (int64_t v = 0; v < vocab; ++v) {
      const double lp = p[v] - pm - std::log(zp), lq = q[v] - qm - std::log(zq);
      kl += std::exp(lp) * (lp - lq);
    }
    top1 += std::max_element(p, p + vocab) - p == std::max_element(q, q + vocab) - q;
  }
  kl /= static_cast<double>(ids.size());
  std::printf("[ int8 activations ] KL to exact %.3g, max |logit diff| %.3g, top-1 %d/%zu (%s)\n",
              kl, worst, top1, ids.size(), kernels::dispatch_target_name());
  EXPECT_LT(kl, 5e-3);
  EXPECT_GE(top1, static_cast<int>(ids.size()) - 3);
  if (kernels::int8_kernels(4)) {
    EXPECT_GT(worst, 0.0);  // the int8 GEMM ran
  } else {
    EXPECT_EQ(a, b);  // no int8 kernels here: the exact ones
  }
  // One row (decode) takes the exact GEMV either way.
  const std::vector<int32_t> one(ids.begin(), ids.begin() + 1);
  EXPECT_EQ(exact->model->logits(one), int8->model->logits(one));
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
  const Generation r = generate(*m->model, prompt, greedy(24));
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
    const Generation rf = generate(*fp->model, prompt, greedy(20));
    const Generation rq = generate(*q->model, prompt, greedy(20));
    const Generation rd = generate(*dq->model, prompt, greedy(20));
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
  const Generation a = generate(*m->model, prompt, o);
  const Generation b = generate(*m->model, prompt, o);
  EXPECT_EQ(a.tokens, b.tokens);
  o.sampling.seed = 2;
  const Generation c = generate(*m->model, prompt, o);
  EXPECT_NE(a.tokens, c.tokens);
}

TEST(Generate, StopsAtEosAndReportsIt) {
  const auto m = load_model(fixture_model("tiny-llama"));
  const auto tok = Tokenizer::from_model_dir(m->dir);
  const std::vector<int32_t> prompt = tok->encode(kPrompt, true);
  const Generation all = generate(*m->model, prompt, greedy(8));
  GenerateOptions o = greedy(8);
  o.eos_ids = {all.tokens[3]};  // the 4th token plays the EOS
  std::vector<int32_t> streamed;
  const Generation r =
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
