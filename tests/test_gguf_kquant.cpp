// GGUF k-quants (Q2_K..Q6_K, src/gguf/ggml_kquant.h) against llama.cpp's own ggml (libggml-base
// of node-llama-cpp, dlopen; tests/support/llama_cpp.h): block layouts and dequantization bit for
// bit, the quantizer's error against ggml's reference quantizer on the same data, and tiny-llama
// exported with --type q4_k / q3_k loaded and evaluated by llama.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include <sys/wait.h>

#include "gguf/ggml_kquant.h"
#include "gguf/ggml_quant.h"
#include "gguf/gguf_export.h"
#include "gguf/gguf_reader.h"
#include "infer/load_model.h"
#include "nn/eval.h"
#include "support/cli_runner.h"
#include "support/family_models.h"
#include "support/family_quantize.h"
#include "support/fixtures.h"
#include "support/llama_cpp.h"
#include "support/quantize_helpers.h"
#include "support/tiny_models.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace gptq::testing {
namespace {

namespace fs = std::filesystem;
using gguf::GgmlType;
using nlohmann::json;

constexpr GgmlType kKTypes[] = {GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K,
                                GgmlType::kQ6_K};

// rows x n values: Gaussian (or heavy-tailed) rows with edge cases in the first row: an all-zero
// super-block, a constant one, an outlier, a single non-zero value, an all-negative sub-block.
std::vector<float> test_matrix(int64_t rows, int64_t n, uint32_t seed, bool heavy_tail) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::student_t_distribution<float> td(3.0f);
  std::vector<float> x(static_cast<size_t>(rows * n));
  for (auto& v : x) v = heavy_tail ? 0.01f * td(rng) : nd(rng);
  if (n >= 1280) {
    std::fill_n(x.begin(), 256, 0.0f);
    std::fill_n(x.begin() + 256, 256, 0.125f);
    x[600] = 1.5f;
    std::fill_n(x.begin() + 768, 256, 0.0f);
    x[800] = -0.3f;
    for (int i = 1024; i < 1040; ++i) x[i] = -std::fabs(x[i]) - 0.01f;
  }
  return x;
}

double rel_error(const std::vector<float>& a, const std::vector<float>& ref) {
  double e = 0, r = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - ref[i];
    e += d * d;
    r += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(e / r);
}

TEST(GgmlKQuant, TypeTableAndNames) {
  for (const GgmlType t : kKTypes) {
    EXPECT_TRUE(gguf::is_k_quant(t));
    EXPECT_EQ(gguf::block_size(t), 256);
    GgmlType parsed;
    std::string lower = gguf::type_name(t);
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ASSERT_TRUE(gguf::parse_type(lower, &parsed)) << lower;
    EXPECT_EQ(parsed, t);
    ASSERT_TRUE(gguf::parse_type(gguf::type_name(t), &parsed));  // ggml's spelling "q4_K"
    EXPECT_EQ(parsed, t);
  }
  EXPECT_EQ(gguf::type_name(GgmlType::kQ4_K), "q4_K");
  EXPECT_DOUBLE_EQ(gguf::bits_per_weight(GgmlType::kQ4_K), 4.5);
  EXPECT_DOUBLE_EQ(gguf::bits_per_weight(GgmlType::kQ6_K), 6.5625);
  EXPECT_FALSE(gguf::is_k_quant(GgmlType::kQ4_0));
  EXPECT_EQ(gguf::k_quant_fallback(GgmlType::kQ4_K), GgmlType::kQ4_1);
  EXPECT_EQ(gguf::k_quant_fallback(GgmlType::kQ6_K), GgmlType::kQ8_0);
  std::vector<std::byte> b(gguf::row_size(GgmlType::kQ4_K, 256));
  const std::vector<float> x(288, 0.5f);
  EXPECT_THROW(gguf::quantize_row(GgmlType::kQ4_K, x.data(), 288, b.data()), Error);
  // All zeros and a constant row survive (no NaN, exact or near).
  std::vector<float> back(256);
  for (const GgmlType t : kKTypes) {
    for (const float c : {0.0f, -0.25f, 3.0f}) {
      std::vector<float> v(256, c);
      std::vector<std::byte> q(gguf::row_size(t, 256));
      gguf::quantize_row(t, v.data(), 256, q.data());
      gguf::dequantize_row(t, q.data(), 256, back.data());
      for (const float y : back)
        EXPECT_NEAR(y, c, std::fabs(c) * 0.02 + 1e-7) << gguf::type_name(t);
    }
  }
}

