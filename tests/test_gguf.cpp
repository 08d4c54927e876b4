// GGUF export for llama.cpp: block formats against ggml's own code (libggml-base.so of
// node-llama-cpp, dlopen), the container round trip, the exact/re-fit choice, and end to end:
// GPTQ checkpoints exported, loaded by llama.cpp (libllama through node-llama-cpp), their
// dequantized weights and next-token probabilities compared with gptq.cpp's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include <sys/wait.h>

#include "gguf/ggml_quant.h"
#include "gguf/gguf_arch.h"
#include "gguf/gguf_export.h"
#include "gguf/gguf_inspect.h"
#include "gguf/gguf_reader.h"
#include "gguf/gguf_writer.h"
#include "infer/load_model.h"
#include "infer/quantized_layer.h"
#include "io/safetensors.h"
#include "model/runtime_targets.h"
#include "nn/eval.h"
#include "support/family_models.h"
#include "support/family_quantize.h"
#include "support/fixtures.h"
#include "support/llama_cpp.h"
#include "support/quantize_helpers.h"
#include "support/tiny_models.h"
#include "util/error.h"

namespace gptq::testing {
namespace {

namespace fs = std::filesystem;
using gguf::GgmlType;
using nlohmann::json;

#define REQUIRE_LLAMA_CPP()                                                              \
  do {                                                                                   \
    if (!LlamaCpp::get().available()) GTEST_SKIP() << LlamaCpp::get().why_unavailable(); \
  } while (0)

std::vector<float> random_rows(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  if (n < 128) throw std::invalid_argument("random_rows: n >= 128");
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  // Edge cases: an all-zero block, a block with one outlier, a constant block, a negative maximum.
  std::fill_n(x.begin(), 32, 0.0f);
  x[40] = 3.0f;
  std::fill_n(x.begin() + 64, 32, 0.25f);
  x[100] = -2.0f;
  return x;
}

TEST(GgmlQuant, ReferenceQuantizersAndDequantizersMatchGgmlBitForBit) {
  REQUIRE_LLAMA_CPP();
  const LlamaCpp& lc = LlamaCpp::get();
  const int64_t n = 32 * 64;
  const std::vector<float> x = random_rows(n, 1);
  for (const GgmlType t : {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0, GgmlType::kF16}) {
    SCOPED_TRACE(gguf::type_name(t));
    std::vector<std::byte> ours(gguf::row_size(t, n));
    gguf::quantize_row(t, x.data(), n, ours.data());
    const std::vector<uint8_t> theirs = lc.from_float_ref(static_cast<int>(t), x.data(), n);
    ASSERT_EQ(theirs.size(), ours.size());
    EXPECT_EQ(std::memcmp(theirs.data(), ours.data(), ours.size()), 0);
    std::vector<float> back(static_cast<size_t>(n));
    gguf::dequantize_row(t, ours.data(), n, back.data());
    const std::vector<float> ggml_back = lc.to_float(static_cast<int>(t), ours.data(), 1, n);
    EXPECT_EQ(std::memcmp(back.data(), ggml_back.data(), back.size() * 4), 0);
  }
}

TEST(GgufFile, WriteReadRoundTripIsAtomic) {
  const fs::path out = scratch_dir("gguf") / "t.gguf";
  gguf::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 3);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "\xc4\xa0"});
  w.add_i32_array("tokenizer.ggml.token_type", {1, 1, 3});
  std::vector<float> x = random_rows(128, 2);
  x.resize(64);
  w.add_tensor("a.weight", {64}, GgmlType::kF32, [&] {
    std::vector<std::byte> b(256);
    std::memcpy(b.data(), x.data(), 256);
    return b;
  });
  w.add_tensor("b.weight", {32, 2}, GgmlType::kQ8_0, [&] {
    std::vector<std::byte> b(68);
    gguf::quantize_row(GgmlType::kQ8_0, x.data(), 64, b.data());
    return b;
  });
  EXPECT_THROW(w.add_u32("llama.block_count", 4), Error);
  w.write(out);
  EXPECT_FALSE(fs::exists(out.string() + ".tmp"));
  const gguf::GgufFile f = gguf::GgufFile::open(out);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.value("general.architecture"), "llama");
  EXPECT_EQ(f.value("llama.block_count"), 3);
  EXPECT_EQ(f.value_type("llama.block_count"), gguf::ValueType::kU32);
  EXPECT_FLOAT_EQ(f.value("llama.attention.layer_norm_rms_epsilon").get<float>(), 1e-5f);
  EXPECT_EQ(f.value("tokenizer.ggml.tokens")[2], "\xc4\xa0");
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.to_f32(f.tensors()[0]), x);
  EXPECT_EQ(f.tensors()[1].ne, (std::vector<int64_t>{32, 2}));
  EXPECT_EQ(f.tensors()[1].offset % 32, 0u);

  // A producer that fails leaves no file and no temporary behind.
  gguf::GgufWriter bad;
  bad.add_tensor("c.weight", {32}, GgmlType::kF32,
                 []() -> std::vector<std::byte> { throw Error("boom"); });
  const fs::path out2 = out.parent_path() / "bad.gguf";
  EXPECT_THROW(bad.write(out2), Error);
  EXPECT_FALSE(fs::exists(out2));
  EXPECT_FALSE(fs::exists(out2.string() + ".tmp"));
  // A damaged file is refused with its name.
  std::string bytes = read_file(out);
  std::ofstream(out2, std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  try {
    gguf::GgufFile::open(out2);
    ADD_FAILURE() << "truncated file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.gguf"), std::string::npos) << e.what();
  }
}

