// Tokenizers: the bundled fixtures' byte-level BPE against their reference ids, hand-worked
// BPE / Metaspace / added-token examples, the Llama-3 / Qwen2 / GPT-2 split regexes, a
// sentencepiece model trained on the fly, and the error messages.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "calib/tokenizer.h"
#include "calib/tokenizer_bytelevel.h"
#include "calib/tokenizer_pretok.h"
#include "calib/sentencepiece_check.h"
#include "calib/tokenizer_regex.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::fixture_data;
using testing::fixture_model;
using testing::read_file;
using testing::scratch_dir;

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// Writes j as dir/tokenizer.json and loads it.
std::unique_ptr<Tokenizer> load_json(const json& j, const std::string& tag) {
  const fs::path dir = scratch_dir(tag);
  write_text(dir / "tokenizer.json", j.dump());
  return Tokenizer::from_model_dir(dir);
}

// The message of the gptq::Error thrown by f ("" if none is thrown).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Bundled fixtures

class FixtureTokenizer : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureTokenizer, ReproducesReferenceEvalIdsAndRoundTrips) {
  const fs::path model = fixture_model(GetParam());
  const std::string text = read_file(fixture_data("eval.txt"));
  ASSERT_GT(text.size(), 100000u);
  const auto expected =
      json::parse(read_file(model / "reference" / "eval_ids.json")).get<std::vector<int32_t>>();

  auto tok = Tokenizer::from_model_dir(model);
  EXPECT_EQ(tok->vocab_size(), 4096);
  EXPECT_EQ(tok->bos_id(), 4095);
  EXPECT_EQ(tok->eos_id(), 4095);

  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok->encode(text);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(ids.size(), expected.size());
  EXPECT_EQ(ids, expected);
  std::printf("[ %s ] encoded %zu bytes -> %zu tokens in %.1f ms (%.0f tokens/s, cold cache)\n",
              GetParam().c_str(), text.size(), ids.size(), secs * 1e3, ids.size() / secs);

  EXPECT_EQ(tok->encode(text, /*add_special_tokens=*/false), expected);  // no BOS added
  EXPECT_EQ(tok->decode(ids), text);
}

INSTANTIATE_TEST_SUITE_P(Models, FixtureTokenizer,
                         ::testing::Values("tiny-llama", "tiny-gpt2", "tiny-llama-outliers",
                                           "tiny-llama-sharded"),
                         [](const auto& param_info) {
                           std::string n = param_info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(FixtureTokenizer, SpecialTokenInTextAndSkipOnDecode) {
  auto tok = Tokenizer::from_model_dir(fixture_model("tiny-llama"));
  const auto a = tok->encode("And Paul");
  const auto b = tok->encode(" said");
  auto ids = tok->encode("And Paul<|endoftext|> said");
  std::vector<int32_t> want = a;
  want.push_back(4095);
  want.insert(want.end(), b.begin(), b.end());
  EXPECT_EQ(ids, want);
  EXPECT_EQ(tok->decode(ids), "And Paul said");
  EXPECT_EQ(tok->decode(ids, /*skip_special_tokens=*/false), "And Paul<|endoftext|> said");
}

TEST(FixtureTokenizer, EncodesConcurrently) {
  auto tok = Tokenizer::from_model_dir(fixture_model("tiny-llama"));
  const std::string text = read_file(fixture_data("calib.txt")).substr(0, 60000);
  // Reference from a second instance, so the threads race on a cold word cache.
  const std::vector<int32_t> want =
      Tokenizer::from_model_dir(fixture_model("tiny-llama"))->encode(text);
  std::vector<std::vector<int32_t>> got(4);
  {
    std::vector<std::jthread> threads;
    for (auto& g : got) threads.emplace_back([&] { g = tok->encode(text); });
  }
  for (const auto& g : got) EXPECT_EQ(g, want);
}

TEST(FixtureTokenizer, RoundTripsNonAsciiText) {
  auto tok = Tokenizer::from_model_dir(fixture_model("tiny-gpt2"));
  const std::string text =
      "na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC "
      "\xF0\x9F\x98\x80\t\r\n  end  ";
  EXPECT_EQ(tok->decode(tok->encode(text)), text);
  EXPECT_TRUE(tok->encode("").empty());
  EXPECT_THROW(tok->encode("bad \xFF byte"), Error);
}

// ---------------------------------------------------------------------------------------------
// A hand-written byte-level BPE tokenizer.json

json tiny_bytelevel_json() {
  return json{
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 9}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}},
        {{"id", 11}, {"content", "<|bos|>"}, {"special", true}, {"normalized", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", {{"type", "ByteLevel"}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab",
         {{"a", 0},
          {"b", 1},
          {"c", 2},
          {"\xC4\xA0", 3},
          {"ab", 4},
          {"abc", 5},
          {"\xC4\xA0"
           "a",
           6},
          {"\xC4\xA0"
           "ab",
           7},
          {"bc", 8},
          {"<|end|>", 9},
          {"aa", 10}}},
        // Mixed legacy "a b" strings and [a, b] pairs.
        {"merges",
         {"a b",
          {"ab", "c"},
          "\xC4\xA0 a",
          {"\xC4\xA0"
           "a",
           "b"},
          "b c",
          "a a"}}}}};
}