TEST(GgmlKQuant, DequantizationMatchesGgmlBitForBit) {
  REQUIRE_LLAMA_CPP();
  const LlamaCpp& lc = LlamaCpp::get();
  const int64_t n = 256 * 16;
  for (const bool heavy : {false, true}) {
    const std::vector<float> x = test_matrix(1, n, 7, heavy);
    for (const GgmlType t : kKTypes) {
      SCOPED_TRACE(gguf::type_name(t));
      // Blocks written by ggml's reference quantizer: same size, read back identically.
      const std::vector<uint8_t> theirs = lc.from_float_ref(static_cast<int>(t), x.data(), n);
      ASSERT_EQ(theirs.size(), gguf::row_size(t, n));
      std::vector<float> back(static_cast<size_t>(n));
      gguf::dequantize_row(t, reinterpret_cast<const std::byte*>(theirs.data()), n, back.data());
      std::vector<float> ggml_back = lc.to_float(static_cast<int>(t), theirs.data(), 1, n);
      EXPECT_EQ(std::memcmp(back.data(), ggml_back.data(), back.size() * 4), 0);
      // Blocks written by this quantizer.
      std::vector<std::byte> ours(gguf::row_size(t, n));
      gguf::quantize_row(t, x.data(), n, ours.data());
      gguf::dequantize_row(t, ours.data(), n, back.data());
      ggml_back = lc.to_float(static_cast<int>(t), ours.data(), 1, n);
      EXPECT_EQ(std::memcmp(back.data(), ggml_back.data(), back.size() * 4), 0);
    }
  }
  // Random bytes (every bit pattern of scales, codes and high bits), finite fp16 d/dmin.
  std::mt19937 rng(3);
  for (const GgmlType t : kKTypes) {
    SCOPED_TRACE(gguf::type_name(t));
    std::vector<std::byte> bytes(gguf::row_size(t, n));
    for (auto& b : bytes) b = static_cast<std::byte>(rng() & 0xFF);
    const size_t bs = gguf::type_size(t);
    for (size_t off = 0; off < bytes.size(); off += bs) {
      // d / dmin: small finite halves at their offsets in each layout.
      const uint16_t h1 = 0x1000 | static_cast<uint16_t>(rng() & 0x0FFF);
      const uint16_t h2 = 0x1000 | static_cast<uint16_t>(rng() & 0x0FFF);
      size_t pd = 0, pm = 2;
      if (t == GgmlType::kQ2_K) pd = 80, pm = 82;
      if (t == GgmlType::kQ3_K) pd = pm = 108;
      if (t == GgmlType::kQ6_K) pd = pm = 208;
      std::memcpy(&bytes[off + pm], &h2, 2);
      std::memcpy(&bytes[off + pd], &h1, 2);
    }
    std::vector<float> back(static_cast<size_t>(n));
    gguf::dequantize_row(t, bytes.data(), n, back.data());
    const std::vector<float> ggml_back = lc.to_float(static_cast<int>(t), bytes.data(), 1, n);
    EXPECT_EQ(std::memcmp(back.data(), ggml_back.data(), back.size() * 4), 0);
  }
}

TEST(GgmlKQuant, ErrorAtMostGgmlReferenceQuantizer) {
  REQUIRE_LLAMA_CPP();
  const LlamaCpp& lc = LlamaCpp::get();
  const int64_t rows = 16, n = 2048;
  for (const bool heavy : {false, true}) {
    const std::vector<float> x = test_matrix(rows, n, 11, heavy);
    for (const GgmlType t : kKTypes) {
      std::vector<float> ours(x.size()), theirs(x.size());
      double t_ours = 0, t_ggml = 0;  // seconds, one thread
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x.data() + r * n;
        std::vector<std::byte> q(gguf::row_size(t, n));
        const auto t0 = std::chrono::steady_clock::now();
        {
          ComputeThreadsScope one(1);
          gguf::quantize_row(t, xr, n, q.data());
        }
        const auto t1 = std::chrono::steady_clock::now();
        const std::vector<uint8_t> g = lc.from_float_ref(static_cast<int>(t), xr, n);
        const auto t2 = std::chrono::steady_clock::now();
        t_ours += std::chrono::duration<double>(t1 - t0).count();
        t_ggml += std::chrono::duration<double>(t2 - t1).count();
        gguf::dequantize_row(t, q.data(), n, ours.data() + r * n);
        const std::vector<float> gb = lc.to_float(static_cast<int>(t), g.data(), 1, n);
        std::copy(gb.begin(), gb.end(), theirs.begin() + r * n);
      }
      const double eo = rel_error(ours, x), eg = rel_error(theirs, x);
      std::printf(
          "[ %s, %s data ] relative error: gptq.cpp %.5f, ggml reference %.5f (%.1f%%); time %.1f "
          "vs %.1f ns/value\n",
          gguf::type_name(t).c_str(), heavy ? "heavy-tailed" : "Gaussian", eo, eg,
          100.0 * (eo / eg - 1.0), 1e9 * t_ours / static_cast<double>(x.size()),
          1e9 * t_ggml / static_cast<double>(x.size()));
      EXPECT_LE(eo, eg + 1e-6) << gguf::type_name(t);
    }
  }
}

