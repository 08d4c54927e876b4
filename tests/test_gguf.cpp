// GGUF export for llama.cpp: block formats against ggml's own code (libggml-base.so of
// node-llama-cpp, dlopen), the container round trip, the exact/re-fit choice, and end to end:
// GPTQ checkpoints exported, loaded by llama.cpp (libllama through node-llama-cpp), their
// dequantized weights and next-token probabilities compared with gptq.cpp's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <tuple>

#include <sys/wait.h>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "gguf/ggml_quant.h"
#include "gguf/gguf_arch.h"
#include "gguf/gguf_export.h"
#include "gguf/gguf_inspect.h"
#include "gguf/gguf_reader.h"
#include "gguf/gguf_tokenizer.h"
#include "gguf/gguf_writer.h"
#include "infer/load_model.h"
#include "infer/quantized_layer.h"
#include "io/safetensors.h"
#include "model/runtime_targets.h"
#include "nn/eval.h"
#include "support/cli_runner.h"
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

// vocab_size of a tiny config (a multimodal one holds it in text_config).
int64_t tiny_vocab(const json& config) {
  const json& c = config.contains("text_config") ? config.at("text_config") : config;
  return c.at("vocab_size").get<int64_t>();
}

// A tiny family checkpoint with a tokenizer (write_tiny_tokenizer's, or `tokenizer` writes it into
// the checkpoint directory), quantized with GPTQ (bits, group size 32).
fs::path quantized_family(const TinyModel& m, const std::string& tag, int bits,
                          bool act_order = false, bool sym = true, const json& dynamic = nullptr,
                          const std::function<void(const fs::path&)>& tokenizer = nullptr) {
  const fs::path model = write_tiny(m, DType::BF16, 11);
  if (tokenizer)
    tokenizer(model);
  else
    write_tiny_tokenizer(model, tiny_vocab(m.config));
  const fs::path out = scratch_dir(tag) / "gptq";
  QuantizeOptions o;
  o.quant.bits = bits;
  o.quant.group_size = 32;
  o.quant.sym = sym;
  o.quant.desc_act = act_order;
  o.quant.damp_percent = 0.01;
  o.dynamic = dynamic;
  const int64_t vocab = tiny_vocab(m.config);
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
    // llama.cpp's starcoder2 and phi3 have no sliding window (convert_hf_to_gguf.py drops it, or
    // llama.cpp disables it; the export warns).
    if (GetParam() == "starcoder2" || GetParam().starts_with("phi"))
      config["sliding_window"] = nullptr;
    // llama.cpp's gemma2 scales queries by head_dim^-0.5 (a different query_pre_attn_scalar is
    // refused; Gemma 3 folds it into q_norm, so its configs keep theirs).
    if (GetParam() == "gemma2") config["query_pre_attn_scalar"] = config.at("head_dim");
    // llama.cpp's qwen2moe has no dense layers.
    if (GetParam() == "qwen2_moe") config["mlp_only_layers"] = json::array();
    m = tiny_from_config(config);
  }
  const fs::path dir = quantized_family(m, GetParam(), 4);
  const fs::path out = dir.parent_path() / "m.gguf";
  gguf::ExportOptions eo;
  eo.float_type = GgmlType::kF32;  // the tiny checkpoints are BF16: F32 embeddings keep them exact
  const gguf::ExportReport rep = gguf::export_gguf(dir, out, eo);
  for (const auto& l : rep.layers) EXPECT_EQ(l.mode, gguf::LayerMode::kExact) << l.gguf_name;
  const int64_t vocab = tiny_vocab(m.config);
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
                                           "starcoder2", "gpt2", "gpt_neox", "gemma2",
                                           "gemma3_text", "gemma3", "phi3_longrope", "phi4_mini",
                                           "mixtral", "qwen2_moe", "qwen3_moe", "llama3"));

// ---- SentencePiece vocabularies (llama.cpp's "llama" tokenizer) ----

