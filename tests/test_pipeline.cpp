// quantize_model end to end on the fixtures: quality against round-to-nearest (KL divergence to
// the float model), the checkpoint's config, resume after a kill, thread-count independence.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>

#include "infer/load_model.h"
#include "io/safetensors.h"
#include "model/convert.h"
#include "model/json_util.h"
#include "nn/eval.h"
#include "pipeline/quantize.h"
#include "support/fixtures.h"
#include "support/quantize_helpers.h"
#include "support/tiny_models.h"
#include "util/error.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using ::gptq::testing::fixture_quantize_options;
using ::gptq::testing::kSilent;
using ::gptq::testing::eval_ids;
using ::gptq::testing::fixture_model;
using ::gptq::testing::read_file;
using ::gptq::testing::scratch_dir;

QuantizeOptions options(int bits, int group_size, bool sym, bool act_order, QuantMethod method) {
  return fixture_quantize_options(bits, group_size, sym, act_order, 32, method);
}

// Mean KL divergence to the float model over the first 40 windows of 256 tokens (quality.json protocol).
double kld_to_float(const std::string& fixture, const fs::path& quantized) {
  const auto base = load_model(fixture_model(fixture));
  const auto model = load_model(quantized);
  EvalOptions eo;
  eo.seqlen = 256;
  eo.max_windows = 40;
  return compare_models(*base->model, *model->model, eval_ids(fixture), eo).mean_kl;
}

struct QualityCase {
  std::string fixture;
  int bits, group_size;
  bool sym;
};

class GptqQuality : public ::testing::TestWithParam<QualityCase> {};