TEST(GgufExport, ChoosesTheExactTypeWhenOneExists) {
  gguf::LayerFacts sym4{
      .bits = 4, .blocks_uniform = true, .scales_fp16 = true, .min_offset = -8, .max_offset = 7};
  EXPECT_EQ(gguf::choose_layer_type(sym4, "auto").type, GgmlType::kQ4_0);
  EXPECT_EQ(gguf::choose_layer_type(sym4, "auto").mode, gguf::LayerMode::kExact);
  EXPECT_EQ(gguf::choose_layer_type(sym4, "q8_0").mode,
            gguf::LayerMode::kExact);  // q = code - 8 fits int8
  gguf::LayerFacts sym3{
      .bits = 3, .blocks_uniform = true, .scales_fp16 = true, .min_offset = -4, .max_offset = 3};
  EXPECT_EQ(gguf::choose_layer_type(sym3, "auto").mode, gguf::LayerMode::kExact);
  gguf::LayerFacts sym8{.bits = 8,
                        .blocks_uniform = true,
                        .scales_fp16 = true,
                        .min_offset = -128,
                        .max_offset = 127};
  EXPECT_EQ(gguf::choose_layer_type(sym8, "auto").type, GgmlType::kQ8_0);
  EXPECT_EQ(gguf::choose_layer_type(sym8, "auto").mode, gguf::LayerMode::kExact);
  EXPECT_EQ(gguf::choose_layer_type(sym8, "q4_0").mode, gguf::LayerMode::kRefit);
  gguf::LayerFacts asym4{
      .bits = 4, .blocks_uniform = true, .scales_fp16 = true, .min_offset = -3, .max_offset = 15};
  EXPECT_EQ(gguf::choose_layer_type(asym4, "auto").type, GgmlType::kQ4_1);
  EXPECT_EQ(gguf::choose_layer_type(asym4, "auto").mode, gguf::LayerMode::kMapped);
  EXPECT_EQ(gguf::choose_layer_type(asym4, "q8_0").mode, gguf::LayerMode::kExact);
  gguf::LayerFacts act{
      .bits = 4, .blocks_uniform = false, .scales_fp16 = true, .min_offset = -8, .max_offset = 7};
  EXPECT_EQ(gguf::choose_layer_type(act, "auto").mode, gguf::LayerMode::kRefit);
  EXPECT_NE(gguf::choose_layer_type(act, "auto").why.find("act-order"), std::string::npos);
  EXPECT_THROW(gguf::choose_layer_type(sym4, "iq2_xs"), Error);
}

TEST(GgufExport, LlamaQkPermutationIsTheConvertersOne) {
  ModelHparams hp;
  hp.heads = 2;
  hp.kv_heads = 1;
  // permute(w, 2, 2) on 8 rows: reshape(2, 2, 2).swapaxes(1, 2): rows 0 2 1 3 4 6 5 7.
  EXPECT_EQ(gguf::row_order(gguf::RowOrder::kLlamaQ, 8, hp),
            (std::vector<int64_t>{0, 2, 1, 3, 4, 6, 5, 7}));
  EXPECT_EQ(gguf::row_order(gguf::RowOrder::kLlamaK, 4, hp), (std::vector<int64_t>{0, 2, 1, 3}));
  // GPT-NeoX per head [q k v] (2 heads of 1 row) -> [q0 q1 k0 k1 v0 v1].
  EXPECT_EQ(gguf::row_order(gguf::RowOrder::kNeoxQkv, 6, hp),
            (std::vector<int64_t>{0, 3, 1, 4, 2, 5}));
}