// ---- Export ----

TEST(GgufKQuantExport, ChoiceAndRefusals) {
  const gguf::LayerFacts sym4{
      .bits = 4, .blocks_uniform = true, .scales_fp16 = true, .min_offset = -8, .max_offset = 7};
  for (const char* name : {"q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "Q4_K"}) {
    const gguf::LayerChoice c = gguf::choose_layer_type(sym4, name);
    EXPECT_TRUE(gguf::is_k_quant(c.type)) << name;
    EXPECT_EQ(c.mode, gguf::LayerMode::kRefit) << name;
  }
  try {
    gguf::choose_layer_type(sym4, "iq2_xs");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("q2_k, q3_k, q4_k, q5_k, q6_k"), std::string::npos)
        << e.what();
  }
}

// A family checkpoint of hidden size 64: rows of 64 or 160 values cannot be k-quants; they fall
// back as llama-quantize does, and the report says so.
TEST(GgufKQuantExport, RowsNotMultipleOf256FallBack) {
  REQUIRE_LLAMA_CPP();
  const fs::path model = write_tiny(tiny_from_config(family_config("llama")), DType::BF16, 1);
  write_tiny_tokenizer(model, kFamilyVocab);
  gguf::ExportOptions o;
  o.from_float = true;
  o.type = "q4_k";
  const fs::path out = scratch_dir("kq-fallback") / "m.gguf";
  const gguf::ExportReport r = gguf::export_gguf(model, out, o);
  ASSERT_FALSE(r.layers.empty());
  for (const auto& l : r.layers) {
    EXPECT_EQ(l.type, GgmlType::kQ4_1) << l.gguf_name;
    EXPECT_NE(l.why.find("not a multiple of 256"), std::string::npos) << l.why;
  }
  // A GPTQ checkpoint: the fallback type holds the grid exactly (Q4_0, Q8_0) or mapped (Q4_1).
  QuantizeOptions qo;
  qo.quant.bits = 4;
  qo.quant.group_size = 32;
  qo.quant.damp_percent = 0.01;
  qo.calib.file = family_calibration(8);
  qo.calib.nsamples = 8;
  qo.calib.seqlen = kFamilyTestTokens;
  const fs::path gptq = out.parent_path() / "gptq";
  quantize_model(model, gptq, qo, kSilent);
  const std::pair<const char*, std::pair<GgmlType, gguf::LayerMode>> expect[] = {
      {"q3_k", {GgmlType::kQ4_0, gguf::LayerMode::kExact}},
      {"q4_k", {GgmlType::kQ4_1, gguf::LayerMode::kMapped}},
      {"q6_k", {GgmlType::kQ8_0, gguf::LayerMode::kExact}}};
  for (const auto& [type, want] : expect) {
    gguf::ExportOptions g;
    g.type = type;
    const gguf::ExportReport rg = gguf::export_gguf(gptq, out.parent_path() / "g.gguf", g);
    for (const auto& l : rg.layers) {
      EXPECT_EQ(l.type, want.first) << type << " " << l.gguf_name;
      EXPECT_EQ(l.mode, want.second) << type << " " << l.gguf_name;
      EXPECT_NE(l.why.find("falls back to"), std::string::npos) << l.why;
    }
  }
  // llama.cpp loads it.
  const std::vector<int32_t> ids{1, 2, 3, 4, 5, 6, 7, 8};
  const fs::path ids_file = out.parent_path() / "ids.json";
  std::ofstream(ids_file) << json(ids).dump();
  const json lc = LlamaCpp::get().eval("--model " + out.string() + " --ids " + ids_file.string() +
                                       " --seqlen 8");
  EXPECT_TRUE(std::isfinite(lc.at("ppl").get<double>()));
}

struct TinyLlama {
  fs::path dir, gptq, f32;
};