// GPTQ must beat round-to-nearest clearly: KLD(GPTQ) <= 0.6 x KLD(RTN) with the same settings.
TEST_P(GptqQuality, BeatsRoundToNearest) {
  const auto& c = GetParam();
  const fs::path dir = scratch_dir("q");
  quantize_model(fixture_model(c.fixture), dir / "rtn", options(c.bits, c.group_size, c.sym, false, QuantMethod::kRtn),
                 kSilent);
  quantize_model(fixture_model(c.fixture), dir / "gptq", options(c.bits, c.group_size, c.sym, false, QuantMethod::kGptq),
                 kSilent);
  const double rtn = kld_to_float(c.fixture, dir / "rtn");
  const double gptq = kld_to_float(c.fixture, dir / "gptq");
  std::printf("[ %s w%d g%d %s ] KLD rtn %.5f gptq %.5f ratio %.3f\n", c.fixture.c_str(), c.bits, c.group_size,
              c.sym ? "sym" : "asym", rtn, gptq, gptq / rtn);
  EXPECT_GT(rtn, 0.0);
  EXPECT_LE(gptq, 0.6 * rtn);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, GptqQuality,
    ::testing::Values(QualityCase{"tiny-llama", 4, 128, true}, QualityCase{"tiny-llama", 3, -1, false},
                      QualityCase{"tiny-llama-outliers", 4, 128, true}, QualityCase{"tiny-llama-outliers", 3, -1, false},
                      QualityCase{"tiny-gpt2", 4, 128, true}, QualityCase{"tiny-gpt2", 3, -1, false}),
    [](const auto& param_info) {
      std::string n = param_info.param.fixture + "_w" + std::to_string(param_info.param.bits) +
                      (param_info.param.sym ? "_sym" : "_asym");
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

std::map<std::string, std::string> dir_contents(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out[e.path().filename().string()] = read_file(e.path());
  return out;
}

TEST(Pipeline, WritesQuantizationConfigAndLoads) {
  const fs::path out = scratch_dir("cfg") / "q";
  auto o = options(4, 128, true, true, QuantMethod::kGptq);
  quantize_model(fixture_model("tiny-llama"), out, o, kSilent);
  const auto cfg = read_json_file(out / "config.json");
  const auto& q = cfg.at("quantization_config");
  EXPECT_EQ(q.at("quant_method"), "gptq");
  EXPECT_EQ(q.at("bits"), 4);
  EXPECT_EQ(q.at("group_size"), 128);
  EXPECT_EQ(q.at("desc_act"), true);
  EXPECT_EQ(q.at("sym"), true);
  EXPECT_EQ(q.at("checkpoint_format"), "gptq");
  EXPECT_EQ(q.at("block_name_to_quantize"), "model.layers");
  EXPECT_EQ(q.at("model_seqlen"), 256);
  EXPECT_DOUBLE_EQ(q.at("damp_percent").get<double>(), 0.01);
  EXPECT_TRUE(q.at("modules_in_block_to_quantize").is_null());
  EXPECT_EQ(read_json_file(out / "quantize_config.json"), q);
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  EXPECT_FALSE(fs::exists(out.string() + ".partial"));
  const auto m = load_model(out);
  EXPECT_EQ(m->quantized_layers, 28);
  // Asymmetric defaults to gptq (v1) too, as GPTQModel.
  const fs::path out2 = scratch_dir("cfg2") / "q";
  quantize_model(fixture_model("tiny-llama"), out2, options(3, -1, false, false, QuantMethod::kRtn), kSilent);
  EXPECT_EQ(read_json_file(out2 / "config.json").at("quantization_config").at("checkpoint_format"), "gptq");
}

// Every quantized layer of the output gets a .bias: its own (fp16), or all zeros for a bias-free
// layer (AutoGPTQ's layout; optimum < 1.20 computes NaN without it); --no-zero-bias omits them.
void expect_biases(const fs::path& out, const ModelPlan* own_bias_from, bool zero_bias) {
  const TensorStore store = TensorStore::open(out);
  int64_t layers = 0;
  for (const auto& n : store.names()) {
    if (!n.ends_with(".qweight")) continue;
    ++layers;
    const std::string layer = n.substr(0, n.size() - 8);
    const int64_t out_features = store.get(n).shape[1];
    const TensorInfo* b = store.find(layer + ".bias");
    bool own = false;
    if (own_bias_from)
      for (const auto& l : own_bias_from->layers) own |= l.name == layer && l.has_bias;
    if (!own && !zero_bias) {
      EXPECT_EQ(b, nullptr) << layer;
      continue;
    }
    ASSERT_NE(b, nullptr) << layer;
    EXPECT_EQ(b->dtype, DType::F16) << layer;
    EXPECT_EQ(b->shape, std::vector<int64_t>{out_features}) << layer;
    const std::vector<float> v = tensor_to_f32(*b);
    const bool all_zero = std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; });
    EXPECT_EQ(all_zero, !own) << layer;
  }
  EXPECT_GT(layers, 0);
}

TEST(Pipeline, ZeroBiasForEveryQuantizedLayerByDefault) {
  const fs::path dir = scratch_dir("bias");
  auto o = options(4, 128, true, false, QuantMethod::kRtn);
  EXPECT_TRUE(o.zero_bias);
  quantize_model(fixture_model("tiny-llama"), dir / "zero", o, kSilent);
  expect_biases(dir / "zero", nullptr, true);
  EXPECT_EQ(load_model(dir / "zero")->quantized_layers, 28);
  o.zero_bias = false;
  quantize_model(fixture_model("tiny-llama"), dir / "none", o, kSilent);
  expect_biases(dir / "none", nullptr, false);
  // Qwen2: q/k/v keep their own biases, o_proj and the MLP get zero ones.
  const fs::path qwen = testing::write_tiny(testing::llama_like("qwen2", 64, 4, 2, 16, true, true, 1e6, 128),
                                            DType::F16, 5);
  auto q = options(4, 32, true, false, QuantMethod::kRtn);
  q.calib.seqlen = 32;
  quantize_model(qwen, dir / "qwen", q, kSilent);
  ConvertOptions co;
  co.group_size = 32;
  const ModelPlan plan = convert_model(ModelConfig::load(qwen), TensorStore::open(qwen), co);
  expect_biases(dir / "qwen", &plan, true);
}