// ---- End to end with llama.cpp ----

struct Exported {
  fs::path gptq_dir, gguf;
  gguf::ExportReport report;
};

// tiny-llama quantized once per process: GPTQ 4-bit, group size 32, symmetric.
const Exported& tiny_llama_q4() {
  static const Exported e = [] {
    Exported x;
    const fs::path dir = scratch_dir("tiny-llama");
    x.gptq_dir = dir / "gptq";
    quantize_model(fixture_model("tiny-llama"), x.gptq_dir,
                   fixture_quantize_options(4, 32, true, false, 32), kSilent);
    x.gguf = dir / "gptq.gguf";
    x.report = gguf::export_gguf(x.gptq_dir, x.gguf, {});
    return x;
  }();
  return e;
}

fs::path write_ids(const std::vector<int32_t>& ids, const std::string& tag) {
  const fs::path f = scratch_dir(tag) / "ids.json";
  std::ofstream(f) << json(ids).dump();
  return f;
}

TEST(GgufLlamaCpp, TinyLlamaQ4_0DequantizesBitForBitInGgml) {
  REQUIRE_LLAMA_CPP();
  const Exported& e = tiny_llama_q4();
  ASSERT_EQ(e.report.layers.size(), 28u);
  for (const auto& l : e.report.layers) {
    EXPECT_EQ(l.type, GgmlType::kQ4_0) << l.gguf_name;
    EXPECT_EQ(l.mode, gguf::LayerMode::kExact) << l.gguf_name;
    EXPECT_EQ(l.rel_error, 0.0) << l.gguf_name;
  }
  const gguf::GgufFile f = gguf::GgufFile::open(e.gguf);
  EXPECT_EQ(f.value("general.architecture"), "llama");
  EXPECT_EQ(f.value("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(f.value("general.file_type"), 2);
  const ModelConfig cfg = ModelConfig::load(e.gptq_dir);
  const TensorStore store = TensorStore::open(e.gptq_dir);
  const auto q = QuantizationConfig::find_in_model_dir(e.gptq_dir);
  int compared = 0;
  for (const auto& l : e.report.layers) {
    const gguf::GgufTensor* t = f.find(l.gguf_name);
    ASSERT_NE(t, nullptr) << l.gguf_name;
    const int64_t k = t->ne[0], n = t->ne[1];
    const std::vector<float> ggml = LlamaCpp::get().to_float(static_cast<int>(t->type), t->data, n,
                                                             k);  // llama.cpp's dequantization
    const std::vector<float> ours =
        dequantize_layer(read_quantized_layer(store, l.hf_name, n, k, *q));
    gguf::RowOrder order = gguf::RowOrder::kAsIs;
    if (l.gguf_name.find("attn_q.") != std::string::npos) order = gguf::RowOrder::kLlamaQ;
    if (l.gguf_name.find("attn_k.") != std::string::npos) order = gguf::RowOrder::kLlamaK;
    const std::vector<int64_t> rows = gguf::row_order(order, n, cfg.hp);
    int64_t mismatches = 0;
    for (int64_t r = 0; r < n; ++r)
      mismatches += std::memcmp(&ggml[r * k], &ours[rows[r] * k], k * sizeof(float)) != 0;
    EXPECT_EQ(mismatches, 0) << l.gguf_name;
    ++compared;
  }
  EXPECT_EQ(compared, 28);
}

TEST(GgufLlamaCpp, TinyLlamaPerplexityAgreesWithGptqEval) {
  REQUIRE_LLAMA_CPP();
  const Exported& e = tiny_llama_q4();
  const std::vector<int32_t> ids = eval_ids("tiny-llama");
  EvalOptions eo;
  eo.seqlen = 256;
  eo.max_windows = 6;
  const fs::path lc_ids = scratch_dir("lc") / "ids.json";
  const PerplexityResult ours = evaluate_perplexity(*load_model(e.gptq_dir)->model, ids, eo);
  const json lc = LlamaCpp::get().eval("--model " + e.gguf.string() + " --text " +
                                       fixture_data("eval.txt").string() + " --ids-out " +
                                       lc_ids.string() + " --seqlen 256 --max-windows 6");
  std::printf("[ tiny-llama GPTQ w4g32 ] perplexity gptq.cpp %.4f, llama.cpp %.4f (%d windows)\n",
              ours.ppl, lc.at("ppl").get<double>(), lc.at("windows").get<int>());
  EXPECT_EQ(lc.at("windows"), 6);
  // llama.cpp tokenizes the text with the exported vocabulary ("gpt-2" pre-tokenizer, merges) into
  // exactly gptq.cpp's ids.
  EXPECT_EQ(json::parse(read_file(lc_ids)).get<std::vector<int32_t>>(), ids);
  EXPECT_NEAR(lc.at("ppl").get<double>() / ours.ppl, 1.0, 0.005);
}

TEST(GgufLlamaCpp, GptqBeatsLlamaCppRoundToNearestQ4_0) {
  REQUIRE_LLAMA_CPP();
  const Exported& e = tiny_llama_q4();
  const fs::path dir = e.gguf.parent_path();
  gguf::ExportOptions fo;
  fo.from_float = true;
  fo.type = "f32";
  gguf::export_gguf(fixture_model("tiny-llama"), dir / "f32.gguf", fo);
  fo.type = "q4_0";
  const gguf::ExportReport rtn =
      gguf::export_gguf(fixture_model("tiny-llama"), dir / "rtn.gguf", fo);
  for (const auto& l : rtn.layers) EXPECT_GT(l.rel_error, 0.0) << l.gguf_name;
  const std::string ids = write_ids(eval_ids("tiny-llama"), "ids").string();
  const std::string common =
      " --ids " + ids + " --seqlen 256 --max-windows 2 --base " + (dir / "f32.gguf").string();
  const json g = LlamaCpp::get().eval("--model " + e.gguf.string() + common);
  const json r = LlamaCpp::get().eval("--model " + (dir / "rtn.gguf").string() + common);
  std::printf(
      "[ llama.cpp, tiny-llama ] GPTQ Q4_0: ppl %.3f KL %.5f top1 %.3f; RTN Q4_0: ppl %.3f KL %.5f "
      "top1 %.3f\n",
      g.at("ppl").get<double>(), g.at("kld").get<double>(), g.at("top1").get<double>(),
      r.at("ppl").get<double>(), r.at("kld").get<double>(), r.at("top1").get<double>());
  EXPECT_LT(g.at("kld").get<double>(), r.at("kld").get<double>());
  EXPECT_LT(g.at("ppl").get<double>(), r.at("ppl").get<double>());
}

// Mean KL(gptq.cpp || llama.cpp) and max |p - p'| of the next-token distributions of `ids`.
}  // namespace
struct ProbGap {
  double kl = 0, max_abs = 0;
  int top1_agree = 0, n = 0;
};

ProbGap compare_with_llama_cpp(const fs::path& gptq_dir, const fs::path& gguf_file,
                               const std::vector<int32_t>& ids) {
  const auto m = load_model(gptq_dir, LinearBackend::kDequantized);
  const std::vector<float> logits = m->model->logits(ids);
  const int64_t vocab = m->model->vocab();
  const fs::path probs = gguf_file.string() + ".probs";
  LlamaCpp::get().eval("--model " + gguf_file.string() + " --ids " +
                       write_ids(ids, "ids").string() + " --seqlen " + std::to_string(ids.size()) +
                       " --probs-out " + probs.string());
  const std::string raw = read_file(probs);
  const int64_t rows = static_cast<int64_t>(ids.size()) - 1;
  EXPECT_EQ(raw.size(), static_cast<size_t>(rows * vocab * 4));
  ProbGap gap;
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = reinterpret_cast<const float*>(raw.data()) + r * vocab;
    const float* l = logits.data() + r * vocab;
    const double lse = log_sum_exp(l, vocab);
    double kl = 0;
    int64_t am = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      const double lp = l[v] - lse;
      kl += std::exp(lp) * (lp - std::log(std::max(static_cast<double>(p[v]), 1e-30)));
      gap.max_abs = std::max(gap.max_abs, std::abs(std::exp(lp) - p[v]));
      if (p[v] > p[am]) am = v;
    }
    gap.kl += kl / static_cast<double>(rows);
    gap.top1_agree += am == argmax(l, vocab);
    ++gap.n;
  }
  return gap;
}
namespace {

// A tiny family checkpoint with a tokenizer, quantized with GPTQ (bits, group size 32).
fs::path quantized_family(const TinyModel& m, const std::string& tag, int bits,
                          bool act_order = false, bool sym = true) {
  const fs::path model = write_tiny(m, DType::BF16, 11);
  write_tiny_tokenizer(model, m.config.at("vocab_size").get<int64_t>());
  const fs::path out = scratch_dir(tag) / "gptq";
  QuantizeOptions o;
  o.quant.bits = bits;
  o.quant.group_size = 32;
  o.quant.sym = sym;
  o.quant.desc_act = act_order;
  o.quant.damp_percent = 0.01;
  const int64_t vocab = m.config.at("vocab_size").get<int64_t>();
  json calib = json::array();
  for (int s = 0; s < 16; ++s) {
    std::vector<int32_t> ids = family_ids(kFamilyTestTokens, 100 + s);
    for (auto& t : ids) t %= static_cast<int32_t>(vocab);
    calib.push_back(ids);
  }
  o.calib.file = out.parent_path() / "calib.json";
  std::ofstream(o.calib.file) << calib.dump();
  o.calib.nsamples = 16;
  o.calib.seqlen = kFamilyTestTokens;
  quantize_model(model, out, o, kSilent);
  return out;
}

class GgufFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufFamily, ExportsLoadsInLlamaCppAndMatchesGptqLogits) {
  REQUIRE_LLAMA_CPP();
  TinyModel m;
  if (GetParam() == "gpt_neox")
    m = neox_model(64, 4, true);
  else if (GetParam() == "gpt2")
    m = gpt2_model(64, 4);
  else {
    json config = family_config(GetParam());
    // llama.cpp's starcoder2 has no sliding window (convert_hf_to_gguf.py drops it; the export
    // warns).
    if (GetParam() == "starcoder2") config["sliding_window"] = nullptr;
    m = tiny_from_config(config);
  }
  const fs::path dir = quantized_family(m, GetParam(), 4);
  const fs::path out = dir.parent_path() / "m.gguf";
  gguf::ExportOptions eo;
  eo.float_type = GgmlType::kF32;  // the tiny checkpoints are BF16: F32 embeddings keep them exact
  const gguf::ExportReport rep = gguf::export_gguf(dir, out, eo);
  for (const auto& l : rep.layers) EXPECT_EQ(l.mode, gguf::LayerMode::kExact) << l.gguf_name;
  const int64_t vocab = m.config.at("vocab_size").get<int64_t>();
  std::vector<int32_t> ids = family_ids(kFamilyTestTokens, 5);
  for (auto& t : ids) t %= static_cast<int32_t>(vocab);
  EXPECT_TRUE(rep.warnings.empty());
  const ProbGap gap = compare_with_llama_cpp(dir, out, ids);
  std::printf("[ %s -> %s ] KL(gptq.cpp || llama.cpp) %.2e, max |dp| %.2e, top-1 agreement %d/%d\n",
              GetParam().c_str(), rep.architecture.c_str(), gap.kl, gap.max_abs, gap.top1_agree,
              gap.n);
  EXPECT_LT(gap.kl, 2e-3);
  EXPECT_GE(gap.top1_agree, gap.n - 2);
}

