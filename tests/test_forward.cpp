// fp32 forward pass and evaluation: the bundled fixtures against their transformers references
// (logits of the first positions, perplexity), random tiny checkpoints of every architecture
// against a plain-loop reference written here, the staged block API, and the KL / top-1 math.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/model_config.h"
#include "nn/block_forward.h"
#include "nn/dense_linear.h"
#include "nn/eval.h"
#include "nn/half_linear.h"
#include "nn/model_forward.h"
#include "nn/rotary.h"
#include "support/fixtures.h"
#include "support/tiny_models.h"
#include "util/blas.h"
#include "util/error.h"
#include "util/fp16.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using ::gptq::testing::eval_ids;
using ::gptq::testing::fixture_model;
using ::gptq::testing::read_file;
using ::gptq::testing::scratch_dir;
using json = nlohmann::json;
using namespace ::gptq::testing;  // tiny random checkpoints

// ---------------------------------------------------------------------------------------------
// Fixtures

json reference_json(const std::string& model, const std::string& file) {
  return json::parse(read_file(fixture_model(model) / "reference" / file));
}

struct Loaded {
  ModelConfig config;
  TensorStore store;
  explicit Loaded(const fs::path& dir)
      : config(ModelConfig::load(dir)), store(TensorStore::open(dir)) {}
};

class FixtureLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureLogits, FirstPositionsMatchTransformers) {
  const std::string name = GetParam();
  Loaded m(fixture_model(name));
  ModelForward model(m.config, m.store);
  const json ref = reference_json(name, "logits_head.json");
  const auto ref_ids = ref.at("input_ids").get<std::vector<int32_t>>();
  std::vector<int32_t> ids = eval_ids(name);
  ASSERT_GE(ids.size(), 256u);
  ids.resize(256);  // the whole first window runs; positions 0..7 are compared
  for (size_t i = 0; i < ref_ids.size(); ++i) ASSERT_EQ(ids[i], ref_ids[i]);
  const std::vector<float> logits = model.logits(ids);
  const auto rows = ref.at("logits").get<std::vector<std::vector<float>>>();
  ASSERT_EQ(static_cast<int64_t>(rows[0].size()), model.vocab());
  double max_err = 0;
  for (size_t t = 0; t < rows.size(); ++t)
    for (size_t v = 0; v < rows[t].size(); ++v)
      max_err = std::max(max_err,
                         std::abs(static_cast<double>(logits[t * model.vocab() + v]) - rows[t][v]));
  std::printf("[ %s ] logits positions 0..%zu: max abs error %.3g\n", name.c_str(), rows.size() - 1,
              max_err);
  EXPECT_LE(max_err, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureLogits,
                         ::testing::Values("tiny-llama", "tiny-llama-sharded", "tiny-gpt2",
                                           "tiny-llama-outliers"),
                         [](const auto& p) {
                           std::string s = p.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

class FixturePerplexity : public ::testing::TestWithParam<std::string> {};

// All 156 windows as in expected.json, and the first 40 as in quality.json (same run).
TEST_P(FixturePerplexity, MatchesReference) {
  const std::string name = GetParam();
  Loaded m(fixture_model(name));
  ModelForward model(m.config, m.store);
  const json expected = reference_json(name, "expected.json");
  const json quality = reference_json(name, "quality.json");
  EvalOptions opt;
  opt.seqlen = expected.at("protocol").at("seqlen").get<int64_t>();
  const PerplexityResult r = evaluate_perplexity(model, eval_ids(name), opt);
  EXPECT_EQ(r.windows, expected.at("n_windows").get<int64_t>());
  EXPECT_EQ(r.predictions, expected.at("n_predicted_tokens").get<int64_t>());
  const double ref_ppl = expected.at("fp").at("ppl").get<double>();
  const PerplexityResult r40 = r.first_windows(40);
  const double ref40 = quality.at("fp_ppl").get<double>();
  std::printf(
      "[ %s ] fp ppl %.6f (reference %.6f, rel %.2g); first 40 windows %.6f (reference "
      "%.6f, rel %.2g)\n",
      name.c_str(), r.ppl, ref_ppl, std::abs(r.ppl / ref_ppl - 1), r40.ppl, ref40,
      std::abs(r40.ppl / ref40 - 1));
  EXPECT_NEAR(r.ppl / ref_ppl, 1.0, 1e-4);
  EXPECT_NEAR(r.mean_nll, expected.at("fp").at("mean_nll").get<double>(), 1e-4);
  EXPECT_EQ(r40.windows, 40);
  EXPECT_NEAR(r40.ppl / ref40, 1.0, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixturePerplexity,
                         ::testing::Values("tiny-llama", "tiny-gpt2", "tiny-llama-outliers"),
                         [](const auto& p) {
                           std::string s = p.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

// The sharded copy, streamed block by block (blocks on demand) with max_windows = 40.
TEST(FixturePerplexityStreaming, ShardedFirst40Windows) {
  Loaded m(fixture_model("tiny-llama-sharded"));
  ModelForwardOptions mo;
  mo.load_blocks = false;
  ModelForward model(m.config, m.store, mo);
  EXPECT_FALSE(model.blocks_resident());
  EvalOptions opt;
  opt.max_windows = 40;
  int64_t last_progress = 0;
  opt.progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 40);
    last_progress = done;
  };
  const PerplexityResult r = evaluate_perplexity(model, eval_ids("tiny-llama-sharded"), opt);
  EXPECT_EQ(r.windows, 40);
  EXPECT_EQ(last_progress, 40);
  const double ref =
      reference_json("tiny-llama-sharded", "quality.json").at("fp_ppl").get<double>();
  EXPECT_NEAR(r.ppl / ref, 1.0, 1e-4);
}

// ---------------------------------------------------------------------------------------------
// KL divergence and top-1 agreement

TEST(EvalMath, RowFunctions) {
  const float l[3] = {1.0f, 2.0f, 3.0f};
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(log_sum_exp(l, 3), lse, 1e-6);  // float exp (1 ULP), double sums
  EXPECT_NEAR(token_nll(l, 3, 0), lse - 1.0, 1e-6);
  const float big[2] = {1000.0f, 1000.0f};  // no overflow
  EXPECT_NEAR(log_sum_exp(big, 2), 1000.0 + std::log(2.0), 1e-6);
  EXPECT_EQ(argmax(l, 3), 2);
  const float tie[3] = {5.0f, 5.0f, 1.0f};
  EXPECT_EQ(argmax(tie, 3), 0);  // first maximum, as torch.argmax
  const float m[3] = {3.0f, 2.0f, 1.0f};
  double kl = 0;
  const double lse_m = log_sum_exp(m, 3);
  for (int v = 0; v < 3; ++v) {
    const double pb = std::exp(l[v] - lse), pm = std::exp(m[v] - lse_m);
    kl += pb * std::log(pb / pm);
  }
  EXPECT_NEAR(kl_divergence(l, m, 3), kl, 1e-6);
  EXPECT_EQ(kl_divergence(l, l, 3), 0.0);
  EXPECT_THROW(token_nll(l, 3, 3), Error);
}

TEST(EvalCompare, SelfIsZeroPerturbedIsPositive) {
  Loaded m(fixture_model("tiny-llama"));
  ModelForward base(m.config, m.store);
  ModelForward other(m.config, m.store);
  const std::vector<int32_t> ids = eval_ids("tiny-llama");
  EvalOptions opt;
  opt.max_windows = 3;
  const ComparisonResult self = compare_models(base, other, ids, opt);
  EXPECT_EQ(self.predictions, 3 * 255);
  EXPECT_NEAR(self.mean_kl, 0.0, 1e-9);
  EXPECT_EQ(self.top1_agreement, 1.0);
  EXPECT_EQ(self.base.ppl, self.model.ppl);
  EXPECT_EQ(self.model.ppl, evaluate_perplexity(base, ids, opt).ppl);

  // Perturb one weight of block 0 by 10%.
  BlockForward& b = other.block(0);
  std::vector<float> w = b.weight("mlp.down_proj");
  for (float& x : w) x *= 1.1f;
  b.set_weight("mlp.down_proj", std::move(w));
  const ComparisonResult pert = compare_models(base, other, ids, opt);
  std::printf("[ tiny-llama ] perturbed down_proj(0) x1.1: KL %.3g, top-1 %.4f, ppl %.4f vs %.4f\n",
              pert.mean_kl, pert.top1_agreement, pert.model.ppl, pert.base.ppl);
  EXPECT_GT(pert.mean_kl, 1e-7);
  EXPECT_LE(pert.top1_agreement, 1.0);
  EXPECT_GT(pert.top1_agreement, 0.5);
  EXPECT_NE(pert.model.ppl, pert.base.ppl);
  EXPECT_EQ(pert.base.ppl, self.base.ppl);
}

// ---------------------------------------------------------------------------------------------
// Random tiny checkpoints of each architecture

// ---- The reference: plain loops in double, one code path per family, straight from the
// transformers modeling files. ----

using Vec = std::vector<double>;

class RefModel {
 public:
  RefModel(const TinyModel& m, const TensorStore& store) : fam_(m.family), cfg_(m.config) {
    for (const auto& name : store.names()) {
      const std::vector<float> f = tensor_to_f32(store.get(name));
      w_[name] = Vec(f.begin(), f.end());
    }
    if (fam_ == "gpt2") {
      hidden_ = cfg_["n_embd"];
      heads_ = cfg_["n_head"];
      layers_ = cfg_["n_layer"];
    } else {
      hidden_ = cfg_["hidden_size"];
      heads_ = cfg_["num_attention_heads"];
      layers_ = cfg_["num_hidden_layers"];
    }
    kv_ = cfg_.value("num_key_value_heads", heads_);
    hd_ = cfg_.value("head_dim", hidden_ / heads_);
  }

  // Replaces the weight of `full` (a module path) by the math matrix w [n, k].
  void set_linear(const std::string& full, const std::vector<float>& w, int64_t n, int64_t k) {
    Vec& dst = w_.at(full + ".weight");
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j)
        (fam_ == "gpt2" ? dst[j * n + i] : dst[i * k + j]) = w[i * k + j];
  }

  Vec block(int64_t i, Vec x, int64_t T) const {
    if (fam_ == "llama") return llama_block(i, std::move(x), T);
    if (fam_ == "gpt2") return gpt2_block(i, std::move(x), T);
    if (fam_ == "opt") return opt_block(i, std::move(x), T);
    return neox_block(i, std::move(x), T);
  }

  Vec logits(const std::vector<int32_t>& ids) const {
    const int64_t T = static_cast<int64_t>(ids.size()), d = hidden_;
    std::string embed, pos, norm, head;
    int64_t offset = 0;
    if (fam_ == "llama") {
      embed = "model.embed_tokens.weight", norm = "model.norm";
      head = w_.count("lm_head.weight") ? "lm_head.weight" : embed;
    } else if (fam_ == "gpt2") {
      embed = "transformer.wte.weight", pos = "transformer.wpe.weight", norm = "transformer.ln_f";
      head = embed;
    } else if (fam_ == "opt") {
      embed = "model.decoder.embed_tokens.weight", pos = "model.decoder.embed_positions.weight";
      norm = "model.decoder.final_layer_norm", head = embed, offset = 2;
    } else {
      embed = "gpt_neox.embed_in.weight", norm = "gpt_neox.final_layer_norm";
      head = "embed_out.weight";
    }
    Vec x(T * d);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < d; ++j)
        x[t * d + j] =
            W(embed)[ids[t] * d + j] + (pos.empty() ? 0.0 : W(pos)[(t + offset) * d + j]);
    for (int64_t i = 0; i < layers_; ++i) x = block(i, std::move(x), T);
    x = fam_ == "llama" ? rms(x, T, norm) : ln(x, T, norm);
    Vec out(T * kVocab, 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t v = 0; v < kVocab; ++v)
        for (int64_t j = 0; j < d; ++j) out[t * kVocab + v] += x[t * d + j] * W(head)[v * d + j];
    return out;
  }

 private:
  const Vec& W(const std::string& n) const { return w_.at(n); }
  bool has(const std::string& n) const { return w_.count(n) > 0; }

  // nn.Linear: y = x W^T + b, W [n, k].
  Vec linear(const Vec& x, int64_t T, const std::string& mod) const {
    const Vec& w = W(mod + ".weight");
    const int64_t k = static_cast<int64_t>(x.size()) / T, n = static_cast<int64_t>(w.size()) / k;
    Vec y(T * n, 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < n; ++j) {
        double s = has(mod + ".bias") ? W(mod + ".bias")[j] : 0.0;
        for (int64_t c = 0; c < k; ++c) s += x[t * k + c] * w[j * k + c];
        y[t * n + j] = s;
      }
    return y;
  }
  // GPT-2 Conv1D: y = x W + b, W [k, n].
  Vec conv1d(const Vec& x, int64_t T, const std::string& mod) const {
    const Vec& w = W(mod + ".weight");
    const int64_t k = static_cast<int64_t>(x.size()) / T, n = static_cast<int64_t>(w.size()) / k;
    Vec y(T * n, 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < n; ++j) {
        double s = W(mod + ".bias")[j];
        for (int64_t c = 0; c < k; ++c) s += x[t * k + c] * w[c * n + j];
        y[t * n + j] = s;
      }
    return y;
  }
  Vec rms(const Vec& x, int64_t T, const std::string& mod) const {
    const double eps = cfg_.value("rms_norm_eps", 1e-6);
    const int64_t d = hidden_;
    Vec y(x.size());
    for (int64_t t = 0; t < T; ++t) {
      double ss = 0;
      for (int64_t j = 0; j < d; ++j) ss += x[t * d + j] * x[t * d + j];
      const double r = 1.0 / std::sqrt(ss / d + eps);
      for (int64_t j = 0; j < d; ++j) y[t * d + j] = x[t * d + j] * r * W(mod + ".weight")[j];
    }
    return y;
  }
  Vec ln(const Vec& x, int64_t T, const std::string& mod) const {
    const double eps = cfg_.value("layer_norm_epsilon", cfg_.value("layer_norm_eps", 1e-5));
    const int64_t d = hidden_;
    Vec y(x.size());
    for (int64_t t = 0; t < T; ++t) {
      double mean = 0, var = 0;
      for (int64_t j = 0; j < d; ++j) mean += x[t * d + j];
      mean /= d;
      for (int64_t j = 0; j < d; ++j) var += (x[t * d + j] - mean) * (x[t * d + j] - mean);
      var /= d;
      for (int64_t j = 0; j < d; ++j)
        y[t * d + j] = (x[t * d + j] - mean) / std::sqrt(var + eps) * W(mod + ".weight")[j] +
                       W(mod + ".bias")[j];
    }
    return y;
  }
  // rotate_half RoPE on the first `rot` dims of one head vector at position `pos`.
  static void rope(double* v, int64_t rot, int64_t pos, double theta) {
    const int64_t half = rot / 2;
    Vec emb(rot), rotated(rot), orig(v, v + rot);
    for (int64_t j = 0; j < rot; ++j) {
      emb[j] = pos / std::pow(theta, 2.0 * (j % half) / rot);    // cat(freqs, freqs)
      rotated[j] = j < half ? -orig[j + half] : orig[j - half];  // cat(-x2, x1)
    }
    for (int64_t j = 0; j < rot; ++j)
      v[j] = orig[j] * std::cos(emb[j]) + rotated[j] * std::sin(emb[j]);
  }
  // q [T, H, hd], k/v [T, KV, hd] (contiguous) -> [T, H * hd]; explicit causal softmax.
  Vec attention(const Vec& q, const Vec& k, const Vec& v, int64_t T, double scale) const {
    const int64_t H = heads_, KV = kv_, hd = hd_;
    Vec out(T * H * hd, 0.0);
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / (H / KV);
      for (int64_t i = 0; i < T; ++i) {
        Vec s(i + 1);
        double mx = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < hd; ++c)
            dot += q[(i * H + h) * hd + c] * k[(j * KV + g) * hd + c];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= i; ++j)
          for (int64_t c = 0; c < hd; ++c)
            out[(i * H + h) * hd + c] += s[j] / sum * v[(j * KV + g) * hd + c];
      }
    }
    return out;
  }
  static void add(Vec& x, const Vec& y) {
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
  }

  Vec llama_block(int64_t i, Vec x, int64_t T) const {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const double theta = cfg_.value("rope_theta", 10000.0);
    Vec h = rms(x, T, p + "input_layernorm");
    Vec q = linear(h, T, p + "self_attn.q_proj"), k = linear(h, T, p + "self_attn.k_proj"),
        v = linear(h, T, p + "self_attn.v_proj");
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t hh = 0; hh < heads_; ++hh) rope(&q[(t * heads_ + hh) * hd_], hd_, t, theta);
      for (int64_t hh = 0; hh < kv_; ++hh) rope(&k[(t * kv_ + hh) * hd_], hd_, t, theta);
    }
    add(x, linear(attention(q, k, v, T, 1.0 / std::sqrt(static_cast<double>(hd_))), T,
                  p + "self_attn.o_proj"));
    h = rms(x, T, p + "post_attention_layernorm");
    Vec g = linear(h, T, p + "mlp.gate_proj");
    const Vec u = linear(h, T, p + "mlp.up_proj");
    for (size_t j = 0; j < g.size(); ++j) g[j] = g[j] / (1.0 + std::exp(-g[j])) * u[j];
    add(x, linear(g, T, p + "mlp.down_proj"));
    return x;
  }

  Vec gpt2_block(int64_t i, Vec x, int64_t T) const {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    const int64_t d = hidden_;
    const Vec qkv = conv1d(ln(x, T, p + "ln_1"), T, p + "attn.c_attn");
    Vec q(T * d), k(T * d), v(T * d);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < d; ++j) {
        q[t * d + j] = qkv[t * 3 * d + j];
        k[t * d + j] = qkv[t * 3 * d + d + j];
        v[t * d + j] = qkv[t * 3 * d + 2 * d + j];
      }
    add(x, conv1d(attention(q, k, v, T, 1.0 / std::sqrt(static_cast<double>(hd_))), T,
                  p + "attn.c_proj"));
    Vec f = conv1d(ln(x, T, p + "ln_2"), T, p + "mlp.c_fc");
    for (double& e : f)
      e = 0.5 * e *
          (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (e + 0.044715 * e * e * e)));
    add(x, conv1d(f, T, p + "mlp.c_proj"));
    return x;
  }

  Vec opt_block(int64_t i, Vec x, int64_t T) const {
    const std::string p = "model.decoder.layers." + std::to_string(i) + ".";
    const Vec h = ln(x, T, p + "self_attn_layer_norm");
    Vec q = linear(h, T, p + "self_attn.q_proj");
    for (double& e : q) e *= 1.0 / std::sqrt(static_cast<double>(hd_));  // OPT scales q
    add(x, linear(attention(q, linear(h, T, p + "self_attn.k_proj"),
                            linear(h, T, p + "self_attn.v_proj"), T, 1.0),
                  T, p + "self_attn.out_proj"));
    Vec f = linear(ln(x, T, p + "final_layer_norm"), T, p + "fc1");
    for (double& e : f) e = std::max(e, 0.0);
    add(x, linear(f, T, p + "fc2"));
    return x;
  }

  Vec neox_block(int64_t i, Vec x, int64_t T) const {
    const std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
    const int64_t H = heads_, hd = hd_;
    const auto rot = static_cast<int64_t>(hd * cfg_.value("rotary_pct", 0.25));
    const double theta = cfg_.value("rotary_emb_base", 10000.0);
    const Vec qkv = linear(ln(x, T, p + "input_layernorm"), T, p + "attention.query_key_value");
    Vec q(T * H * hd), k(T * H * hd), v(T * H * hd);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t c = 0; c < hd; ++c) {  // view [T, H, 3 * hd]
          q[(t * H + h) * hd + c] = qkv[t * 3 * H * hd + h * 3 * hd + c];
          k[(t * H + h) * hd + c] = qkv[t * 3 * H * hd + h * 3 * hd + hd + c];
          v[(t * H + h) * hd + c] = qkv[t * 3 * H * hd + h * 3 * hd + 2 * hd + c];
        }
        rope(&q[(t * H + h) * hd], rot, t, theta);
        rope(&k[(t * H + h) * hd], rot, t, theta);
      }
    const Vec a = linear(attention(q, k, v, T, 1.0 / std::sqrt(static_cast<double>(hd))), T,
                         p + "attention.dense");
    auto mlp = [&](const Vec& in) {
      Vec f = linear(ln(in, T, p + "post_attention_layernorm"), T, p + "mlp.dense_h_to_4h");
      for (double& e : f) e = 0.5 * e * (1.0 + std::erf(e / std::sqrt(2.0)));
      return linear(f, T, p + "mlp.dense_4h_to_h");
    };
    if (cfg_.value("use_parallel_residual", true)) {
      const Vec m = mlp(x);
      add(x, a);
      add(x, m);
    } else {
      add(x, a);
      add(x, mlp(x));
    }
    return x;
  }

  std::string fam_;
  json cfg_;
  std::map<std::string, Vec> w_;
  int64_t hidden_ = 0, heads_ = 0, kv_ = 0, hd_ = 0, layers_ = 0;
};