// tiny-llama (hidden 256, intermediate 768: every row a multiple of 256), GPTQ 4-bit g32
// symmetric, and its float model as an F32 GGUF (the KL base), once per process.
const TinyLlama& tiny_llama() {
  static const TinyLlama t = [] {
    TinyLlama x;
    x.dir = scratch_dir("kq-tiny-llama");
    x.gptq = x.dir / "gptq";
    quantize_model(fixture_model("tiny-llama"), x.gptq,
                   fixture_quantize_options(4, 32, true, false, 32), kSilent);
    x.f32 = x.dir / "f32.gguf";
    gguf::ExportOptions fo;
    fo.from_float = true;
    fo.type = "f32";
    gguf::export_gguf(fixture_model("tiny-llama"), x.f32, fo);
    return x;
  }();
  return t;
}

TEST(GgufKQuantLlamaCpp, TinyLlamaKQuantExportsLoadAndAgreeWithGptqEval) {
  REQUIRE_LLAMA_CPP();
  const TinyLlama& t = tiny_llama();
  const std::vector<int32_t> ids = eval_ids("tiny-llama");
  const fs::path ids_file = t.dir / "ids.json";
  std::ofstream(ids_file) << json(ids).dump();
  EvalOptions eo;
  eo.seqlen = 256;
  eo.max_windows = 2;
  const PerplexityResult ours = evaluate_perplexity(*load_model(t.gptq)->model, ids, eo);
  const std::string common =
      " --ids " + ids_file.string() + " --seqlen 256 --max-windows 2 --base " + t.f32.string();
  gguf::ExportOptions q4;  // exact Q4_0: the reference point
  const fs::path exact = t.dir / "q4_0.gguf";
  gguf::export_gguf(t.gptq, exact, q4);
  const json je = LlamaCpp::get().eval("--model " + exact.string() + common);
  std::printf(
      "[ tiny-llama GPTQ w4g32 ] gptq.cpp ppl %.4f; llama.cpp exact q4_0: ppl %.4f KL %.5f\n",
      ours.ppl, je.at("ppl").get<double>(), je.at("kld").get<double>());
  for (const char* type : {"q4_k", "q3_k"}) {
    gguf::ExportOptions o;
    o.type = type;
    const fs::path out = t.dir / (std::string(type) + ".gguf");
    const gguf::ExportReport r = gguf::export_gguf(t.gptq, out, o);
    ASSERT_EQ(r.layers.size(), 28u);
    double worst = 0;
    for (const auto& l : r.layers) {
      EXPECT_TRUE(gguf::is_k_quant(l.type)) << l.gguf_name;
      EXPECT_EQ(l.mode, gguf::LayerMode::kRefit) << l.gguf_name;
      EXPECT_GT(l.rel_error, 0.0) << l.gguf_name;
      worst = std::max(worst, l.rel_error);
    }
    // ggml reads back what the report measured: the file's blocks, dequantized by ggml.
    const gguf::GgufFile f = gguf::GgufFile::open(out);
    const gguf::GgufTensor* w = f.find(r.layers[0].gguf_name);
    ASSERT_NE(w, nullptr);
    const std::vector<float> ggml =
        LlamaCpp::get().to_float(static_cast<int>(w->type), w->data, w->ne[1], w->ne[0]);
    EXPECT_EQ(ggml, f.to_f32(*w));
    const json j = LlamaCpp::get().eval("--model " + out.string() + common);
    const double ppl = j.at("ppl").get<double>(), kld = j.at("kld").get<double>();
    std::printf(
        "[ tiny-llama GPTQ w4g32 -> %s ] worst layer rel. error %.4f; llama.cpp ppl %.4f (%.2f%% "
        "vs "
        "gptq.cpp), KL vs float %.5f, top1 %.3f\n",
        type, worst, ppl, 100.0 * (ppl / ours.ppl - 1.0), kld, j.at("top1").get<double>());
    const bool three = std::string(type) == "q3_k";
    EXPECT_LT(worst, three ? 0.35 : 0.15) << type;
    EXPECT_NEAR(ppl / ours.ppl, 1.0, three ? 0.15 : 0.05) << type;
    EXPECT_LT(kld, three ? 0.5 : 0.1) << type;
  }
}