INSTANTIATE_TEST_SUITE_P(Families, GgufFamily,
                         ::testing::Values("llama", "mistral", "qwen2", "qwen3", "gemma",
                                           "starcoder2", "gpt2", "gpt_neox"));

TEST(GgufLlamaCpp, ThreeBitIsExactActOrderIsRefitWithItsError) {
  REQUIRE_LLAMA_CPP();
  const TinyModel m = tiny_from_config(family_config("llama"));
  // 3-bit symmetric: codes - 4 lie in [-4, 3], inside Q4_0's q - 8: exact.
  const fs::path d3 = quantized_family(m, "w3", 3);
  const gguf::ExportReport r3 = gguf::export_gguf(d3, d3.parent_path() / "w3.gguf", {});
  for (const auto& l : r3.layers) {
    EXPECT_EQ(l.type, GgmlType::kQ4_0) << l.gguf_name;
    EXPECT_EQ(l.mode, gguf::LayerMode::kExact) << l.gguf_name;
  }
  // Act-order: a 32-column block mixes groups, re-fitted; the error is reported.
  const fs::path da = quantized_family(m, "act", 4, true);
  const gguf::ExportReport ra = gguf::export_gguf(da, da.parent_path() / "act.gguf", {});
  int refit = 0;
  for (const auto& l : ra.layers) {
    if (l.mode != gguf::LayerMode::kRefit) continue;
    ++refit;
    EXPECT_GT(l.rel_error, 0.0) << l.gguf_name;
    EXPECT_LT(l.rel_error, 0.25) << l.gguf_name;
    EXPECT_NE(l.why.find("re-fitted"), std::string::npos);
  }
  EXPECT_GT(refit, 0);
  std::vector<int32_t> ids = family_ids(kFamilyTestTokens, 5);
  const ProbGap gap = compare_with_llama_cpp(da, da.parent_path() / "act.gguf", ids);
  std::printf("[ act-order re-fit ] KL(gptq.cpp || llama.cpp) %.2e\n", gap.kl);
  EXPECT_LT(gap.kl, 0.1);
  // Asymmetric 4-bit: Q4_1 with the offset rounded to fp16, error reported; q8_0 holds it exactly.
  const fs::path dq = quantized_family(m, "asym", 4, false, false);
  const gguf::ExportReport rq = gguf::export_gguf(dq, dq.parent_path() / "asym.gguf", {});
  for (const auto& l : rq.layers) {
    EXPECT_EQ(l.type, GgmlType::kQ4_1) << l.gguf_name;
    EXPECT_LT(l.rel_error, 1e-2) << l.gguf_name;
  }
  gguf::ExportOptions q8;
  q8.type = "q8_0";
  for (const auto& l : gguf::export_gguf(dq, dq.parent_path() / "asym8.gguf", q8).layers)
    EXPECT_EQ(l.mode, gguf::LayerMode::kExact) << l.gguf_name;
}

