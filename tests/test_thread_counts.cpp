// `gptq quantize --threads N` through the CLI: the same bytes for N = 1, 2, 3 and 0 (all cores) on
// every fixture model (sharded input, sharded output), every architecture and every family kind;
// and with --threads 1 every stage of the run keeps one core busy at most (process CPU time <=
// wall time, from the report's per-stage figures).
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "support/family_models.h"
#include "support/fixtures.h"
#include "support/tiny_models.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace ::gptq::testing;

const int kThreadCounts[] = {1, 2, 3, 0};

void quantize(const fs::path& model, const fs::path& out, const std::string& args) {
  const fs::path log = fmt::format("{}.log", out.string());
  const std::string cmd = fmt::format("{} quantize {} {} {} --quiet > {} 2>&1", GPTQ_EXE,
                                      model.string(), out.string(), args, log.string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << read_file(log);
}

std::map<std::string, std::string> dir_contents(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out[e.path().filename().string()] = read_file(e.path());
  return out;
}

// Quantizes `model` with every thread count; all outputs must hold the same files and bytes.
// Returns the names of the files.
std::vector<std::string> expect_same_bytes(const fs::path& model, const std::string& args,
                                           const std::string& tag) {
  const fs::path dir = scratch_dir(fmt::format("threads-{}", tag));
  std::map<std::string, std::string> first;
  for (int threads : kThreadCounts) {
    const fs::path out = dir / fmt::format("t{}", threads);
    quantize(model, out, fmt::format("{} --threads {}", args, threads));
    if (::testing::Test::HasFatalFailure()) return {};
    const auto files = dir_contents(out);
    if (first.empty()) {
      first = files;
      EXPECT_GE(first.size(), 3u);
    } else {
      EXPECT_TRUE(files == first) << tag << ": --threads " << threads
                                  << " differs from --threads 1";
    }
  }
  std::vector<std::string> names;
  for (const auto& [name, bytes] : first) names.push_back(name);
  return names;
}

// Pre-tokenized calibration data: 32 tokens (every tiny config has as many positions) with ids
// below 50 (every tiny vocabulary holds them).
fs::path tiny_calibration() {
  json calib = json::array();
  for (int s = 0; s < 8; ++s) {
    std::vector<int32_t> ids;
    for (int t = 0; t < 32; ++t) ids.push_back((t * 7 + s * 11 + t * t) % 50);
    calib.push_back(ids);
  }
  const fs::path f = scratch_dir("threads-calib") / "calib.json";
  std::ofstream(f) << calib.dump();
  return f;
}

struct FixtureCase {
  std::string fixture, args, tag;
};

class FixtureThreads : public ::testing::TestWithParam<FixtureCase> {};

TEST_P(FixtureThreads, SameBytes) {
  const auto& c = GetParam();
  const auto files = expect_same_bytes(fixture_model(c.fixture),
                                       fmt::format("--calib {} --nsamples 8 --seqlen 128 {}",
                                                   fixture_data("calib.txt").string(), c.args),
                                       c.tag);
  if (c.tag == "sharded") {
    EXPECT_NE(std::find(files.begin(), files.end(), "model.safetensors.index.json"), files.end());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, FixtureThreads,
    ::testing::Values(FixtureCase{"tiny-llama", "--desc-act", "llama"},
                      FixtureCase{"tiny-llama-sharded", "--max-shard-size 1MB", "sharded"},
                      FixtureCase{"tiny-llama-outliers", "--bits 3 --group-size -1 --asym",
                                  "outliers"},
                      FixtureCase{"tiny-gpt2", "--static-groups --group-size 64", "gpt2"}),
    [](const auto& p) { return p.param.tag; });

class ArchitectureThreads : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchitectureThreads, SameBytes) {
  const std::string& kind = GetParam();
  TinyModel m;
  if (kind == "gpt2")
    m = gpt2_model(64, 4);
  else if (kind == "opt")
    m = opt_model(64, 4);
  else if (kind == "gpt_neox")
    m = neox_model(64, 4, true);
  else
    m = tiny_from_config(family_config(kind));
  const fs::path model = write_tiny(m, DType::BF16, 5);
  expect_same_bytes(model,
                    fmt::format("--calib {} --seqlen 32 --group-size 32 --allow-unaligned",
                                tiny_calibration().string()),
                    kind);
}

std::vector<std::string> architectures() {
  // The tiny builders of the older architectures, then today's families (llama, mistral, ...).
  std::vector<std::string> out{"gpt2", "opt", "gpt_neox"};
  for (const auto& k : family_kinds()) out.push_back(k);
  return out;
}

INSTANTIATE_TEST_SUITE_P(All, ArchitectureThreads, ::testing::ValuesIn(architectures()),
                         [](const auto& p) { return p.param; });

double children_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_CHILDREN, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// With --threads 1 no stage keeps more than one core busy: process CPU time <= wall time, per
// stage and for the whole process (OpenBLAS's own workers, started when it is loaded, included),
// with a small margin for the clocks' resolution.
TEST(ThreadCounts, OneThreadUsesOneCoreInEveryStage) {
  const fs::path dir = scratch_dir("one-core");
  const double cpu0 = children_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  quantize(fixture_model("tiny-llama"), dir / "q",
           fmt::format("--calib {} --nsamples 32 --seqlen 256 --threads 1 --report {}",
                       fixture_data("calib.txt").string(), (dir / "report.json").string()));
  const double process_wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double process_cpu = children_cpu_seconds() - cpu0;
  std::printf("[ process ] wall %.3f s  cpu %.3f s  cores %.2f\n", process_wall, process_cpu,
              process_cpu / process_wall);
  EXPECT_LE(process_cpu, process_wall * 1.02 + 0.02);
  const json report = json::parse(read_file(dir / "report.json"));
  EXPECT_EQ(report.at("totals").at("threads"), 1);
  double total_wall = 0;
  for (const auto& s : report.at("totals").at("stages")) {
    const double wall = s.at("wall_seconds"), cpu = s.at("cpu_seconds");
    std::printf("[ stage ] %-8s wall %.3f s  cpu %.3f s  cores %.2f\n",
                s.at("name").get<std::string>().c_str(), wall, cpu, wall > 0 ? cpu / wall : 0.0);
    EXPECT_LE(cpu, wall * 1.02 + 0.01) << s.dump();
    total_wall += wall;
  }
  EXPECT_GT(total_wall, 0.5);
}

}  // namespace
}  // namespace gptq