double max_abs(const Vec& v) {
  double m = 0;
  for (double e : v) m = std::max(m, std::abs(e));
  return m;
}

template <typename A>
double max_diff(const A& got, const Vec& ref) {
  double m = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    m = std::max(m, std::abs(static_cast<double>(got[i]) - ref[i]));
  return m;
}

struct TinyCase {
  std::string name;
  std::function<TinyModel()> make;
  DType dtype;
};
void PrintTo(const TinyCase& c, std::ostream* os) {
  *os << c.name;
}

class TinyArch : public ::testing::TestWithParam<TinyCase> {
 protected:
  void SetUp() override {
    model_ = GetParam().make();
    dir_ = write_tiny(model_, GetParam().dtype, 1234);
    config_ = ModelConfig::load(dir_);
    store_ = std::make_unique<TensorStore>(TensorStore::open(dir_));
    ref_ = std::make_unique<RefModel>(model_, *store_);
  }
  Vec random_input(int64_t T, uint32_t seed) const {
    std::mt19937 rng(seed);
    std::normal_distribution<double> nd(0.0, 1.0);
    Vec x(T * config_.hp.hidden);
    for (double& e : x) e = static_cast<float>(nd(rng));  // representable in float
    return x;
  }
  std::vector<int32_t> random_ids(int64_t n, uint32_t seed) const {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int32_t> u(0, kVocab - 1);
    std::vector<int32_t> ids(n);
    for (auto& e : ids) e = u(rng);
    return ids;
  }