TEST(GgufExport, RefusesWithTheReason) {
  const fs::path out = scratch_dir("refuse") / "x.gguf";
  try {
    gguf::export_gguf(fixture_model("tiny-llama"), out, {});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("--from-float"), std::string::npos) << e.what();
  }
  gguf::ExportOptions o;
  o.from_float = true;
  o.type = "iq2_xs";
  EXPECT_THROW(gguf::export_gguf(fixture_model("tiny-llama"), out, o), Error);
  EXPECT_FALSE(fs::exists(out));
  const fs::path moe = write_tiny(tiny_from_config(family_config("mixtral")), DType::BF16, 1);
  o.type = "q4_0";
  try {
    gguf::export_gguf(moe, out, o);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mixture-of-experts"), std::string::npos) << e.what();
  }
  // A family llama.cpp has but this exporter does not write yet: named.
  const fs::path g2 = write_tiny(tiny_from_config(family_config("gemma2")), DType::BF16, 1);
  write_tiny_tokenizer(g2, kFamilyVocab);
  try {
    gguf::export_gguf(g2, out, o);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gemma2"), std::string::npos) << e.what();
  }
  // StarCoder2's sliding window is dropped as the converter does, with a warning.
  const fs::path sc = write_tiny(tiny_from_config(family_config("starcoder2")), DType::BF16, 1);
  write_tiny_tokenizer(sc, kFamilyVocab);
  const gguf::ExportReport r = gguf::export_gguf(sc, out, o);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("sliding_window 8"), std::string::npos) << r.warnings[0];
  // No tokenizer.json: refused with the file named.
  const fs::path nt = write_tiny(tiny_from_config(family_config("llama")), DType::BF16, 1);
  try {
    gguf::export_gguf(nt, out, o);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
}

