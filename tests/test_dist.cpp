// The pieces of the data-parallel calibration that need no MPI (src/dist/, the activation store):
// chunk ranges, the Hessians summed per chunk and folded in chunk order (one chunk = the plain
// accumulator's bytes), 16-bit activations; and through the CLI, --hessian-chunk and
// --activation-dtype: fp32 keeps the bytes of the default run, fp16/bf16 runs are resumable to the
// same bytes. (mpirun itself: tests/mpi/test_mpi.cpp, built with MPI only.)
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>

#include "dist/chunked_hessians.h"
#include "dist/communicator.h"
#include "io/safetensors.h"
#include "pipeline/activation_store.h"
#include "support/fixtures.h"
#include "util/error.h"
#include "util/fp16.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using namespace ::gptq::testing;

TEST(ChunkRange, WholeChunksContiguousAndCovering) {
  for (int64_t n : {0, 1, 5, 12, 13}) {
    for (int64_t chunk : {0, 1, 2, 4, 100}) {
      for (int size = 1; size <= 4; ++size) {
        int64_t next = 0;
        for (int r = 0; r < size; ++r) {
          const dist::Range range = dist::chunk_range(n, chunk, r, size);
          EXPECT_EQ(range.first, next) << n << " " << chunk << " " << r << "/" << size;
          EXPECT_LE(range.first, range.last);
          if (chunk > 0 && range.first < n) {
            EXPECT_EQ(range.first % chunk, 0);
          }
          next = range.last;
        }
        EXPECT_EQ(next, n);
      }
    }
  }
  // 6 chunks of 2 over 3 processes: two chunks each.
  EXPECT_EQ(dist::chunk_range(12, 2, 1, 3).first, 4);
  EXPECT_EQ(dist::chunk_range(12, 2, 1, 3).last, 8);
  // One chunk: the first process holds everything.
  EXPECT_EQ(dist::chunk_range(12, 0, 0, 3).last, 12);
  EXPECT_EQ(dist::chunk_range(12, 0, 2, 3).first, 12);
}

std::vector<std::vector<float>> random_sequences(int n, int64_t k) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<std::vector<float>> seqs;
  for (int s = 0; s < n; ++s) {
    std::vector<float> x(static_cast<size_t>((17 + 5 * s) * k));
    for (auto& v : x) v = nd(rng);
    seqs.push_back(std::move(x));
  }
  return seqs;
}

TEST(ChunkedHessians, OneChunkIsThePlainAccumulator) {
  const int64_t k = 48;
  const auto seqs = random_sequences(7, k);
  HessianAccumulator plain(k);
  dist::ChunkedHessians chunked(0);
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int64_t rows = static_cast<int64_t>(seqs[s].size()) / k;
    plain.add(seqs[s].data(), rows, 1);
    chunked.set_sequence(static_cast<int64_t>(s));
    chunked.add("x", seqs[s].data(), rows, k);
  }
  dist::LocalCommunicator local;
  const auto got = chunked.reduce(local);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got.at("x").finalize(), plain.finalize());
  EXPECT_EQ(got.at("x").nsamples(), 7);
}

TEST(ChunkedHessians, ChunksFoldedInChunkOrder) {
  const int64_t k = 40;
  const auto seqs = random_sequences(7, k);
  // By hand: chunks {0,1}, {2,3}, {4,5}, {6}, each summed from zero, then added in order.
  std::vector<HessianAccumulator> parts;
  for (size_t s = 0; s < seqs.size(); ++s) {
    if (s % 2 == 0) parts.emplace_back(k);
    parts.back().add(seqs[s].data(), static_cast<int64_t>(seqs[s].size()) / k, 1);
  }
  HessianAccumulator expected = parts[0];
  for (size_t c = 1; c < parts.size(); ++c) expected.merge(parts[c]);
  dist::ChunkedHessians chunked(2);
  for (size_t s = seqs.size(); s-- > 0;) {  // any order of the sequences inside a process
    chunked.set_sequence(static_cast<int64_t>(s));
    chunked.add("x", seqs[s].data(), static_cast<int64_t>(seqs[s].size()) / k, k);
  }
  dist::LocalCommunicator local;
  const auto got = chunked.reduce(local);
  EXPECT_EQ(got.at("x").finalize(), expected.finalize());
  EXPECT_EQ(got.at("x").rows_seen(), expected.rows_seen());
}

TEST(ActivationStore, SixteenBitStorageRoundsAndEncodes) {
  const std::vector<float> v{1.0f, -2.5f, 3.14159f, 1e-3f, 60000.f};
  for (ActivationDtype d : {ActivationDtype::kF32, ActivationDtype::kF16, ActivationDtype::kBF16}) {
    ActivationStore a(d);
    a.resize(2);
    a.set(1, std::vector<float>(v));
    EXPECT_EQ(a.values(1), 5);
    EXPECT_EQ(a.bytes(), 5 * a.bytes_per_value());
    const std::vector<float> got = a.get(1);
    for (size_t i = 0; i < v.size(); ++i) {
      const float want = d == ActivationDtype::kF32   ? v[i]
                         : d == ActivationDtype::kF16 ? f16_to_f32(f32_to_f16(v[i]))
                                                      : bf16_to_f32(f32_to_bf16(v[i]));
      EXPECT_EQ(got[i], want) << activation_dtype_name(d) << " " << i;
    }
    ActivationStore b(d);
    b.resize(1);
    const std::string bytes = a.encode(1);
    b.decode(0, bytes.data(), bytes.size());
    EXPECT_EQ(b.get(0), got);
  }
  ActivationStore h(ActivationDtype::kF16);
  h.resize(1);
  EXPECT_THROW(h.set(0, {1e6f}), Error);  // overflows fp16: refused, not Inf
  EXPECT_EQ(parse_activation_dtype("bf16"), ActivationDtype::kBF16);
  EXPECT_THROW(parse_activation_dtype("fp8"), Error);
}