// Zero fields of qzeros (bits 2: 16 per word, no straddling) whose zero point is 0: v1 stores
// zero - 1 = -1 as the all-ones field 3, v2 stores 0.
int64_t stored_zero_point_0(const fs::path& out, CheckpointFormat format) {
  const TensorStore store = TensorStore::open(out);
  int64_t count = 0;
  for (const auto& n : store.names()) {
    if (!n.ends_with(".qzeros")) continue;
    const TensorInfo& t = store.get(n);
    const int64_t n_out = store.get(n.substr(0, n.size() - 7) + ".scales").shape[1];
    for (int64_t g = 0; g < t.shape[0]; ++g)
      for (int64_t j = 0; j < n_out; ++j) {
        uint32_t word;
        std::memcpy(&word, t.data + 4 * (g * t.shape[1] + j / 16), 4);
        const uint32_t field = (word >> (2 * (j % 16))) & 3u;
        count += field == (format == CheckpointFormat::kGptq ? 3u : 0u);
      }
  }
  return count;
}

TEST(Pipeline, AsymDefaultsToV1AndCountsZeroPointsOf0) {
  const fs::path dir = scratch_dir("zp0");
  auto o = options(2, 16, false, false, QuantMethod::kRtn);
  const auto v1 = quantize_model(fixture_model("tiny-llama"), dir / "v1", o, kSilent).report;
  EXPECT_EQ(read_json_file(dir / "v1" / "config.json").at("quantization_config").at("checkpoint_format"), "gptq");
  int64_t sum = 0, with = 0;
  for (const auto& l : v1.at("layers")) {
    sum += l.at("zero_point_0_groups").get<int64_t>();
    with += l.at("zero_point_0_groups").get<int64_t>() > 0;
  }
  const int64_t total = v1.at("totals").at("zero_point_0_groups").get<int64_t>();
  EXPECT_GT(total, 0);
  EXPECT_EQ(total, sum);
  EXPECT_EQ(v1.at("totals").at("layers_with_zero_point_0").get<int64_t>(), with);
  EXPECT_EQ(stored_zero_point_0(dir / "v1", CheckpointFormat::kGptq), total);
  ASSERT_FALSE(v1.at("loader_warnings").empty());
  EXPECT_NE(v1.at("loader_warnings").back().get<std::string>().find("--format gptq_v2"), std::string::npos);
  // gptq_v2: the same quantization, the zero points stored exactly, the misreading loaders named.
  o.format = CheckpointFormat::kGptqV2;
  const auto v2 = quantize_model(fixture_model("tiny-llama"), dir / "v2", o, kSilent).report;
  EXPECT_EQ(v2.at("totals").at("zero_point_0_groups").get<int64_t>(), total);
  EXPECT_EQ(stored_zero_point_0(dir / "v2", CheckpointFormat::kGptqV2), total);
  EXPECT_NE(v2.at("loader_warnings").back().get<std::string>().find("auto-gptq"), std::string::npos);
  // Both read back to the same weights (the v1 all-ones field is a zero point of 0 here).
  const auto ids = eval_ids("tiny-llama");
  EvalOptions eo;
  eo.seqlen = 64;
  eo.max_windows = 4;
  EXPECT_EQ(evaluate_perplexity(*load_model(dir / "v1")->model, ids, eo).ppl,
            evaluate_perplexity(*load_model(dir / "v2")->model, ids, eo).ppl);
}

TEST(Pipeline, DeterministicAcrossThreadCounts) {
  // 3 threads split OpenBLAS's work at bounds that are not multiples of its kernel's tile: before
  // util/blas.h this gave other bytes than 1 or 2.
  const fs::path dir = scratch_dir("threads");
  auto o = options(4, 128, true, false, QuantMethod::kGptq);
  o.calib.nsamples = 8;
  for (int threads : {1, 2, 3}) {
    o.threads = threads;
    quantize_model(fixture_model("tiny-gpt2"), dir / ("t" + std::to_string(threads)), o, kSilent);
  }
  EXPECT_TRUE(dir_contents(dir / "t1") == dir_contents(dir / "t2"));
  EXPECT_TRUE(dir_contents(dir / "t1") == dir_contents(dir / "t3"));
}