TEST(HandWrittenBpe, MergesByRank) {
  auto tok = load_json(tiny_bytelevel_json(), "bytelevel");
  // "abc": a b -> ab (rank 0), ab c -> abc (rank 1).
  EXPECT_EQ(tok->encode("abc"), (std::vector<int32_t>{5}));
  // "Ġab": (a b) has rank 0 < (Ġ a) rank 2, so it merges first and Ġ+ab is no merge.
  EXPECT_EQ(tok->encode(" ab"), (std::vector<int32_t>{3, 4}));
  // "Ġa" alone: rank 2 merge.
  EXPECT_EQ(tok->encode(" a"), (std::vector<int32_t>{6}));
  // "Ġcab": Ġ c ab.
  EXPECT_EQ(tok->encode("abc ab cab"), (std::vector<int32_t>{5, 3, 4, 3, 2, 4}));
  // "bcab": (a b) rank 0 before (b c) rank 4: b c ab -> bc ab.
  EXPECT_EQ(tok->encode("bcab"), (std::vector<int32_t>{8, 4}));
  // Ties go leftmost: "aaa" -> aa a.
  EXPECT_EQ(tok->encode("aaa"), (std::vector<int32_t>{10, 0}));
  // "Ġaaa": (Ġ a) rank 2 before (a a) rank 5 -> Ġa a a -> Ġa aa. Twice, so the second
  // answer comes from the word cache.
  EXPECT_EQ(tok->encode("aaa aaa"), (std::vector<int32_t>{10, 0, 6, 10}));
  EXPECT_EQ(tok->encode("aaa aaa"), (std::vector<int32_t>{10, 0, 6, 10}));
  EXPECT_EQ(tok->vocab_size(), 12);
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_EQ(tok->eos_id(), -1);
}

TEST(HandWrittenBpe, AddedTokensSplitBeforePreTokenization) {
  auto tok = load_json(tiny_bytelevel_json(), "bytelevel");
  EXPECT_EQ(tok->encode("ab<|end|>c"), (std::vector<int32_t>{4, 9, 2}));
  EXPECT_EQ(tok->encode("<|end|><|bos|>"), (std::vector<int32_t>{9, 11}));
  EXPECT_EQ(tok->decode({4, 9, 2}), "abc");
  EXPECT_EQ(tok->decode({4, 9, 2}, false), "ab<|end|>c");
  EXPECT_EQ(tok->decode({7, 3, 5}), " ab abc");
  EXPECT_EQ(tok->decode({4, 1234, 2}), "abc");  // unknown ids are dropped
}