// ---- Runtime targets and the CLI ----

TEST(RuntimeTargets, RulesNameWhatEachRuntimeRefuses) {
  const std::vector<TargetLayer> layers{{"model.layers.0.mlp.down_proj", 192, 64, 4, 32}};
  TargetSettings s{.bits = 4, .group_size = 32, .sym = true, .family = "llama"};
  for (const Runtime r : all_runtimes())
    EXPECT_TRUE(check_runtime(r, s, layers).loads()) << runtime_name(r);
  s.bits = 3;
  RuntimeVerdict v = check_runtime(Runtime::kVllm, s, layers);
  ASSERT_FALSE(v.loads());
  EXPECT_NE(v.reasons[0].find("--bits 3"), std::string::npos) << v.reasons[0];
  EXPECT_TRUE(check_runtime(Runtime::kGguf, s, layers).loads());  // 3-bit: exact Q4_0
  s.bits = 4;
  s.sym = false;
  EXPECT_NE(describe_verdict(check_runtime(Runtime::kVllm, s, layers)).find("--asym"),
            std::string::npos);
  s.bits = 8;
  EXPECT_FALSE(
      check_runtime(Runtime::kGguf, s, {{"l", 192, 64, 8, 32}}).loads());  // beyond Q8_0's int8
  s = {.bits = 4, .group_size = 32, .sym = true, .desc_act = true, .family = "llama"};
  v = check_runtime(Runtime::kVllm, s, layers);
  ASSERT_FALSE(v.loads());
  EXPECT_NE(v.reasons[0].find("in_features % 128"), std::string::npos) << v.reasons[0];
  EXPECT_FALSE(check_runtime(Runtime::kGguf, s, layers).loads());
  s.static_groups = true;  // act-order with contiguous groups: exact in GGUF
  EXPECT_TRUE(check_runtime(Runtime::kGguf, s, layers).loads());
  s = {.bits = 4, .group_size = 48, .sym = true, .family = "llama"};
  EXPECT_FALSE(check_runtime(Runtime::kVllm, s, {{"l", 192, 64, 4, 48}}).loads());
  EXPECT_FALSE(check_runtime(Runtime::kGguf, s, {{"l", 192, 64, 4, 48}}).loads());
  EXPECT_FALSE(check_runtime(Runtime::kTransformers, s, {{"l", 200, 64, 4, 40}}).loads());
  s.family = "opt";
  EXPECT_NE(
      describe_verdict(check_runtime(Runtime::kGguf, {.family = "opt"}, layers)).find("family opt"),
      std::string::npos);
  EXPECT_THROW(parse_runtime("tgi"), Error);
  EXPECT_FALSE(parse_runtime("any").has_value());
}