  TinyModel model_;
  fs::path dir_;
  ModelConfig config_;
  std::unique_ptr<TensorStore> store_;
  std::unique_ptr<RefModel> ref_;
};

constexpr int64_t kT = 11;

TEST_P(TinyArch, BlockMatchesReference) {
  for (int64_t i = 0; i < kLayers; ++i) {
    BlockForward block(config_, *store_, i);
    const Vec x = random_input(kT, 7 + i);
    std::vector<float> xf(x.begin(), x.end());
    block.forward(xf.data(), kT);
    const Vec ref = ref_->block(i, x, kT);
    const double err = max_diff(xf, ref), scale = std::max(1.0, max_abs(ref));
    EXPECT_LE(err, 1e-4 * scale) << "block " << i << " max abs diff " << err;
  }
}

TEST_P(TinyArch, StagedEqualsForwardAndGroupWidths) {
  BlockForward block(config_, *store_, 1);
  const Vec x = random_input(kT, 3);
  std::vector<float> xf(x.begin(), x.end());
  SequenceState st;
  st.tokens = kT;
  st.resid = xf;
  std::vector<std::string> all;
  for (int g = 0; g < kNumLinearGroups; ++g) {
    const auto group = static_cast<LinearGroup>(g);
    block.run_stage(group, st);
    ASSERT_FALSE(block.group_linears(group).empty());
    for (const auto& name : block.group_linears(group)) {
      EXPECT_EQ(block.group_of(name), group);
      const int64_t k = block.linear(name).in_features();
      EXPECT_EQ(st.h.size(), static_cast<size_t>(kT * k)) << name;
      EXPECT_EQ(block.weight(name).size(),
                static_cast<size_t>(k * block.linear(name).out_features()));
      all.push_back(name);
    }
  }
  block.finish(st);
  EXPECT_EQ(all.size(), block.linears().size());
  block.forward(xf.data(), kT);
  ASSERT_EQ(st.resid.size(), xf.size());
  for (size_t j = 0; j < xf.size(); ++j) ASSERT_EQ(st.resid[j], xf[j]) << j;
  EXPECT_THROW(block.group_of("no.such_linear"), Error);
}

