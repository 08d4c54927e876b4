// `mpirun -np N gptq quantize` (data-parallel calibration, README "Several machines (MPI)"): the
// output holds the same files and bytes for N = 1, 2 and 3 processes as the single process (plain
// `gptq`, no mpirun) — on the Llama fixture, a Mixtral (experts' Hessians and routed-token counts
// reduced over the processes), with fp16 activations and with the output head; and a run whose
// second process is killed after two durable blocks fails as a whole, leaves OUT.partial/, and
// `--resume` (with another number of processes) completes it to the same bytes.
// Registered only when gptq is built with MPI (GPTQ_MPI) and mpirun is found.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "support/family_models.h"
#include "support/fixtures.h"
#include "support/tiny_models.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using namespace ::gptq::testing;

// Root in a container: Open MPI refuses to start without these.
const std::string kMpirun = fmt::format(
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
    "{} --oversubscribe",
    MPIEXEC);

int run(const std::string& cmd, const fs::path& log) {
  return std::system(fmt::format("{} > {} 2>&1", cmd, log.string()).c_str());
}

std::map<std::string, std::string> dir_contents(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out[e.path().filename().string()] = read_file(e.path());
  return out;
}

std::string quantize_cmd(const fs::path& model, const fs::path& out, const std::string& args) {
  return fmt::format("{} quantize {} {} {} --threads 1 --quiet", GPTQ_EXE, model.string(),
                     out.string(), args);
}

// The plain binary, then mpirun with 1, 2 and 3 processes: the same files, the same bytes.
void expect_same_bytes(const fs::path& model, const std::string& args, const std::string& tag) {
  const fs::path dir = scratch_dir("mpi-" + tag);
  const fs::path single = dir / "single";
  ASSERT_EQ(run(quantize_cmd(model, single, args), dir / "single.log"), 0)
      << read_file(dir / "single.log");
  const auto ref = dir_contents(single);
  ASSERT_GE(ref.size(), 3u);
  for (int np : {1, 2, 3}) {
    const fs::path out = dir / fmt::format("np{}", np);
    const fs::path log = dir / fmt::format("np{}.log", np);
    ASSERT_EQ(run(fmt::format("{} -np {} {}", kMpirun, np, quantize_cmd(model, out, args)), log), 0)
        << read_file(log);
    EXPECT_TRUE(dir_contents(out) == ref)
        << tag << ": mpirun -np " << np << " differs from the single process";
    if (np > 1) {  // the per-block line of the first process: the bytes moved between the processes
      EXPECT_NE(
          read_file(log).find(fmt::format("on {} processes; sent between them: Hessians", np)),
          std::string::npos)
          << read_file(log);
    }
  }
}

std::string llama_args(const std::string& extra = "") {
  return fmt::format("--calib {} --nsamples 12 --seqlen 64 --hessian-chunk 2 {}",
                     fixture_data("calib.txt").string(), extra);
}

TEST(Mpi, SameBytesForOneTwoThreeProcesses) {
  expect_same_bytes(fixture_model("tiny-llama"), llama_args(), "llama");
}

TEST(Mpi, SameBytesWithFp16ActivationsAndHead) {
  expect_same_bytes(fixture_model("tiny-llama"),
                    llama_args("--activation-dtype fp16 --desc-act --lm-head --max-shard-size 1MB"),
                    "fp16");
}

// --hessian-chunk 0 (the default: one chunk) keeps the single-process sums: the first process runs
// every sequence, the solves are still shared.
TEST(Mpi, DefaultOneChunkSameBytes) {
  expect_same_bytes(
      fixture_model("tiny-llama"),
      fmt::format("--calib {} --nsamples 6 --seqlen 64", fixture_data("calib.txt").string()),
      "chunk0");
}

TEST(Mpi, MixtralSameBytes) {
  const fs::path model = write_tiny(tiny_from_config(family_config("mixtral")), DType::BF16, 5);
  nlohmann::json calib = nlohmann::json::array();
  for (int s = 0; s < 9; ++s) {
    std::vector<int32_t> ids;
    for (int t = 0; t < 32; ++t) ids.push_back((t * 7 + s * 11 + t * t) % 50);
    calib.push_back(ids);
  }
  const fs::path f = scratch_dir("mpi-mixtral-calib") / "calib.json";
  std::ofstream(f) << calib.dump();
  expect_same_bytes(
      model,
      fmt::format("--calib {} --seqlen 32 --group-size 32 --allow-unaligned --hessian-chunk 2 "
                  "--moe-experts-per-chunk 3",
                  f.string()),
      "mixtral");
}

TEST(Mpi, KilledProcessFailsTheRunAndResumes) {
  const fs::path model = fixture_model("tiny-llama");
  const fs::path dir = scratch_dir("mpi-kill");
  const std::string args = llama_args();
  const fs::path ref = dir / "ref";
  ASSERT_EQ(run(quantize_cmd(model, ref, args), dir / "ref.log"), 0) << read_file(dir / "ref.log");
  const fs::path out = dir / "out";
  // Three processes; the second (only) is killed with SIGKILL once 2 blocks are durable.
  const std::string q = quantize_cmd(model, out, args);
  const int rc =
      run(fmt::format("{} -np 1 {} : -np 1 env GPTQ_TEST_KILL_AFTER_BLOCK=2 {} : -np 1 {}", kMpirun,
                      q, q, q),
          dir / "killed.log");
  EXPECT_NE(rc, 0) << read_file(dir / "killed.log");
  EXPECT_FALSE(fs::exists(out));
  ASSERT_TRUE(fs::exists(dir / "out.partial" / ".gptq-run" / "state.json"));
  const auto state =
      nlohmann::json::parse(read_file(dir / "out.partial" / ".gptq-run" / "state.json"));
  EXPECT_EQ(state.at("blocks_done").get<int>(), 2);
  // Continued with two processes.
  const fs::path log = dir / "resume.log";
  ASSERT_EQ(run(fmt::format("{} -np 2 {} --resume", kMpirun, q), log), 0) << read_file(log);
  EXPECT_NE(read_file(log).find("resuming: 2 of 4 blocks already done"), std::string::npos)
      << read_file(log);
  EXPECT_FALSE(fs::exists(dir / "out.partial"));
  EXPECT_TRUE(dir_contents(out) == dir_contents(ref))
      << "the resumed run differs from the uninterrupted one";
}

}  // namespace
}  // namespace gptq