// q/k/v read one Hessian and share its factor; a dynamic rule that damps k_proj differently gives
// k_proj a factor of its own: its records carry its damping, and the reported work has one more
// factor (2/3 hidden^3) per block.
TEST(Pipeline, SharedFactorsFollowPerLayerDamping) {
  const fs::path dir = scratch_dir("shared-factor");
  auto o = options(4, 128, true, false, QuantMethod::kGptq);
  o.calib.nsamples = 8;
  const QuantizeResult shared =
      quantize_model(fixture_model("tiny-llama"), dir / "shared", o, kSilent).result;
  o.dynamic = nlohmann::json{{"+:.*\\.k_proj$", {{"damp_percent", 0.05}}}};
  const QuantizeResult split =
      quantize_model(fixture_model("tiny-llama"), dir / "split", o, kSilent).result;
  ASSERT_EQ(split.layers.size(), 28u);
  for (const auto& l : split.layers)
    EXPECT_EQ(l.damp, l.name.ends_with(".k_proj") ? 0.05 : o.quant.damp_percent) << l.name;
  const double hidden = 256;  // tiny-llama
  const double one_factor = 2.0 / 3.0 * hidden * hidden * hidden / 1e9;
  EXPECT_NEAR(split.gflop - shared.gflop, static_cast<double>(split.num_blocks) * one_factor,
              1e-9 * split.gflop);
}