std::map<std::string, std::string> dir_contents(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out[e.path().filename().string()] = read_file(e.path());
  return out;
}

int quantize(const fs::path& out, const std::string& args, const std::string& env = "") {
  const std::string cmd = fmt::format(
      "{} {} quantize {} {} --calib {} --nsamples 6 --seqlen 64 --quiet {} > {}.log 2>&1", env,
      GPTQ_EXE, fixture_model("tiny-llama").string(), out.string(),
      fixture_data("calib.txt").string(), args, out.string());
  return std::system(cmd.c_str());
}

TEST(ActivationDtypeCli, Fp32IsTheDefaultBytesAndSixteenBitResumes) {
  const fs::path dir = scratch_dir("activation-dtype");
  ASSERT_EQ(quantize(dir / "default", ""), 0);
  ASSERT_EQ(quantize(dir / "fp32", "--activation-dtype fp32 --hessian-chunk 0"), 0);
  const auto ref = dir_contents(dir / "default");
  EXPECT_TRUE(dir_contents(dir / "fp32") == ref);
  for (const char* d : {"fp16", "bf16"}) {
    const fs::path whole = dir / d, cut = dir / fmt::format("{}-killed", d);
    ASSERT_EQ(quantize(whole, fmt::format("--activation-dtype {}", d)), 0);
    EXPECT_FALSE(dir_contents(whole) == ref) << d << ": rounded activations give other weights";
    // Killed after two durable blocks (their activations saved), then resumed: the same bytes.
    EXPECT_NE(
        quantize(cut, fmt::format("--activation-dtype {}", d), "GPTQ_TEST_KILL_AFTER_BLOCK=2"), 0);
    ASSERT_EQ(quantize(cut, fmt::format("--activation-dtype {} --resume", d)), 0)
        << read_file(cut.string() + ".log");
    EXPECT_TRUE(dir_contents(cut) == dir_contents(whole)) << d;
  }
  // Chunks of 2 sequences: other sums than one chunk (fp32 is not associative), still a valid run.
  ASSERT_EQ(quantize(dir / "chunk2", "--hessian-chunk 2"), 0);
  EXPECT_EQ(dir_contents(dir / "chunk2").size(), ref.size());
}

// Fraction of the 4-bit codes of every qweight that two GPTQ checkpoints share.
double shared_codes(const fs::path& a, const fs::path& b) {
  const TensorStore sa = TensorStore::open(a), sb = TensorStore::open(b);
  int64_t same = 0, total = 0;
  for (const auto& name : sa.names()) {
    if (!name.ends_with(".qweight")) continue;
    const TensorInfo &ta = sa.get(name), &tb = sb.get(name);
    EXPECT_EQ(ta.nbytes, tb.nbytes) << name;
    if (ta.nbytes != tb.nbytes) return 0;
    for (size_t i = 0; i < ta.nbytes; ++i) {
      const auto x = static_cast<unsigned>(ta.data[i]), y = static_cast<unsigned>(tb.data[i]);
      same += ((x & 15) == (y & 15)) + ((x >> 4) == (y >> 4));
      total += 2;
    }
  }
  return total > 0 ? static_cast<double>(same) / static_cast<double>(total) : 0;
}

// --batch-rows: sequences run through a block together (one GEMM per linear, one SYRK per
// Hessian). The sums are the same up to fp32 rounding; GPTQ's error feedback and the next blocks
// spread a rounding change to a few percent of the codes (another order of the same sums,
// --hessian-chunk 3, keeps 94% of them here), a wrong sum to far more. A batched run killed and
// resumed gives the bytes of the whole run; batches never cross a Hessian chunk (chunks of 2 with
// batches of up to 3 sequences = batches of 2).
TEST(BatchRowsCli, SameQuantizationUpToRoundingAndResumes) {
  const fs::path dir = scratch_dir("batch-rows");
  ASSERT_EQ(quantize(dir / "one", "--batch-rows 0"), 0);
  ASSERT_EQ(quantize(dir / "all", "--batch-rows 100000"), 0);
  ASSERT_EQ(quantize(dir / "two", "--batch-rows 128"), 0);
  const double all = shared_codes(dir / "one", dir / "all"),
               two = shared_codes(dir / "one", dir / "two");
  EXPECT_GE(all, 0.88);
  EXPECT_GE(two, 0.88);
  // The default (2048 rows) takes all six 64-token sequences in one batch.
  ASSERT_EQ(quantize(dir / "default", ""), 0);
  EXPECT_TRUE(dir_contents(dir / "default") == dir_contents(dir / "all"));
  EXPECT_NE(quantize(dir / "two-killed", "--batch-rows 128", "GPTQ_TEST_KILL_AFTER_BLOCK=2"), 0);
  ASSERT_EQ(quantize(dir / "two-killed", "--batch-rows 128 --resume"), 0);
  EXPECT_TRUE(dir_contents(dir / "two-killed") == dir_contents(dir / "two"));
  ASSERT_EQ(quantize(dir / "chunk2", "--hessian-chunk 2 --batch-rows 192"), 0);
  ASSERT_EQ(quantize(dir / "chunk2-two", "--hessian-chunk 2 --batch-rows 128"), 0);
  EXPECT_TRUE(dir_contents(dir / "chunk2") == dir_contents(dir / "chunk2-two"));
  EXPECT_NE(quantize(dir / "negative", "--batch-rows -1"), 0);
}

}  // namespace
}  // namespace gptq
