// Calibration sampling: text windows, c4-style JSONL documents, pre-tokenized lists; the random
// draws are reproducible and documented (uniform_int over mt19937_64).
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "calib/dataset.h"
#include "calib/tokenizer.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using ::gptq::testing::fixture_data;
using ::gptq::testing::fixture_model;
using ::gptq::testing::scratch_dir;

TEST(UniformInt, RangeAndReproducible) {
  std::mt19937_64 a(5), b(5);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) {
    const int64_t v = uniform_int(a, 3, 9);
    ASSERT_GE(v, 3);
    ASSERT_LE(v, 9);
    ++counts[static_cast<size_t>(v - 3)];
    EXPECT_EQ(v, uniform_int(b, 3, 9));
  }
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
  EXPECT_EQ(uniform_int(a, 4, 4), 4);
}

TEST(Calibration, TextWindowsAreSlicesOfTheTokenizedFile) {
  const auto tok = Tokenizer::from_model_dir(fixture_model("tiny-llama"));
  std::ifstream in(fixture_data("calib.txt"), std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::vector<int32_t> all = tok->encode(text, false);
  CalibOptions o{fixture_data("calib.txt"), 16, 128, 0};
  const auto seqs = load_calibration(o, tok.get(), 4096);
  ASSERT_EQ(seqs.size(), 16u);
  // Reproduce the documented draws: start = uniform_int(0, L - seqlen - 1).
  std::mt19937_64 rng(0);
  for (const auto& s : seqs) {
    ASSERT_EQ(s.size(), 128u);
    const int64_t start = uniform_int(rng, 0, static_cast<int64_t>(all.size()) - 128 - 1);
    EXPECT_TRUE(std::equal(s.begin(), s.end(), all.begin() + start));
  }
  EXPECT_EQ(load_calibration(o, tok.get(), 4096), seqs);
  o.seed = 1;
  EXPECT_NE(load_calibration(o, tok.get(), 4096), seqs);
}

TEST(Calibration, JsonlSkipsShortDocuments) {
  const auto tok = Tokenizer::from_model_dir(fixture_model("tiny-llama"));
  const fs::path f = scratch_dir("jsonl") / "data.jsonl";
  {
    std::ofstream out(f);
    out << R"({"text": "short"})" << "\n\n";
    out << R"({"text": "And it came to pass in those days, that there went out a decree from Caesar Augustus, that all the world should be taxed. And all went to be taxed, every one into his own city."})"
        << "\n";
    out << R"({"text": "Jesus wept."})" << "\n";
  }
  const auto long_ids = tok->encode(
      "And it came to pass in those days, that there went out a decree from Caesar Augustus, that all the world "
      "should be taxed. And all went to be taxed, every one into his own city.",
      false);
  const auto seqs = load_calibration({f, 5, 16, 3}, tok.get(), 4096);
  ASSERT_EQ(seqs.size(), 5u);
  for (const auto& s : seqs) {
    ASSERT_EQ(s.size(), 16u);
    EXPECT_NE(std::search(long_ids.begin(), long_ids.end(), s.begin(), s.end()), long_ids.end());
  }
  EXPECT_THROW(load_calibration({f, 5, 1000, 3}, tok.get(), 4096), Error);  // no document long enough
}

TEST(Calibration, PreTokenizedUsedAsGiven) {
  const fs::path f = scratch_dir("tok") / "data.json";
  std::ofstream(f) << R"([[1, 2, 3], {"input_ids": [4, 5]}, [6]])";
  const auto seqs = load_calibration({f, 2, 8, 0}, nullptr, 10);
  EXPECT_EQ(seqs, (std::vector<TokenSequence>{{1, 2, 3}, {4, 5}}));
  EXPECT_THROW(load_calibration({f, 3, 8, 0}, nullptr, 5), Error);  // id 6 outside a vocabulary of 5
  std::ofstream(f) << R"([[1, "x"]])";
  EXPECT_THROW(load_calibration({f, 1, 8, 0}, nullptr, 10), Error);
}

// gptq eval --ids reads one id list with the calibration .json reader.
TEST(Calibration, EvalIdsFile) {
  const fs::path f = scratch_dir("ids") / "ids.json";
  std::ofstream(f) << "[3, 1, 4, 1, 5]";
  EXPECT_EQ(load_token_ids(f, 10), (TokenSequence{3, 1, 4, 1, 5}));
  std::ofstream(f) << R"({"input_ids": [2, 7], "attention_mask": [1, 1]})";
  EXPECT_EQ(load_token_ids(f, 10), (TokenSequence{2, 7}));
  EXPECT_THROW(load_token_ids(f, 5), Error);  // 7 outside a vocabulary of 5
  for (const char* bad : {"[]", "[[1, 2]]", "[1, -1]", "[1, 3000000000]", "{\"ids\": [1]}", "[1,", "\"12\""}) {
    std::ofstream(f) << bad;
    EXPECT_THROW(load_token_ids(f, 10), Error) << bad;
  }
  EXPECT_THROW(load_token_ids(scratch_dir("ids") / "missing.json", 10), Error);
  // The calibration reader refuses repeated keys as well now.
  std::ofstream(f) << R"([{"input_ids": [1], "input_ids": [2]}])";
  EXPECT_THROW(load_calibration({f, 1, 8, 0}, nullptr, 10), Error);
}

TEST(Calibration, BadOptions) {
  const auto tok = Tokenizer::from_model_dir(fixture_model("tiny-llama"));
  EXPECT_THROW(load_calibration({fixture_data("calib.txt"), 0, 128, 0}, tok.get(), 4096), Error);
  EXPECT_THROW(load_calibration({fixture_data("calib.txt"), 4, 0, 0}, tok.get(), 4096), Error);
  EXPECT_THROW(load_calibration({"/nonexistent.txt", 4, 16, 0}, tok.get(), 4096), Error);
  EXPECT_THROW(load_calibration({fixture_data("calib.txt"), 4, 16, 0}, nullptr, 4096), Error);  // text needs a tokenizer
}

}  // namespace
}  // namespace gptq