// A callback returning false stops the run cleanly: ExitCode::kInterrupted, no output, the finished
// blocks kept in OUT.partial; a resume then gives the bytes of an uninterrupted run. At a block
// boundary (progress) and inside a block (a layer record).
TEST(Pipeline, CancelledByCallbackThenResumed) {
  const fs::path dir = scratch_dir("cancel");
  auto o = options(4, 128, true, false, QuantMethod::kGptq);
  o.calib.nsamples = 8;
  quantize_model(fixture_model("tiny-llama"), dir / "full", o, kSilent);
  std::vector<std::string> layers_seen;
  Callbacks at_block;
  at_block.progress = [](const Progress& p) { return p.done < 2; };
  Callbacks in_block;
  in_block.layer = [&](const LayerRecord& l) {
    layers_seen.push_back(l.name);
    return l.name != "model.layers.1.mlp.up_proj";
  };
  for (const Callbacks* cb : {&at_block, &in_block}) {
    const fs::path out = dir / (cb == &at_block ? "at_block" : "in_block");
    try {
      quantize_model(fixture_model("tiny-llama"), out, o, *cb);
      ADD_FAILURE() << "not cancelled";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kInterrupted);
      EXPECT_NE(std::string(e.what()).find("resume"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(out));
    ASSERT_TRUE(fs::exists(out.string() + ".partial"));
    auto again = o;
    again.resume = true;
    const QuantizeSummary s = quantize_model(fixture_model("tiny-llama"), out, again, kSilent);
    EXPECT_EQ(s.result.layers.size(), 28u);  // the records of the earlier run's blocks too
    EXPECT_TRUE(dir_contents(dir / "full") == dir_contents(out));
  }
  EXPECT_EQ(layers_seen.size(), 7u + 6u);  // block 0, then block 1 up to up_proj
}

TEST(Pipeline, KilledAndResumedEqualsUninterrupted) {
  const fs::path dir = scratch_dir("resume");
  auto o = options(4, 128, true, false, QuantMethod::kGptq);
  o.max_shard_bytes = 2'000'000;  // several shards
  quantize_model(fixture_model("tiny-llama"), dir / "full", o, kSilent);
  // A real SIGKILL right after block 2 is durable, in a child process.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Callbacks kill;
    kill.progress = [](const Progress& p) {
      if (p.done == 2) std::raise(SIGKILL);
      return true;
    };
    try {
      quantize_model(fixture_model("tiny-llama"), dir / "resumed", o, kill);
    } catch (...) {
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_FALSE(fs::exists(dir / "resumed"));
  ASSERT_TRUE(fs::exists(dir / "resumed.partial"));
  // Resuming without --resume is refused; with other options it is refused too.
  EXPECT_THROW(quantize_model(fixture_model("tiny-llama"), dir / "resumed", o, kSilent), Error);
  auto other = o;
  other.resume = true;
  other.quant.bits = 3;
  EXPECT_THROW(quantize_model(fixture_model("tiny-llama"), dir / "resumed", other, kSilent), Error);
  o.resume = true;
  quantize_model(fixture_model("tiny-llama"), dir / "resumed", o, kSilent);
  EXPECT_FALSE(fs::exists(dir / "resumed.partial"));
  const auto full = dir_contents(dir / "full"), resumed = dir_contents(dir / "resumed");
  EXPECT_GT(full.size(), 5u);
  EXPECT_TRUE(full == resumed);
}

TEST(Pipeline, RefusesExistingOutputAndOutputInsideInput) {
  const fs::path dir = scratch_dir("paths");
  fs::create_directories(dir / "exists");
  auto o = options(4, 128, true, false, QuantMethod::kRtn);
  try {
    quantize_model(fixture_model("tiny-llama"), dir / "exists", o, kSilent);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos);
  }
  EXPECT_THROW(quantize_model(fixture_model("tiny-llama"), fixture_model("tiny-llama") / "out", o, kSilent), Error);
}

// Random tiny checkpoints of the other architectures quantize, load and evaluate to a finite
// perplexity close to the float model's.
struct ArchCase {
  std::string name;
  std::function<testing::TinyModel()> make;
};

class TinyArchQuantize : public ::testing::TestWithParam<ArchCase> {};

TEST_P(TinyArchQuantize, QuantizesAndEvaluates) {
  const fs::path model = testing::write_tiny(GetParam().make(), DType::F16, 7);
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> tok(0, testing::kVocab - 1);
  nlohmann::json calib = nlohmann::json::array();
  for (int s = 0; s < 8; ++s) {
    std::vector<int32_t> ids(32);
    for (auto& t : ids) t = tok(rng);
    calib.push_back(ids);
  }
  const fs::path calib_file = scratch_dir("calib") / "calib.json";
  std::ofstream(calib_file) << calib.dump();
  auto o = options(4, 32, true, true, QuantMethod::kGptq);
  o.calib.file = calib_file;
  o.calib.nsamples = 8;
  o.calib.seqlen = 32;
  const fs::path out = scratch_dir("out") / "q";
  const auto summary = quantize_model(model, out, o, kSilent);
  const auto loaded = load_model(out);
  EXPECT_GT(loaded->quantized_layers, 0);
  EXPECT_EQ(loaded->float_layers, 0);
  std::vector<int32_t> ids(4 * 32);
  for (auto& t : ids) t = tok(rng);
  EvalOptions eo;
  eo.seqlen = 32;
  const auto base = load_model(model);
  const auto r = compare_models(*base->model, *loaded->model, ids, eo);
  EXPECT_TRUE(std::isfinite(r.model.ppl));
  EXPECT_TRUE(std::isfinite(r.mean_kl));
  EXPECT_LT(std::abs(std::log(r.model.ppl / r.base.ppl)), 0.2) << r.model.ppl << " vs " << r.base.ppl;
  for (const auto& l : summary.report.at("layers")) EXPECT_TRUE(std::isfinite(l.at("loss").get<double>()));
}

INSTANTIATE_TEST_SUITE_P(
    Archs, TinyArchQuantize,
    ::testing::Values(
        ArchCase{"mistral", [] { return testing::llama_like("mistral", 64, 4, 2, 16, false, false, 1e4, 128); }},
        ArchCase{"qwen2", [] { return testing::llama_like("qwen2", 64, 4, 2, 16, true, true, 1e6, 128); }},
        ArchCase{"opt", [] { return testing::opt_model(64, 4); }},
        ArchCase{"gpt_neox", [] { return testing::neox_model(64, 4, true); }},
        ArchCase{"gpt_neox_sequential", [] { return testing::neox_model(64, 4, false); }}),
    [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace gptq
