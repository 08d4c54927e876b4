// Replays every input that fuzzing ever flagged (tests/regressions/<target>/<case>) and the seed
// corpus (fuzz/corpus/<target>/) through the fuzz targets' own entry points (fuzz/targets.h):
// each must be accepted or rejected with a gptq::Error that is not internal, and, in the
// sanitizer build (scripts/sanitize.sh), without an ASan/UBSan report.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "../fuzz/targets.h"
#include "support/fixtures.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::string target;
  fs::path file;
};

std::vector<Case> cases_under(const fs::path& root) {
  std::vector<Case> out;
  if (!fs::is_directory(root)) return out;
  for (const auto& [name, entry] : fuzz::targets()) {
    (void)entry;
    if (!fs::is_directory(root / name)) continue;
    for (const auto& e : fs::directory_iterator(root / name))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back({name, e.path()});
  }
  std::sort(out.begin(), out.end(), [](const Case& a, const Case& b) { return a.file < b.file; });
  return out;
}

void replay(const Case& c) {
  SCOPED_TRACE(c.file.string());
  const std::string bytes = ::gptq::testing::read_file(c.file);
  const auto entry = fuzz::targets().at(c.target);
  // fuzz::expect_clean aborts on an internal error; any other exception surfaces here.
  EXPECT_NO_THROW(entry(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

class FuzzRegression : public ::testing::TestWithParam<Case> {};
TEST_P(FuzzRegression, RejectedCleanly) { replay(GetParam()); }

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string n = info.param.target + "_" + info.param.file.filename().string();
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n + "_" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(Regressions, FuzzRegression,
                         ::testing::ValuesIn(cases_under(fs::path(GPTQ_SOURCE_DIR) / "tests" / "regressions")),
                         case_name);
INSTANTIATE_TEST_SUITE_P(SeedCorpus, FuzzRegression,
                         ::testing::ValuesIn(cases_under(fs::path(GPTQ_SOURCE_DIR) / "fuzz" / "corpus")), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FuzzRegression);

// The seeds are meant to be accepted (they reach deep into the loaders); check a few by name.
TEST(FuzzSeeds, LoaderSeedsLoad) {
  const fs::path dir = fs::path(GPTQ_SOURCE_DIR) / "fuzz" / "corpus" / "gptq_loader";
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.path().filename().string().starts_with("rtn-variant-")) continue;
    const std::string bytes = ::gptq::testing::read_file(e.path());
    const int variant = static_cast<uint8_t>(bytes.back()) & 3;
    const fs::path d = ::gptq::testing::scratch_dir("seed");
    const std::string cfg = fuzz::loader_config(variant).dump(2);
    fuzz::write_bytes(d / "config.json", cfg.data(), cfg.size());
    fuzz::write_bytes(d / "model.safetensors", bytes.data(), bytes.size() - 1);
    const auto m = load_model(d);
    EXPECT_EQ(m->quantized_layers, 7) << e.path();
    const auto logits = m->model->logits(std::vector<int32_t>{1, 2, 3});
    for (float v : logits) {
      ASSERT_TRUE(std::isfinite(v)) << e.path();
    }
    ++n;
  }
  EXPECT_EQ(n, 4);
}

TEST(FuzzSeeds, TokenizerSeedsLoad) {
  const fs::path dir = fs::path(GPTQ_SOURCE_DIR) / "fuzz" / "corpus" / "tokenizer";
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const fs::path d = ::gptq::testing::scratch_dir("tok");
    fs::copy_file(e.path(), d / "tokenizer.json");
    const auto tok = Tokenizer::from_tokenizer_json(d / "tokenizer.json");
    const auto ids = tok->encode("and the end in 2024, caf\xc3\xa9!", true);
    EXPECT_FALSE(ids.empty()) << e.path();
    for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < tok->vocab_size()) << e.path() << " id " << id;
    ++n;
  }
  EXPECT_GE(n, 4);
}

}  // namespace
}  // namespace gptq