// Several sequences as one state (SequenceState::segments): each sequence's rows are the block
// output of that sequence alone (the reference), with rotary positions and causal attention
// restarting at each one; a second sequence must not see the first (a leak through attention
// would move its rows far beyond the tolerance).
TEST_P(TinyArch, BatchedSequencesMatchOneByOne) {
  const std::vector<int64_t> lengths = {kT, 5, 7};
  for (int64_t i = 0; i < kLayers; ++i) {
    BlockForward block(config_, *store_, i);
    SequenceState batch;
    std::vector<Vec> inputs;
    for (size_t s = 0; s < lengths.size(); ++s) {
      inputs.push_back(random_input(lengths[s], static_cast<uint32_t>(40 + 3 * s + i)));
      batch.resid.insert(batch.resid.end(), inputs.back().begin(), inputs.back().end());
      batch.segments.push_back(lengths[s]);
      batch.tokens += lengths[s];
    }
    block.forward(batch);
    int64_t r0 = 0;
    for (size_t s = 0; s < lengths.size(); ++s) {
      const int64_t len = lengths[s];
      std::vector<float> alone(inputs[s].begin(), inputs[s].end());
      block.forward(alone.data(), len);
      const std::vector<float> rows(batch.resid.begin() + r0 * config_.hp.hidden,
                                    batch.resid.begin() + (r0 + len) * config_.hp.hidden);
      const Vec ref = ref_->block(i, inputs[s], len);
      const double scale = std::max(1.0, max_abs(ref));
      EXPECT_LE(max_diff(rows, ref), 1e-4 * scale) << "block " << i << " sequence " << s;
      Vec alone_d(alone.begin(), alone.end());
      EXPECT_LE(max_diff(rows, alone_d), 1e-5 * scale) << "block " << i << " sequence " << s;
      r0 += len;
    }
  }
  // Segments that do not add up to the tokens are refused.
  BlockForward block(config_, *store_, 0);
  SequenceState bad;
  const Vec x = random_input(kT, 9);
  bad.resid.assign(x.begin(), x.end());
  bad.tokens = kT;
  bad.segments = {4, 4};
  EXPECT_THROW(block.forward(bad), Error);
}