// A byte-fallback SentencePiece model trained on calib.txt as Llama 2's was set up (identity
// normalization, spaces kept, digits split), `type` "bpe" or "unigram"; its tokenizer.model path.
fs::path train_sentencepiece(const std::string& type, int vocab, const std::string& extra = "") {
  const fs::path dir = scratch_dir("spm-" + type + (extra.empty() ? "" : "-extra"));
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + fixture_data("calib.txt").string() + " --model_prefix=" + (dir / "sp").string() +
      " --model_type=" + type + " --vocab_size=" + std::to_string(vocab) +
      " --byte_fallback=true --normalization_rule_name=identity --remove_extra_whitespaces=false "
      "--split_digits=true --character_coverage=1.0 --allow_whitespace_only_pieces=true "
      "--num_threads=1 --minloglevel=2" +
      extra);
  if (!status.ok()) throw std::runtime_error("sentencepiece training: " + status.ToString());
  return dir / "sp.model";
}

// The strings llama.cpp's tokenization is checked on: a leading space, runs of spaces, digits,
// non-ASCII text the vocabulary lacks (byte fallback), a newline, punctuation.
const std::vector<std::string>& tokenizer_check_strings() {
  static const std::vector<std::string> s{
      "And they came over unto the other side of the sea.",
      " leading space and  two   spaces",
      "Chapter 12, verse 345: 6789 and 3.14159",
      "na\xc3\xafve caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 "
      "\xc3\x9c"
      "ber",
      "line one\nline two\n\n\tTabbed",
      "Who had his dwelling among the tombs; and no man could bind him!?"};
  return s;
}

std::vector<std::vector<int32_t>> llama_cpp_tokenize(const fs::path& gguf_file,
                                                     const std::vector<std::string>& strings) {
  const fs::path f = gguf_file.string() + ".strings.json";
  std::ofstream(f) << json(strings).dump();
  const json r =
      LlamaCpp::get().eval("--model " + gguf_file.string() + " --tokenize " + f.string());
  return r.at("tokens").get<std::vector<std::vector<int32_t>>>();
}