TEST(HandWrittenBpe, IgnoreMerges) {
  json j = tiny_bytelevel_json();
  j["model"]["vocab"]
   ["\xC4\xA0"
    "ab"] = 7;
  EXPECT_EQ(load_json(j, "merges")->encode(" ab"), (std::vector<int32_t>{3, 4}));
  j["model"]["ignore_merges"] = true;
  // A word that is itself in the vocabulary is taken whole (Llama-3).
  EXPECT_EQ(load_json(j, "ignore")->encode(" ab"), (std::vector<int32_t>{7}));
}

TEST(HandWrittenBpe, TemplateProcessingAddsSpecialTokens) {
  json j = tiny_bytelevel_json();
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}},
        {{"type", "TemplateProcessing"},
         {"single",
          {{{"SpecialToken", {{"id", "<|bos|>"}, {"type_id", 0}}}},
           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
           {{"SpecialToken", {{"id", "<|end|>"}, {"type_id", 0}}}}}},
         {"pair", json::array()},
         {"special_tokens",
          {{"<|bos|>", {{"id", "<|bos|>"}, {"ids", {11}}, {"tokens", {"<|bos|>"}}}},
           {"<|end|>", {{"id", "<|end|>"}, {"ids", {9}}, {"tokens", {"<|end|>"}}}}}}}}}};
  auto tok = load_json(j, "template");
  EXPECT_EQ(tok->encode("abc"), (std::vector<int32_t>{11, 5, 9}));
  EXPECT_EQ(tok->encode("abc", false), (std::vector<int32_t>{5}));
  EXPECT_EQ(tok->encode(""), (std::vector<int32_t>{11, 9}));
  EXPECT_EQ(tok->bos_id(), 11);
  EXPECT_EQ(tok->eos_id(), 9);
  EXPECT_EQ(tok->decode({11, 5, 9}), "abc");
}