TEST_P(TinyArch, SetWeightChangesOutput) {
  BlockForward block(config_, *store_, 0);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  // One linear of each group gets a perturbed weight; the reference gets the same.
  for (int g = 0; g < kNumLinearGroups; ++g) {
    const std::string name = block.group_linears(static_cast<LinearGroup>(g)).front();
    std::vector<float> w = block.weight(name);
    for (float& e : w) e += nd(rng);
    const LinearOp& op = block.linear(name);
    ref_->set_linear(block.prefix() + name, w, op.out_features(), op.in_features());
    block.set_weight(name, w);
    EXPECT_EQ(block.weight(name), w);
  }
  const Vec x = random_input(kT, 11);
  std::vector<float> xf(x.begin(), x.end());
  block.forward(xf.data(), kT);
  const Vec ref = ref_->block(0, x, kT);
  EXPECT_LE(max_diff(xf, ref), 1e-4 * std::max(1.0, max_abs(ref)));
  EXPECT_THROW(block.set_weight(block.linears().front(), std::vector<float>(3)), Error);
}

TEST_P(TinyArch, ModelLogitsMatchReference) {
  ModelForward model(config_, *store_);
  const std::vector<int32_t> ids = random_ids(kT, 17);
  const std::vector<float> logits = model.logits(ids);
  const Vec ref = ref_->logits(ids);
  ASSERT_EQ(logits.size(), ref.size());
  const double err = max_diff(logits, ref), scale = std::max(1.0, max_abs(ref));
  EXPECT_LE(err, 1e-4 * scale) << "max abs diff " << err << " scale " << scale;
}

TEST_P(TinyArch, PerplexityFiniteAndStreamingIdentical) {
  ModelForward resident(config_, *store_);
  ModelForwardOptions mo;
  mo.load_blocks = false;
  ModelForward streamed(config_, *store_, mo);
  const std::vector<int32_t> ids = random_ids(3 * kT + 5, 23);
  EvalOptions opt;
  opt.seqlen = kT;
  const PerplexityResult a = evaluate_perplexity(resident, ids, opt);
  const PerplexityResult b = evaluate_perplexity(streamed, ids, opt);
  EXPECT_EQ(a.windows, 3);
  EXPECT_EQ(a.predictions, 3 * (kT - 1));
  EXPECT_TRUE(std::isfinite(a.ppl));
  EXPECT_GT(a.ppl, 1.0);
  EXPECT_EQ(a.ppl, b.ppl);
  // A custom provider (here: blocks with perturbed weights) is used block by block.
  int64_t provided = 0;
  streamed.set_block_provider([&](int64_t i) {
    ++provided;
    auto blk = streamed.load_block(i);
    const std::string name = blk->linears().back();
    std::vector<float> w = blk->weight(name);
    for (float& e : w) e *= 0.5f;
    blk->set_weight(name, std::move(w));
    return blk;
  });
  const ComparisonResult c = compare_models(resident, streamed, ids, opt);
  EXPECT_EQ(provided, kLayers);  // all windows in one pass: each block built once
  EXPECT_GT(c.mean_kl, 0.0);
  EXPECT_EQ(c.base.ppl, a.ppl);
}

// Linears given from outside (the inference path: a quantized checkpoint has no fp32 weights).
TEST_P(TinyArch, SetLinearReplacesDense) {
  struct Wrapped : LinearOp {
    std::vector<float> w, b;
    int64_t n, k;
    int64_t in_features() const override { return k; }
    int64_t out_features() const override { return n; }
    void forward(const float* x, int64_t rows, float* y) const override {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < n; ++j) {
          double acc = b.empty() ? 0.0 : b[j];
          for (int64_t c = 0; c < k; ++c) acc += static_cast<double>(x[r * k + c]) * w[j * k + c];
          y[r * n + j] = static_cast<float>(acc);
        }
    }
  };
  const BlockForward dense(config_, *store_, 1);
  BlockOptions o;
  o.load_linears = false;
  BlockForward custom(config_, *store_, 1, o);
  for (const auto& name : custom.linears()) {
    EXPECT_THROW(custom.weight(name), Error);
    EXPECT_EQ(custom.bias(name), dense.bias(name));
    auto op = std::make_unique<Wrapped>();
    op->w = dense.weight(name);
    op->b = dense.bias(name);
    op->n = dense.linear(name).out_features();
    op->k = dense.linear(name).in_features();
    custom.set_linear(name, std::move(op));
  }
  EXPECT_THROW(custom.set_linear(custom.linears().front(), nullptr), Error);
  const Vec x = random_input(kT, 31);
  std::vector<float> a(x.begin(), x.end()), b = a;
  dense.forward(a.data(), kT);
  custom.forward(b.data(), kT);
  double err = 0;
  for (size_t j = 0; j < a.size(); ++j) err = std::max(err, std::abs(double{a[j]} - b[j]));
  EXPECT_LE(err, 1e-4);
  // set_weight turns a replaced linear back into a dense one (with the loaded bias).
  const std::string first = custom.linears().front();
  custom.set_weight(first, dense.weight(first));
  EXPECT_EQ(custom.weight(first), dense.weight(first));
}

INSTANTIATE_TEST_SUITE_P(
    Archs, TinyArch,
    ::testing::Values(
        TinyCase{"llama_gqa_bf16",
                 [] { return llama_like("llama", 48, 4, 2, 16, false, false, 10000.0); },
                 DType::BF16},
        TinyCase{"mistral_mqa_tied_f16",
                 [] { return llama_like("mistral", 32, 4, 1, 8, false, true, 1e6); }, DType::F16},
        TinyCase{"qwen2_bias_f32", [] { return llama_like("qwen2", 32, 4, 2, 8, true, true, 1e6); },
                 DType::F32},
        TinyCase{"gpt2_f32", [] { return gpt2_model(32, 4); }, DType::F32},
        TinyCase{"opt_f16", [] { return opt_model(32, 4); }, DType::F16},
        TinyCase{"gpt_neox_parallel_f16", [] { return neox_model(64, 4, true); }, DType::F16},
        TinyCase{"gpt_neox_sequential_f32", [] { return neox_model(64, 4, false); }, DType::F32}),
    [](const auto& p) { return p.param.name; });