// A tiny Llama with vocab_size `vocab` and `write_tokenizer`'s tokenizer, GPTQ 4-bit, exported;
// llama.cpp's tokenization of the check strings must be sentencepiece's own, and its next-token
// probabilities on sentencepiece's ids of calib text gptq.cpp's.
// A unigram model (`bpe` false) is exported with a warning: llama.cpp's SPM tokenizer merges by
// score, so only the agreement is printed.
void check_llama_vocab_export(const std::string& tag, const fs::path& spm_model, int64_t vocab,
                              const std::function<void(const fs::path&)>& write_tokenizer,
                              bool bpe = true, const std::string& family = "llama") {
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(spm_model.string()).ok());
  json config = family_config(family);
  config["vocab_size"] = vocab;
  const fs::path dir =
      quantized_family(tiny_from_config(config), tag, 4, false, true, nullptr, write_tokenizer);
  const fs::path out = dir.parent_path() / "m.gguf";
  gguf::ExportOptions eo;
  eo.float_type = GgmlType::kF32;
  const gguf::ExportReport rep = gguf::export_gguf(dir, out, eo);
  if (bpe) {
    EXPECT_TRUE(rep.warnings.empty());
  } else {
    ASSERT_EQ(rep.warnings.size(), 1u);
    EXPECT_NE(rep.warnings[0].find("sentencepiece unigram model"), std::string::npos)
        << rep.warnings[0];
  }
  {
    const gguf::GgufFile f = gguf::GgufFile::open(out);
    EXPECT_EQ(f.value("tokenizer.ggml.model"), "llama");
    EXPECT_EQ(f.value("tokenizer.ggml.pre"), "default");
    EXPECT_EQ(f.value("tokenizer.ggml.tokens").size(), static_cast<size_t>(vocab));
    EXPECT_EQ(f.value("tokenizer.ggml.scores").size(), static_cast<size_t>(vocab));
    EXPECT_EQ(f.value("tokenizer.ggml.tokens")[vocab - 1],
              "[PAD" + std::to_string(vocab - 1) + "]");
    EXPECT_EQ(f.value("tokenizer.ggml.token_type")[vocab - 1], 5);  // unused
    EXPECT_EQ(f.value("tokenizer.ggml.tokens")[3], "<0x00>");
    EXPECT_EQ(f.value("tokenizer.ggml.token_type")[3], 6);  // byte
    EXPECT_EQ(f.value("tokenizer.ggml.token_type")[0], tag.ends_with("hf") ? 3 : 2);
    EXPECT_EQ(f.value("tokenizer.ggml.bos_token_id"), 1);
    EXPECT_EQ(f.value("tokenizer.ggml.eos_token_id"), 2);
    // Gemma (its tokenizer.model adds no dummy prefix): no space prefix in llama.cpp either.
    if (family == "gemma") {
      EXPECT_EQ(f.value("tokenizer.ggml.add_space_prefix"), false);
    }
  }
  const std::vector<std::string>& strings = tokenizer_check_strings();
  const auto theirs = llama_cpp_tokenize(out, strings);
  ASSERT_EQ(theirs.size(), strings.size());
  size_t same = 0, tokens = 0, bytes = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    std::vector<int> ours;
    ASSERT_TRUE(sp.Encode(strings[i], &ours).ok());
    const std::vector<int32_t> expect(ours.begin(), ours.end());
    if (bpe) {
      EXPECT_EQ(theirs[i], expect) << "string " << i << ": \"" << strings[i] << "\"";
    }
    same += theirs[i] == expect;
    tokens += expect.size();
    for (int id : ours) bytes += sp.IsByte(id);
  }
  EXPECT_GT(bytes, 4u);  // the non-ASCII string went through byte fallback
  std::string text = read_file(fixture_data("calib.txt")).substr(0, 600);
  std::vector<int> enc;
  ASSERT_TRUE(sp.Encode(text, &enc).ok());
  std::vector<int32_t> ids{1};  // <s>
  ids.insert(ids.end(), enc.begin(), enc.begin() + (kFamilyTestTokens - 1));
  const ProbGap gap = compare_with_llama_cpp(dir, out, ids);
  std::printf(
      "[ %s ] llama.cpp tokenization = sentencepiece's on %zu/%zu strings (%zu tokens, %zu byte "
      "tokens); KL(gptq.cpp || llama.cpp) %.2e, max |dp| %.2e, top-1 %d/%d\n",
      tag.c_str(), same, strings.size(), tokens, bytes, gap.kl, gap.max_abs, gap.top1_agree, gap.n);
  for (const auto& l : rep.layers) EXPECT_EQ(l.mode, gguf::LayerMode::kExact) << l.gguf_name;
  EXPECT_LT(gap.kl, 2e-3);
  EXPECT_GE(gap.top1_agree, gap.n - 2);
}

void write_spm_tokenizer_config(const fs::path& dir) {
  std::ofstream(dir / "tokenizer_config.json") << R"({"add_bos_token": true, "add_eos_token": false,
      "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": null,
      "tokenizer_class": "LlamaTokenizer"})";
}

class GgufSentencePiece : public ::testing::TestWithParam<std::string> {};

// "bpe", "unigram" on a Llama; "gemma": a BPE model without the dummy "\u2581" prefix (as Gemma's
// tokenizer.model) on a Gemma.
TEST_P(GgufSentencePiece, TokenizerModelExportsAndLlamaCppTokenizesAsSentencePiece) {
  REQUIRE_LLAMA_CPP();
  const bool gemma = GetParam() == "gemma";
  const fs::path spm = train_sentencepiece(gemma ? "bpe" : GetParam(), 400,
                                           gemma ? " --add_dummy_prefix=false" : "");
  check_llama_vocab_export(
      "spm-" + GetParam(), spm, 416,
      [&](const fs::path& d) {
        fs::copy_file(spm, d / "tokenizer.model", fs::copy_options::overwrite_existing);
        write_spm_tokenizer_config(d);
      },
      GetParam() != "unigram", gemma ? "gemma" : "llama");
}

INSTANTIATE_TEST_SUITE_P(Models, GgufSentencePiece, ::testing::Values("bpe", "unigram", "gemma"));