TEST(GgufKQuantLlamaCpp, FromFloatQ4KBeatsRoundToNearestQ4_0) {
  REQUIRE_LLAMA_CPP();
  const TinyLlama& t = tiny_llama();
  const fs::path ids_file = t.dir / "ids-ff.json";
  std::ofstream(ids_file) << json(eval_ids("tiny-llama")).dump();
  const std::string common =
      " --ids " + ids_file.string() + " --seqlen 256 --max-windows 2 --base " + t.f32.string();
  gguf::ExportOptions fo;
  fo.from_float = true;
  json res[2];
  double err[2] = {0, 0};
  const char* types[2] = {"q4_0", "q4_k"};
  for (int i = 0; i < 2; ++i) {
    fo.type = types[i];
    const fs::path out = t.dir / (std::string("ff-") + types[i] + ".gguf");
    const gguf::ExportReport r = gguf::export_gguf(fixture_model("tiny-llama"), out, fo);
    for (const auto& l : r.layers) err[i] += l.rel_error / static_cast<double>(r.layers.size());
    res[i] = LlamaCpp::get().eval("--model " + out.string() + common);
  }
  std::printf(
      "[ tiny-llama float -> llama.cpp ] q4_0 RTN: mean rel. error %.4f, ppl %.4f, KL %.5f; q4_K: "
      "mean rel. error %.4f, ppl %.4f, KL %.5f\n",
      err[0], res[0].at("ppl").get<double>(), res[0].at("kld").get<double>(), err[1],
      res[1].at("ppl").get<double>(), res[1].at("kld").get<double>());
  EXPECT_LT(err[1], err[0]);
  EXPECT_LT(res[1].at("kld").get<double>(), res[0].at("kld").get<double>());
}

// Act-order GPTQ (g_idx mixes groups inside 32-column blocks) is re-fitted; `auto` keeps, per
// layer, the smaller error of Q4_0 (today's re-fit) and Q4_K (same 4.5 bits per weight).
TEST(GgufKQuantLlamaCpp, AutoRefitPicksTheSmallestErrorAtTheSameBitsPerWeight) {
  REQUIRE_LLAMA_CPP();
  const TinyLlama& t = tiny_llama();
  const fs::path act = t.dir / "act";
  quantize_model(fixture_model("tiny-llama"), act, fixture_quantize_options(4, 32, true, true, 16),
                 kSilent);
  const gguf::ExportReport ra = gguf::export_gguf(act, t.dir / "act-auto.gguf", {});
  gguf::ExportOptions q4;
  q4.type = "q4_0";
  const gguf::ExportReport rq = gguf::export_gguf(act, t.dir / "act-q4_0.gguf", q4);
  ASSERT_EQ(ra.layers.size(), rq.layers.size());
  int refit = 0, k = 0;
  double sa = 0, sq = 0;
  for (size_t i = 0; i < ra.layers.size(); ++i) {
    const auto& l = ra.layers[i];
    if (l.mode != gguf::LayerMode::kRefit) continue;
    ++refit;
    k += l.type == GgmlType::kQ4_K;
    EXPECT_TRUE(l.type == GgmlType::kQ4_0 || l.type == GgmlType::kQ4_K) << l.gguf_name;
    EXPECT_LE(l.rel_error, rq.layers[i].rel_error + 1e-12) << l.gguf_name;
    EXPECT_NE(l.why.find("smallest relative error of"), std::string::npos) << l.why;
    EXPECT_NE(l.why.find("q4_0 0."), std::string::npos) << l.why;
    sa += l.rel_error;
    sq += rq.layers[i].rel_error;
  }
  ASSERT_GT(refit, 0);
  std::printf(
      "[ tiny-llama GPTQ w4g32 act-order, auto ] %d/%d re-fitted layers Q4_K; mean rel. "
      "error %.4f (Q4_0 re-fit: %.4f)\n",
      k, refit, sa / refit, sq / refit);
  const fs::path ids_file = t.dir / "ids-act.json";
  std::ofstream(ids_file) << json(eval_ids("tiny-llama")).dump();
  const json j = LlamaCpp::get().eval("--model " + (t.dir / "act-auto.gguf").string() + " --ids " +
                                      ids_file.string() + " --seqlen 256 --max-windows 1");
  EXPECT_TRUE(std::isfinite(j.at("ppl").get<double>()));
}

// ---- CLI ----

TEST(GgufKQuantCli, UnknownTypeIsRefusedWithTheAcceptedList) {
  const fs::path out = scratch_dir("kq-cli") / "x.gguf";
  const CliResult r = run_cli("export-gguf " + fixture_model("tiny-llama").string() + " " +
                              out.string() + " --from-float --type q7_k");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--type q7_k: unknown GGUF type (accepted: auto, q4_0, q4_1, q8_0, q2_k, "
                       "q3_k, q4_k, q5_k, q6_k, f16, bf16, f32)"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(out));
  const CliResult h = run_cli("export-gguf --help");
  EXPECT_EQ(h.code, 0) << h.out;
  EXPECT_NE(h.out.find("q4_k"), std::string::npos) << h.out;
}

}  // namespace
}  // namespace gptq::testing