struct CliResult {
  int code = -1;
  std::string out;  // stdout and stderr
};

CliResult run_cli(const std::string& args) {
  CliResult r;
  FILE* p = ::popen((std::string(GPTQ_EXE) + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(GgufCli, TargetRefusesBeforeAnyWorkWithTheRule) {
  const fs::path dir = scratch_dir("target");
  const std::string model = fixture_model("tiny-llama").string();
  CliResult r =
      run_cli("quantize " + model + " " + (dir / "q3").string() + " --bits 3 --target vllm");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--bits 3: vLLM's gptq_marlin loads only 4- or 8-bit symmetric"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir / "q3"));
  r = run_cli("quantize " + model + " " + (dir / "qa").string() + " --asym --target vllm");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--asym: vLLM's gptq_marlin loads only symmetric"), std::string::npos)
      << r.out;
  r = run_cli("quantize " + model + " " + (dir / "qd").string() + " --desc-act --target gguf");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--static-groups"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir / "qd"));
  r = run_cli("quantize " + model + " " + (dir / "qx").string() + " --target tgi");
  EXPECT_EQ(r.code, 2) << r.out;
}

TEST(GgufCli, InspectPrintsRuntimesAndReadsGguf) {
  const Exported& e = tiny_llama_q4();
  CliResult r = run_cli("inspect " + e.gptq_dir.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("runtime     vllm          yes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("runtime     gguf          yes (Q4_0, exact)"), std::string::npos) << r.out;
  r = run_cli("inspect " + e.gguf.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("general.architecture                         \"llama\""), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("28 x q4_0"), std::string::npos) << r.out;
  r = run_cli("inspect " + e.gguf.string() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("metadata").at("llama.block_count"), 4);
  EXPECT_EQ(j.at("tensors").size(), e.report.tensors);
  const fs::path out = e.gguf.parent_path() / "cli.gguf";
  r = run_cli("export-gguf " + e.gptq_dir.string() + " " + out.string() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read_file(out), read_file(e.gguf));  // deterministic, same as the library call
  r = run_cli("export-gguf " + fixture_model("tiny-llama").string() + " " + out.string() +
              ".x --type q4_0");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--from-float"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace gptq::testing