// The converter's added-token rules: added_tokens.json user-defined; added_tokens_decoder control
// when special or special-looking, else user-defined with "\u2581" as " " (Phi-3: control only when
// special, text kept); all score -1000; ids beyond the pieces "[PAD<i>]" unused, score -10000.
TEST(GgufSentencePieceVocab, AddedTokensAndPaddingFollowTheConverter) {
  const fs::path spm = train_sentencepiece("bpe", 400);
  const fs::path dir = scratch_dir("spm-added");
  fs::copy_file(spm, dir / "tokenizer.model", fs::copy_options::overwrite_existing);
  std::ofstream(dir / "added_tokens.json") << R"({"<extra>": 400})";
  std::ofstream(dir / "tokenizer_config.json") << R"({"bos_token": "<s>", "eos_token": "</s>",
      "add_bos_token": true, "added_tokens_decoder": {
        "401": {"content": "<|im_end|>", "special": false},
        "402": {"content": "\u2581hi\u2581there", "special": false},
        "403": {"content": "<tool>", "special": true}}})";
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(spm.string()).ok());
  const gguf::GgufVocab v = gguf::read_vocab(dir, 410, "", "llama");
  ASSERT_EQ(v.tokens.size(), 410u);
  EXPECT_EQ(v.model, "llama");
  for (int i = 0; i < 400; ++i) {
    EXPECT_EQ(v.tokens[i], sp.IdToPiece(i));
    EXPECT_EQ(v.scores[i], sp.GetScore(i));
  }
  EXPECT_EQ(v.types[0], 2);  // <unk>
  EXPECT_EQ(v.types[1], 3);  // <s>
  EXPECT_EQ(v.types[3], 6);  // <0x00>
  EXPECT_EQ(v.types[300], 1);
  EXPECT_EQ(v.tokens[400], "<extra>");
  EXPECT_EQ(v.types[400], 4);
  EXPECT_EQ(v.types[401], 3);
  EXPECT_EQ(v.tokens[402], " hi there");
  EXPECT_EQ(v.types[402], 4);
  EXPECT_EQ(v.types[403], 3);
  EXPECT_EQ(v.scores[401], -1000.0f);
  EXPECT_EQ(v.tokens[409], "[PAD409]");
  EXPECT_EQ(v.types[409], 5);
  EXPECT_EQ(v.scores[409], -10000.0f);
  EXPECT_EQ(v.unk, 0u);
  EXPECT_EQ(v.bos, 1u);
  EXPECT_EQ(v.eos, 2u);
  EXPECT_EQ(v.add_bos, true);
  EXPECT_FALSE(v.add_space_prefix.has_value());  // llama.cpp's default: on
  EXPECT_TRUE(v.warnings.empty());
  const gguf::GgufVocab phi = gguf::read_vocab(dir, 410, "", "phi3");
  EXPECT_EQ(phi.types[401], 4);
  EXPECT_EQ(phi.tokens[402], "\xe2\x96\x81hi\xe2\x96\x81there");
  EXPECT_EQ(gguf::read_vocab(dir, 410, "", "gemma2").add_space_prefix, false);
  // More pieces than vocab_size, an added id beyond it: refused with the file named.
  EXPECT_THROW(gguf::read_vocab(dir, 399, "", "llama"), Error);
  std::ofstream(dir / "added_tokens.json") << R"({"<extra>": 410})";
  try {
    gguf::read_vocab(dir, 410, "", "llama");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("added_tokens.json"), std::string::npos) << e.what();
  }
}