// An untied token embedding stays in the mapping and its rows are converted at lookup: exactly
// the rows of the whole-table conversion (plus the position embedding, OPT), tied ones as before.
TEST(LazyEmbedding, RowsEqualEagerConversion) {
  struct Case {
    TinyModel m;
    DType dtype;
    std::string embed, pos;
    int64_t pos_offset;
  };
  const Case cases[] = {{llama_like("llama", 48, 4, 2, 16, false, false, 10000.0), DType::BF16,
                         "model.embed_tokens.weight", "", 0},
                        {llama_like("mistral", 32, 4, 1, 8, false, true, 1e6), DType::F16,
                         "model.embed_tokens.weight", "", 0},
                        {opt_model(32, 4), DType::F16, "model.decoder.embed_tokens.weight",
                         "model.decoder.embed_positions.weight", 2},
                        {llama_like("qwen2", 32, 4, 2, 8, true, false, 1e6), DType::F32,
                         "model.embed_tokens.weight", "", 0}};
  for (const Case& c : cases) {
    const fs::path dir = write_tiny(c.m, c.dtype, 5);
    const ModelConfig cfg = ModelConfig::load(dir);
    const TensorStore store = TensorStore::open(dir);
    const ModelForward model(cfg, store);
    const std::vector<float> table = tensor_to_f32(store.get(c.embed));
    const std::vector<float> pos =
        c.pos.empty() ? std::vector<float>() : tensor_to_f32(store.get(c.pos));
    const int64_t d = model.hidden();
    const std::vector<int32_t> ids = {0, static_cast<int32_t>(model.vocab() - 1), 7, 7, 3};
    const auto tokens = static_cast<int64_t>(ids.size());
    for (int64_t pos0 : {0, 2}) {
      std::vector<float> x(static_cast<size_t>(tokens * d));
      model.embed(ids.data(), tokens, x.data(), pos0);
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t i = 0; i < d; ++i) {
          float want = table[ids[t] * d + i];
          if (!pos.empty()) want += pos[(pos0 + t + c.pos_offset) * d + i];
          ASSERT_EQ(x[t * d + i], want) << dir << " token " << t << " dim " << i;
        }
    }
    const int32_t bad = static_cast<int32_t>(model.vocab());
    std::vector<float> x(static_cast<size_t>(d));
    EXPECT_THROW(model.embed(&bad, 1, x.data()), Error);
  }
}

// ---- 16-bit output head (nn/half_linear.h): used from the mapping, never converted whole ----

std::vector<float> normal_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& e : v) e = nd(rng);
  return v;
}

// rows > 1: W converted tile by tile (blas::sgemm_nt_filled_b) gives the bits of one sgemm
// over the whole converted matrix (shapes sgemm keeps whole and shapes it cuts into tiles).
TEST(HalfLinear, ManyRowsBitIdenticalToConvertedSgemm) {
  for (const DType dtype : {DType::F16, DType::BF16}) {
    for (const int64_t n : {int64_t{1100}, int64_t{8192}}) {
      for (const int64_t k : {int64_t{64}, int64_t{200}}) {
        std::vector<uint16_t> bits(static_cast<size_t>(n * k));
        const std::vector<float> src = normal_floats(bits.size(), static_cast<uint32_t>(n + k));
        for (size_t i = 0; i < bits.size(); ++i)
          bits[i] = dtype == DType::F16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
        TensorInfo t;
        t.name = "lm_head.weight";
        t.dtype = dtype;
        t.shape = {n, k};
        t.data = reinterpret_cast<const std::byte*>(bits.data());
        t.nbytes = bits.size() * 2;
        const std::vector<float> wf = tensor_to_f32(t);
        for (const int64_t rows : {int64_t{1}, int64_t{2}, int64_t{7}, int64_t{64}, int64_t{300}}) {
          const std::vector<float> x = normal_floats(static_cast<size_t>(rows * k), 9);
          std::vector<float> want(static_cast<size_t>(rows * n)), got(want.size(), -1.0f);
          nn::linear_forward(x.data(), rows, wf.data(), nullptr, n, k, want.data());
          nn::half_linear_forward(t, x.data(), rows, n, k, got.data());
          const std::string what = std::string(dtype_name(dtype)) + " n " + std::to_string(n) +
                                   " k " + std::to_string(k) + " rows " + std::to_string(rows);
          if (rows > 1) {
            ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float))) << what;
          } else {
            for (int64_t j = 0; j < n; ++j) {
              double mag = 0.0;
              for (int64_t c = 0; c < k; ++c) mag += std::abs(double{wf[j * k + c]} * x[c]);
              ASSERT_NEAR(got[j], want[j], 2.0 * static_cast<double>(k) * 0x1p-24 * mag)
                  << what << " row " << j;
            }
          }
        }
      }
    }
  }
}