TEST(HandWrittenBpe, TokenizerConfigAddsBosLikeLlamaTokenizerFast) {
  const fs::path dir = scratch_dir("config");
  write_text(dir / "tokenizer.json", tiny_bytelevel_json().dump());
  // Without a post-processor, add_bos_token / add_eos_token of tokenizer_config.json apply.
  json j = tiny_bytelevel_json();
  j["post_processor"] = nullptr;
  write_text(dir / "tokenizer.json", j.dump());
  write_text(dir / "tokenizer_config.json",
             json{{"add_bos_token", true},
                  {"add_eos_token", true},
                  {"bos_token", "<|bos|>"},
                  {"eos_token", {{"content", "<|end|>"}, {"special", true}}}}
                 .dump());
  auto tok = Tokenizer::from_model_dir(dir);
  EXPECT_EQ(tok->encode("abc"), (std::vector<int32_t>{11, 5, 9}));
  EXPECT_EQ(tok->bos_id(), 11);
  EXPECT_EQ(tok->eos_id(), 9);

  // LlamaTokenizerFast rebuilds the post-processor: BOS by default even over a ByteLevel one.
  write_text(dir / "tokenizer.json", tiny_bytelevel_json().dump());
  write_text(dir / "tokenizer_config.json",
             json{{"tokenizer_class", "LlamaTokenizerFast"}, {"bos_token", "<|bos|>"}}.dump());
  EXPECT_EQ(Tokenizer::from_model_dir(dir)->encode("abc"), (std::vector<int32_t>{11, 5}));

  // add_bos_token without a known bos_token is a clear error.
  write_text(dir / "tokenizer_config.json",
             json{{"tokenizer_class", "LlamaTokenizer"}, {"bos_token", "<nope>"}}.dump());
  const std::string msg = error_of([&] { Tokenizer::from_model_dir(dir); });
  EXPECT_NE(msg.find("bos_token"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tokenizer_config.json"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------
// Added-token flags, on a vocabulary of the 256 byte symbols (id == byte) without merges.

json bytes_only_json(const json& added) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[tok::byte_to_unicode()[b]] = b;
  return json{{"added_tokens", added},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
              {"decoder", {{"type", "ByteLevel"}}},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
}

std::vector<int32_t> bytes_of(std::string_view s) {
  std::vector<int32_t> ids;
  for (char c : s) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

TEST(AddedTokens, StripSingleWordAndLongestMatch) {
  auto tok = load_json(bytes_only_json({{{"id", 256},
                                         {"content", "<m>"},
                                         {"special", true},
                                         {"lstrip", true},
                                         {"rstrip", true},
                                         {"normalized", false}},
                                        {{"id", 257}, {"content", "cat"}, {"single_word", true}},
                                        {{"id", 258}, {"content", "<a>"}, {"special", true}},
                                        {{"id", 259}, {"content", "<a><b>"}, {"special", true}},
                                        {{"id", 260}, {"content", "<k>"}, {"special", true}}}),
                       "added");
  EXPECT_EQ(tok->encode("x  <m>  y"), (std::vector<int32_t>{'x', 256, 'y'}));
  EXPECT_EQ(tok->encode("x <k> y"), (std::vector<int32_t>{'x', ' ', 260, ' ', 'y'}));
  std::vector<int32_t> want = {257, ' '};
  for (int32_t b : bytes_of("concat")) want.push_back(b);
  want.insert(want.end(), {' ', 257, '.'});
  EXPECT_EQ(tok->encode("cat concat cat."), want);
  EXPECT_EQ(tok->encode("<a><b><a>"), (std::vector<int32_t>{259, 258}));
  EXPECT_EQ(tok->decode({'x', 256, 'y'}), "xy");
  EXPECT_EQ(tok->decode({257, ' ', 257}), "cat cat");
  EXPECT_EQ(tok->vocab_size(), 261);
}

// ---------------------------------------------------------------------------------------------
// Llama-2 style sentencepiece BPE in tokenizer.json: "▁" spaces and <0xNN> byte fallback.

const char* kMeta = "\xE2\x96\x81";  // ▁

json llama2_style_json(bool metaspace_pre_tokenizer) {
  const std::string m = kMeta;
  json j = {{"added_tokens",
             {{{"id", 0}, {"content", "<unk>"}, {"special", true}, {"normalized", false}},
              {{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
              {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}}},
            {"normalizer",
             {{"type", "Sequence"},
              {"normalizers",
               {{{"type", "Prepend"}, {"prepend", m}},
                {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", m}}}}}},
            {"pre_tokenizer", nullptr},
            {"post_processor",
             {{"type", "TemplateProcessing"},
              {"single",
               {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
              {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
            {"decoder",
             {{"type", "Sequence"},
              {"decoders",
               {{{"type", "Replace"}, {"pattern", {{"String", m}}}, {"content", " "}},
                {{"type", "ByteFallback"}},
                {{"type", "Fuse"}},
                {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
            {"model",
             {{"type", "BPE"},
              {"unk_token", "<unk>"},
              {"fuse_unk", true},
              {"byte_fallback", true},
              {"vocab",
               {{"<unk>", 0},
                {"<s>", 1},
                {"</s>", 2},
                {"<0xC3>", 3},
                {"<0xA9>", 4},
                {m, 5},
                {"h", 6},
                {"i", 7},
                {m + "h", 8},
                {m + "hi", 9},
                {"e", 10}}},
              {"merges", {m + " h", m + "h i"}}}}};
  if (metaspace_pre_tokenizer) {
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {
        {"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "first"}, {"split", false}};
    // Metaspace drops the ▁ of the first token only, so it runs before Fuse.
    j["decoder"] = {{"type", "Sequence"},
                    {"decoders",
                     {{{"type", "ByteFallback"}},
                      {{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "first"}},
                      {{"type", "Fuse"}}}}};
  }
  return j;
}

TEST(SentencePieceStyleBpe, NormalizerPrependReplaceAndByteFallback) {
  auto tok = load_json(llama2_style_json(false), "llama2");
  // "hi hé" -> ▁hi▁hé: ▁ h i ▁ h <0xC3> <0xA9>; (▁ h) rank 0 twice, then (▁h i).
  const std::vector<int32_t> ids = tok->encode("hi h\xC3\xA9");
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 9, 8, 3, 4}));
  EXPECT_EQ(tok->decode(ids), "hi h\xC3\xA9");
  // Unknown characters without byte tokens become one fused <unk>.
  EXPECT_EQ(tok->encode("hxx"), (std::vector<int32_t>{1, 8, 0}));
  EXPECT_EQ(tok->encode("hi", false), (std::vector<int32_t>{9}));
  // An invalid byte run decodes to U+FFFD per byte.
  EXPECT_EQ(tok->decode({9, 4}), "hi\xEF\xBF\xBD");
  EXPECT_EQ(tok->bos_id(), 1);
}

TEST(SentencePieceStyleBpe, LlamaTokenizerFastConfigDefaults) {
  const fs::path dir = scratch_dir("llamafast");
  json j = llama2_style_json(false);
  j["post_processor"] = nullptr;
  write_text(dir / "tokenizer.json", j.dump());
  // No bos_token anywhere: LlamaTokenizerFast's "<s>"; eos from special_tokens_map.json.
  write_text(dir / "tokenizer_config.json",
             json{{"tokenizer_class", "LlamaTokenizerFast"}, {"add_eos_token", true}}.dump());
  write_text(dir / "special_tokens_map.json", json{{"eos_token", "</s>"}}.dump());
  auto tok = Tokenizer::from_model_dir(dir);
  EXPECT_EQ(tok->encode("hi"), (std::vector<int32_t>{1, 9, 2}));
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->decode({1, 9, 2}), "hi");
  // As the tokenizers crate: Strip only drops the space at the start of the fused text.
  EXPECT_EQ(tok->decode({1, 9, 2}, false), "<s> hi</s>");
}

TEST(SentencePieceStyleBpe, MetaspacePreTokenizerPrependFirst) {
  auto tok = load_json(llama2_style_json(true), "metaspace");
  EXPECT_EQ(tok->encode("hi h\xC3\xA9"), (std::vector<int32_t>{1, 9, 8, 3, 4}));
  EXPECT_EQ(tok->decode({1, 9, 8, 3, 4}), "hi h\xC3\xA9");
  // prepend_scheme "first": no ▁ after an added token.
  EXPECT_EQ(tok->encode("<s>hi"), (std::vector<int32_t>{1, 1, 6, 7}));
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer regexes, worked by hand.

std::vector<std::string> split_isolated(const char* pattern, const std::string& text) {
  tok::Regex re(pattern, "test");
  std::vector<tok::Piece> out;
  tok::split_piece({text, true}, re.find_all(text), tok::SplitBehavior::kIsolated, false, out);
  std::vector<std::string> pieces;
  for (auto& p : out) pieces.push_back(p.text);
  return pieces;
}

const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kSample = "Hello world's 12345 ABC'S  \n\n  x!!\n";

TEST(PreTokenizerRegex, Gpt2) {
  EXPECT_EQ(split_isolated(tok::kGpt2Pattern, kSample),
            (std::vector<std::string>{"Hello", " world", "'s", " 12345", " ABC", "'", "S",
                                      "  \n\n ", " x", "!!", "\n"}));
}

TEST(PreTokenizerRegex, Llama3) {
  // Digits in groups of three; case-insensitive contractions; a lone space before digits; the
  // newline run keeps the spaces before it, and one space stays for " x".
  EXPECT_EQ(split_isolated(kLlama3Pattern, kSample),
            (std::vector<std::string>{"Hello", " world", "'s", " ", "123", "45", " ABC", "'S",
                                      "  \n\n", " ", " x", "!!\n"}));
  EXPECT_EQ(split_isolated(kLlama3Pattern, "caf\xC3\xA9,\xE4\xBD\xA0\xE5\xA5\xBD"),
            (std::vector<std::string>{"caf\xC3\xA9", ",\xE4\xBD\xA0\xE5\xA5\xBD"}));
}

TEST(PreTokenizerRegex, Qwen2) {
  EXPECT_EQ(split_isolated(kQwen2Pattern, kSample),
            (std::vector<std::string>{"Hello", " world", "'s", " ", "1", "2", "3", "4", "5", " ABC",
                                      "'S", "  \n\n", " ", " x", "!!\n"}));
}

TEST(PreTokenizerRegex, SplitBehaviors) {
  tok::Regex dash("-", "test");
  const std::string s = "a--b-";
  auto run = [&](tok::SplitBehavior b, bool invert) {
    std::vector<tok::Piece> out;
    tok::split_piece({s, true}, dash.find_all(s), b, invert, out);
    std::vector<std::string> v;
    for (auto& p : out) v.push_back(p.text);
    return v;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(run(tok::SplitBehavior::kRemoved, false), (V{"a", "b"}));
  EXPECT_EQ(run(tok::SplitBehavior::kIsolated, false), (V{"a", "-", "-", "b", "-"}));
  EXPECT_EQ(run(tok::SplitBehavior::kMergedWithPrevious, false), (V{"a-", "-", "b-"}));
  EXPECT_EQ(run(tok::SplitBehavior::kMergedWithNext, false), (V{"a", "-", "-b", "-"}));
  EXPECT_EQ(run(tok::SplitBehavior::kContiguous, false), (V{"a", "--", "b", "-"}));
  EXPECT_EQ(run(tok::SplitBehavior::kRemoved, true), (V{"-", "-", "-"}));
}

TEST(PreTokenizerRegex, Llama3SequenceInTokenizerJson) {
  // Split(Llama-3 regex, Isolated) + ByteLevel(use_regex=false) on a bytes-only vocabulary:
  // ids are the bytes, and the pieces show through a merge that only joins within a piece.
  json j = bytes_only_json(json::array());
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", kLlama3Pattern}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  j["model"]["vocab"]["12"] = 256;
  j["model"]["vocab"]["23"] = 257;
  j["model"]["merges"] = {"1 2", "2 3"};
  auto tok = load_json(j, "llama3");
  // "1234" -> pieces "123", "4": "123" merges (1 2) first -> [12, 3].
  EXPECT_EQ(tok->encode("1234"), (std::vector<int32_t>{256, '3', '4'}));
  // "4123" -> "412", "3": no merge inside "412" crosses into "3".
  EXPECT_EQ(tok->encode("4123"), (std::vector<int32_t>{'4', 256, '3'}));
  EXPECT_EQ(tok->decode(tok->encode("4123 x")), "4123 x");
}

// ---------------------------------------------------------------------------------------------
// sentencepiece tokenizer.model

TEST(SentencePiece, TrainedModelMatchesProcessorPlusBos) {
  const fs::path dir = scratch_dir("sp");
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + fixture_data("calib.txt").string() +
      " --model_prefix=" + (dir / "tokenizer").string() +
      " --vocab_size=500 --model_type=bpe --byte_fallback=true --split_digits=true"
      " --normalization_rule_name=identity --remove_extra_whitespaces=false"
      " --input_sentence_size=20000 --minloglevel=2");
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_TRUE(fs::exists(dir / "tokenizer.model"));

  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load((dir / "tokenizer.model").string()).ok());
  auto tok = Tokenizer::from_model_dir(dir);
  EXPECT_EQ(tok->vocab_size(), 500);
  EXPECT_EQ(tok->bos_id(), sp.bos_id());
  EXPECT_EQ(tok->eos_id(), sp.eos_id());

  const std::string text = read_file(fixture_data("eval.txt")).substr(0, 20000);
  std::vector<int> direct;
  ASSERT_TRUE(sp.Encode(text, &direct).ok());
  std::vector<int32_t> want = {static_cast<int32_t>(sp.bos_id())};
  want.insert(want.end(), direct.begin(), direct.end());
  const auto ids = tok->encode(text);
  EXPECT_EQ(ids, want);
  EXPECT_EQ(tok->encode(text, false), std::vector<int32_t>(want.begin() + 1, want.end()));
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_EQ(tok->decode(tok->encode("caf\xC3\xA9 \xE2\x82\xAC 42\n")),
            "caf\xC3\xA9 \xE2\x82\xAC 42\n");

  // "<s>" in the text is the BOS token, as with transformers' LlamaTokenizer.
  const auto with_bos = tok->encode("<s>Paul", false);
  ASSERT_FALSE(with_bos.empty());
  EXPECT_EQ(with_bos.front(), sp.bos_id());
  EXPECT_EQ(tok->decode(with_bos, false).substr(0, 3), "<s>");

  // tokenizer_config.json beside it can turn BOS off and EOS on.
  write_text(dir / "tokenizer_config.json",
             json{{"add_bos_token", false}, {"add_eos_token", true}}.dump());
  auto tok2 = Tokenizer::from_model_dir(dir);
  std::vector<int32_t> want2(want.begin() + 1, want.end());
  want2.push_back(sp.eos_id());
  EXPECT_EQ(tok2->encode(text), want2);
}

// A model with a real normalization map (nmt_nfkc) passes the trie check; the same model with its
// trie offsets damaged is refused with an error naming the file instead of crashing sentencepiece.
TEST(SentencePiece, DamagedNormalizationTrieIsRefused) {
  const fs::path dir = scratch_dir("sp-trie");
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + fixture_data("calib.txt").string() + " --model_prefix=" + (dir / "tokenizer").string() +
      " --vocab_size=300 --model_type=bpe --normalization_rule_name=nmt_nfkc"
      " --input_sentence_size=5000 --minloglevel=2");
  ASSERT_TRUE(status.ok()) << status.ToString();
  const std::string good = read_file(dir / "tokenizer.model");
  const auto maps = tok::precompiled_charsmaps(good);
  ASSERT_EQ(maps.size(), 1u);
  ASSERT_GT(maps[0].second, 1024u);
  EXPECT_NO_THROW(tok::check_sentencepiece_model(good, "tokenizer.model"));
  EXPECT_EQ(Tokenizer::from_model_dir(dir)->encode("\xEF\xBC\xA1" "bc", false),  // fullwidth A: NFKC
            Tokenizer::from_model_dir(dir)->encode("Abc", false));

  // Every trie unit's offset bits set: the root's children lie far outside the array.
  std::string bad = good;
  const size_t trie = maps[0].first + 4;
  for (size_t i = 0; i < 16; ++i) bad[trie + 4 * i + 3] = '\x7f';
  write_text(dir / "tokenizer.model", bad);
  try {
    (void)Tokenizer::from_model_dir(dir)->encode("Abc", false);
    ADD_FAILURE() << "a damaged trie was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), ExitCode::kBadInput);
    EXPECT_NE(msg.find((dir / "tokenizer.model").string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("precompiled_charsmap"), std::string::npos) << msg;
  }
  // A replacement offset beyond the strings: the blob's trie length kept, strings cut.
  EXPECT_THROW(tok::check_precompiled_charsmap(good.substr(maps[0].first, maps[0].second - 64), "t"), Error);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(TokenizerErrors, MissingFilesNameTheDirectory) {
  const fs::path dir = scratch_dir("empty");
  const std::string msg = error_of([&] { Tokenizer::from_model_dir(dir); });
  EXPECT_NE(msg.find("no tokenizer.json or tokenizer.model in " + dir.string()), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("copy the tokenizer files"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { Tokenizer::from_sentencepiece(dir / "tokenizer.model"); }), "");
}

TEST(TokenizerErrors, UnsupportedTypesAreNamed) {
  json j = tiny_bytelevel_json();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  std::string msg = error_of([&] { load_json(j, "ws"); });
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pre_tokenizer.type"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'Whitespace'"), std::string::npos) << msg;

  j = tiny_bytelevel_json();
  j["model"]["type"] = "WordPiece";
  msg = error_of([&] { load_json(j, "wp"); });
  EXPECT_NE(msg.find("model.type"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'WordPiece'"), std::string::npos) << msg;

  j = tiny_bytelevel_json();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKD"}}}}};
  msg = error_of([&] { load_json(j, "nfkd"); });
  EXPECT_NE(msg.find("normalizer.normalizers[0].type"), std::string::npos) << msg;
}

TEST(TokenizerErrors, MalformedJsonNamesFileAndKey) {
  json j = tiny_bytelevel_json();
  j["model"].erase("vocab");
  std::string msg = error_of([&] { load_json(j, "novocab"); });
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'model.vocab'"), std::string::npos) << msg;

  j = tiny_bytelevel_json();
  j["model"]["merges"][1] = 42;
  msg = error_of([&] { load_json(j, "badmerge"); });
  EXPECT_NE(msg.find("'model.merges[1]'"), std::string::npos) << msg;

  j = tiny_bytelevel_json();
  j["model"]["merges"].push_back("a zz");
  msg = error_of([&] { load_json(j, "unknownmerge"); });
  EXPECT_NE(msg.find("not in the vocabulary"), std::string::npos) << msg;

  j = tiny_bytelevel_json();
  j["added_tokens"][0].erase("content");
  msg = error_of([&] { load_json(j, "noaddedcontent"); });
  EXPECT_NE(msg.find("'added_tokens[0].content'"), std::string::npos) << msg;

  j = tiny_bytelevel_json();
  j["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  msg = error_of([&] { load_json(j, "badregex"); });
  EXPECT_NE(msg.find("pre_tokenizer.pattern.Regex"), std::string::npos) << msg;

  const fs::path dir = scratch_dir("notjson");
  write_text(dir / "tokenizer.json", "{\"model\": ");
  msg = error_of([&] { Tokenizer::from_model_dir(dir); });
  EXPECT_NE(msg.find((dir / "tokenizer.json").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
}

// A catastrophically backtracking Split pattern exceeds PCRE2's match limit: a tokenizer error
// naming the file and the key (exit code 3), not an internal error.
TEST(TokenizerErrors, CatastrophicRegexIsATokenizerError) {
  json j = tiny_bytelevel_json();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(a|aa|aaa)+$"}}}, {"behavior", "Isolated"}};
  const auto tok = load_json(j, "catastrophic");
  try {
    (void)tok->encode(std::string(64, 'a') + "b", false);
    ADD_FAILURE() << "the match limit was not reached";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), ExitCode::kBadInput) << msg;
    EXPECT_NE(msg.find("tokenizer.json: pre_tokenizer.pattern.Regex"), std::string::npos) << msg;
    EXPECT_NE(msg.find("backtracks catastrophically"), std::string::npos) << msg;
  }
}

TEST(TokenizerErrors, NfcNormalizerPassesNfcTextAndRejectsWhatItCannotNormalize) {
  json j = bytes_only_json(json::array());
  j["normalizer"] = {{"type", "NFC"}};
  auto tok = load_json(j, "nfc");
  const std::string ok = "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80";
  EXPECT_EQ(tok->decode(tok->encode(ok)), ok);
  // "e" + U+0301 COMBINING ACUTE would compose to "é" under NFC.
  const std::string msg = error_of([&] { tok->encode("cafe\xCC\x81"); });
  EXPECT_NE(msg.find("U+0301"), std::string::npos) << msg;
}

}  // namespace
}  // namespace gptq