// The same BPE model as a Hugging Face fast tokenizer.json (byte_fallback, Metaspace), as
// transformers' LlamaConverter writes it: the vocabulary in id order, the merges of every pair of
// pieces whose concatenation is a piece, ordered by that piece's score (SentencePieceExtractor).
TEST(GgufLlamaHfVocab, ByteFallbackTokenizerJsonExportsAndLlamaCppTokenizesAsSentencePiece) {
  REQUIRE_LLAMA_CPP();
  const fs::path spm = train_sentencepiece("bpe", 400);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(spm.string()).ok());
  json vocab = json::object();
  std::map<std::string, int> id;
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    vocab[sp.IdToPiece(i)] = i;
    id[sp.IdToPiece(i)] = i;
  }
  std::vector<std::tuple<float, int, int, std::string>> pairs;  // -score, merged, left, "a b"
  for (int a = 0; a < sp.GetPieceSize(); ++a)
    for (int b = 0; b < sp.GetPieceSize(); ++b) {
      if (!sp.IsByte(a) && !sp.IsControl(a) && !sp.IsUnknown(a) && !sp.IsByte(b) &&
          !sp.IsControl(b) && !sp.IsUnknown(b)) {
        const auto it = id.find(sp.IdToPiece(a) + sp.IdToPiece(b));
        if (it != id.end())
          pairs.emplace_back(-sp.GetScore(it->second), it->second, a,
                             sp.IdToPiece(a) + " " + sp.IdToPiece(b));
      }
    }
  std::sort(pairs.begin(), pairs.end());
  json merges = json::array();
  for (const auto& p : pairs) merges.push_back(std::get<3>(p));
  const json added = json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                                  {{"id", 1}, {"content", "<s>"}, {"special", true}},
                                  {{"id", 2}, {"content", "</s>"}, {"special", true}}});
  const json tj = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "\xe2\x96\x81"}},
                                     {{"type", "Replace"},
                                      {"pattern", {{"String", " "}}},
                                      {"content", "\xe2\x96\x81"}}})}}},
      {"pre_tokenizer", nullptr},
      {"decoder", {{"type", "Sequence"}, {"decoders", json::array()}}},
      {"model",
       {{"type", "BPE"},
        {"unk_token", "<unk>"},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", merges}}}};
  check_llama_vocab_export("spm-json-hf", spm, 416, [&](const fs::path& d) {
    std::ofstream(d / "tokenizer.json") << tj.dump();
    write_spm_tokenizer_config(d);
  });
}

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

// The experts of a stack share one ggml type: expert 0's 8-bit w2 makes the whole ffn_down_exps
// Q8_0, where the 4-bit experts' codes are exact too (the report says why); expert 1's act-order
// w1 has no exact block form: re-fitted in the stack's Q4_0, its error reported.
TEST(GgufLlamaCpp, ExpertStackTakesOneTypeExactOrRefit) {
  REQUIRE_LLAMA_CPP();
  const TinyModel m = tiny_from_config(family_config("mixtral"));
  const fs::path dir = quantized_family(m, "moe8", 4, false, true, json::parse(R"({
        "+:.*\\.experts\\.0\\.w2": {"bits": 8},
        "+:model\\.layers\\.0\\.block_sparse_moe\\.experts\\.1\\.w1": {"desc_act": true}})"));
  const fs::path out = dir.parent_path() / "moe8.gguf";
  gguf::ExportOptions eo;
  eo.float_type = GgmlType::kF32;
  const gguf::ExportReport rep = gguf::export_gguf(dir, out, eo);
  int unified = 0;
  for (const auto& l : rep.layers) {
    if (l.hf_name == "model.layers.0.block_sparse_moe.experts.1.w1") {
      EXPECT_EQ(l.mode, gguf::LayerMode::kRefit);
      EXPECT_EQ(l.type, GgmlType::kQ4_0);
      EXPECT_GT(l.rel_error, 0.0);
      EXPECT_LT(l.rel_error, 0.25);
      EXPECT_NE(l.why.find("re-fitted"), std::string::npos) << l.why;
      continue;
    }
    EXPECT_EQ(l.mode, gguf::LayerMode::kExact) << l.hf_name;
    if (l.gguf_name.ends_with("ffn_down_exps.weight")) {
      EXPECT_EQ(l.type, GgmlType::kQ8_0) << l.hf_name;
      unified += l.why.find("one type for the 8 experts") != std::string::npos;
    } else {
      EXPECT_EQ(l.type, GgmlType::kQ4_0) << l.hf_name;
    }
  }
  EXPECT_EQ(unified, 2 * 7);  // two layers, every expert but the 8-bit one
  std::vector<int32_t> ids = family_ids(kFamilyTestTokens, 5);
  for (auto& t : ids) t %= static_cast<int32_t>(kFamilyVocab);
  const ProbGap gap = compare_with_llama_cpp(dir, out, ids);
  std::printf(
      "[ mixtral, Q8_0 + Q4_0 experts -> one Q8_0 stack, one re-fit ] KL %.2e, top-1 %d/%d\n",
      gap.kl, gap.top1_agree, gap.n);
  EXPECT_LT(gap.kl, 1e-2);
  EXPECT_GE(gap.top1_agree, gap.n - 3);
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
  o.type = "q4_0";
  // What llama.cpp's architecture cannot compute is refused with the reason: a dense layer among
  // Qwen2-MoE's sparse ones (mlp_only_layers [1]), Qwen3-MoE without renormalised top-k weights,
  // Gemma 2 without soft-capping or with a query_pre_attn_scalar other than head_dim (24 != 32).
  auto refused = [&](json config, const std::string& why) {
    const fs::path d = write_tiny(tiny_from_config(config), DType::BF16, 1);
    write_tiny_tokenizer(d, kFamilyVocab);
    try {
      gguf::export_gguf(d, out, o);
      ADD_FAILURE() << why;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  refused(family_config("qwen2_moe"), "qwen2moe has no dense MLP layers; layer 1");
  json q3 = family_config("qwen3_moe");
  q3["norm_topk_prob"] = false;
  refused(q3, "qwen3moe always renormalises the top-k expert weights");
  refused(family_config("gemma2"), "query_pre_attn_scalar of config.json gives 0.204124");
  json g2 = family_config("gemma2");
  g2["query_pre_attn_scalar"] = 32;
  g2["final_logit_softcapping"] = nullptr;
  refused(g2, "gemma2 always soft-caps");
  json g3 = family_config("gemma3_text");
  g3["layer_types"] = {"sliding_attention", "full_attention", "full_attention",
                       "sliding_attention"};
  refused(g3, "follow no such period");
  EXPECT_FALSE(fs::exists(out));
  // Mixtral from float: the experts of a layer stacked into one 3-D tensor.
  const fs::path moe = write_tiny(tiny_from_config(family_config("mixtral")), DType::BF16, 1);
  write_tiny_tokenizer(moe, kFamilyVocab);
  const gguf::ExportReport mr = gguf::export_gguf(moe, out, o);
  EXPECT_EQ(
      std::count_if(mr.layers.begin(), mr.layers.end(),
                    [](const auto& l) { return l.gguf_name == "blk.1.ffn_down_exps.weight"; }),
      8);
  {
    const gguf::GgufFile gf = gguf::GgufFile::open(out);
    const gguf::GgufTensor* down = gf.find("blk.1.ffn_down_exps.weight");
    ASSERT_NE(down, nullptr);
    EXPECT_EQ(down->ne, (std::vector<int64_t>{96, 64, 8}));
    EXPECT_EQ(down->type, GgmlType::kQ4_0);
    const gguf::GgufTensor* router = gf.find("blk.0.ffn_gate_inp.weight");
    ASSERT_NE(router, nullptr);
    EXPECT_EQ(router->ne, (std::vector<int64_t>{64, 8}));
    EXPECT_EQ(router->type, GgmlType::kF32);
    EXPECT_EQ(gf.value("llama.expert_count"), 8);
    EXPECT_EQ(gf.value("llama.expert_used_count"), 2);
    // Expert 5 of the stack is expert 5's weight, quantized alone.
    const TensorStore st = TensorStore::open(moe);
    const std::vector<float> w5 =
        tensor_to_f32(st.get("model.layers.1.block_sparse_moe.experts.5.w2.weight"));
    std::vector<std::byte> q(gguf::row_size(GgmlType::kQ4_0, 96) * 64);
    for (int64_t r = 0; r < 64; ++r)
      gguf::quantize_row(GgmlType::kQ4_0, w5.data() + r * 96, 96,
                         q.data() + r * gguf::row_size(GgmlType::kQ4_0, 96));
    EXPECT_EQ(std::memcmp(down->data + 5 * q.size(), q.data(), q.size()), 0);
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