// ModelForward keeps an F16 / BF16 head (untied lm_head or tied embedding) in the mapping: its
// logits equal those of the same head converted to fp32 (the previous path, here through
// set_head): decode within fp32 rounding, many rows bit for bit.
TEST(HalfHead, LogitsEqualConvertedFp32Head) {
  static constexpr int64_t kV = 1100;  // 3 conversion chunks, the last partial
  auto widen = [](TinyModel m) {
    m.config["vocab_size"] = kV;
    for (TensorGen& t : m.tensors)
      if (t.name == "model.embed_tokens.weight" || t.name == "lm_head.weight") t.shape[0] = kV;
    return m;
  };
  struct Case {
    TinyModel m;
    DType dtype;
    std::string head;
  };
  const Case cases[] = {
      {widen(llama_like("llama", 48, 4, 2, 16, false, false, 1e4)), DType::F16, "lm_head.weight"},
      {widen(llama_like("llama", 48, 4, 2, 16, false, false, 1e4)), DType::BF16, "lm_head.weight"},
      {widen(llama_like("mistral", 32, 4, 1, 8, false, true, 1e6)), DType::F16,
       "model.embed_tokens.weight"}};
  for (const Case& c : cases) {
    const fs::path dir = write_tiny(c.m, c.dtype, 11);
    const ModelConfig cfg = ModelConfig::load(dir);
    const TensorStore store = TensorStore::open(dir);
    const ModelForward half(cfg, store);
    ModelForward f32(cfg, store);
    ASSERT_EQ(half.vocab(), kV);
    const int64_t d = half.hidden();
    f32.set_head(std::make_unique<nn::DenseLinear>(tensor_to_f32(store.get(c.head)),
                                                   std::vector<float>{}, kV, d));
    for (const int64_t rows : {int64_t{1}, int64_t{5}, int64_t{40}}) {
      const std::vector<float> x = normal_floats(static_cast<size_t>(rows * d), 3);
      std::vector<float> a(static_cast<size_t>(rows * kV)), b(a.size());
      half.head(x.data(), rows, a.data());
      f32.head(x.data(), rows, b.data());
      if (rows > 1) {
        ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)))
            << dir << " rows " << rows;
      } else {
        float scale = 0.0f;
        for (float v : b) scale = std::max(scale, std::abs(v));
        ASSERT_GT(scale, 0.0f);
        for (int64_t j = 0; j < kV; ++j)
          ASSERT_NEAR(a[j], b[j], 1e-5 * scale) << dir << " logit " << j;
      }
    }
    // The tied 16-bit embedding is still looked up exactly.
    const std::vector<float> table = tensor_to_f32(store.get("model.embed_tokens.weight"));
    const int32_t id = static_cast<int32_t>(kV - 1);
    std::vector<float> e(static_cast<size_t>(d));
    half.embed(&id, 1, e.data());
    for (int64_t i = 0; i < d; ++i) ASSERT_EQ(e[i], table[id * d + i]);
  }
}

// Positions beyond the precomputed table are computed on the fly, identically.
TEST(Rotary, BeyondTableMatches) {
  const nn::RotaryTable small(8, 10000.0, 4), big(8, 10000.0, 64);
  std::vector<float> x(20 * 2 * 12);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (float& e : x) e = nd(rng);
  std::vector<float> y = x;
  small.apply(x.data(), 20, 2, 24, 12);  // 20 tokens, 2 heads of 12 dims, first 8 rotated
  big.apply(y.data(), 20, 2, 24, 12);
  EXPECT_EQ(x, y);
  // inv_freq as transformers: 1 / theta^(float(2i) / dim) in float32.
  EXPECT_FLOAT_EQ(big.inv_freq()[1], 1.0f / std::pow(10000.0f, 0.25f));
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(ForwardErrors, OptPostNormRejected) {
  const fs::path dir = write_tiny(opt_model(32, 4, false), DType::F32, 1);
  const ModelConfig cfg = ModelConfig::load(dir);
  const TensorStore store = TensorStore::open(dir);
  try {
    ModelForward m(cfg, store);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("do_layer_norm_before"), std::string::npos) << e.what();
  }
  EXPECT_THROW(BlockForward(cfg, store, 0), Error);
}

TEST(ForwardErrors, MissingTensorNamed) {
  const fs::path dir = write_tiny(llama_like("llama", 32, 4, 2, 8, false, false, 1e4), DType::F32,
                                  1, "model.layers.1.mlp.down_proj.weight");
  const ModelConfig cfg = ModelConfig::load(dir);
  const TensorStore store = TensorStore::open(dir);
  EXPECT_NO_THROW(BlockForward(cfg, store, 0));
  try {
    BlockForward b(cfg, store, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.mlp.down_proj.weight"), std::string::npos)
        << e.what();
  }
  // Without the linears (e.g. a quantized checkpoint) the block loads; running it needs set_linear.
  BlockOptions o;
  o.load_linears = false;
  BlockForward b(cfg, store, 1, o);
  std::vector<float> x(2 * 32, 0.5f);
  EXPECT_THROW(b.forward(x.data(), 2), Error);
  EXPECT_THROW(BlockForward(cfg, store, 2), Error);  // out of range
}

TEST(ForwardErrors, WrongShapeNamed) {
  TinyModel m = llama_like("llama", 32, 4, 2, 8, false, false, 1e4);
  for (auto& t : m.tensors)
    if (t.name == "model.layers.0.self_attn.k_proj.weight") t.shape = {32, 32};  // expects [16, 32]
  const fs::path dir = write_tiny(m, DType::F32, 1);
  const ModelConfig cfg = ModelConfig::load(dir);
  const TensorStore store = TensorStore::open(dir);
  try {
    BlockForward b(cfg, store, 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[out=16, in=32]"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace gptq
