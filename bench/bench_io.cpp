// Checkpoint read throughput. Generates (once, with SafetensorsWriter) a ~1 GiB F16 checkpoint in
// a temporary directory under /tmp, then measures, in GB/s of F16 bytes read:
//   OpenConvertF32   TensorStore::open + tensor_to_f32 of every tensor (the library path)
//   OpenMemcpy       TensorStore::open + memcpy of every tensor's bytes (1 thread, and split
//                    over as many threads as tensor_to_f32 uses)
//   VectorConvert1T  the Highway f16_to_f32 kernel on one thread
//   ScalarConvert1T  the scalar f16_to_f32 per element (the naive baseline)
// The page cache is warm after generation: these are memory-bound, not disk-bound, figures.
// Run: build-io/bench_io   (GPTQ_BENCH_IO_MB=<size> changes the checkpoint size)
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "util/fp16.h"

namespace {

namespace fs = std::filesystem;
using gptq::TensorStore;

constexpr int kTensors = 8;

struct Checkpoint {
  fs::path dir;
  size_t elems_per_tensor = 0;
  uint64_t f16_bytes = 0;
  ~Checkpoint() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

std::unique_ptr<Checkpoint> g_ckpt;

std::unique_ptr<Checkpoint> generate() {
  const char* mb_env = std::getenv("GPTQ_BENCH_IO_MB");
  const uint64_t total_mb = mb_env ? std::max(8ull, std::strtoull(mb_env, nullptr, 10)) : 1024;
  auto c = std::make_unique<Checkpoint>();
  std::string templ = (fs::temp_directory_path() / "gptq_bench_io_XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  c->dir = templ;
  const int64_t cols = 4096;
  const int64_t rows = static_cast<int64_t>((total_mb << 20) / kTensors / 2 / cols);
  c->elems_per_tensor = static_cast<size_t>(rows * cols);
  c->f16_bytes = uint64_t{kTensors} * c->elems_per_tensor * 2;

  std::vector<gptq::TensorSpec> specs;
  for (int i = 0; i < kTensors; ++i) {
    specs.push_back({fmt::format("model.layers.{}.mlp.weight", i), gptq::DType::F16, {rows, cols}});
  }
  gptq::SafetensorsWriter::Options opt;
  opt.metadata = {{"format", "pt"}};
  gptq::SafetensorsWriter writer(c->dir, specs, opt);
  const size_t piece = size_t{8} << 20;  // elements per write
  std::vector<float> f(piece);
  std::vector<uint16_t> h(piece);
  uint32_t state = 12345;
  for (int i = 0; i < kTensors; ++i) {
    for (size_t off = 0; off < c->elems_per_tensor; off += piece) {
      const size_t n = std::min(piece, c->elems_per_tensor - off);
      for (size_t k = 0; k < n; ++k) {
        state = state * 1664525u + 1013904223u;
        f[k] = static_cast<float>(static_cast<int32_t>(state)) * 1e-11f;  // about +-0.02
      }
      gptq::f32_to_f16(f.data(), h.data(), n);
      writer.write(specs[i].name, h.data(), 2 * n, 2 * off);
    }
  }
  writer.finish();
  return c;
}

size_t conversion_threads() {
  return std::min<size_t>(16, std::max(1u, std::thread::hardware_concurrency()));
}

// Touched once, so that page faults of the destination are not measured.
std::vector<char>& scratch(size_t bytes) {
  static std::vector<char> buf;
  if (buf.size() < bytes) buf.assign(bytes, 1);
  return buf;
}

void BM_OpenConvertF32(benchmark::State& state) {
  float* out = reinterpret_cast<float*>(scratch(g_ckpt->elems_per_tensor * 4).data());
  for (auto _ : state) {
    const TensorStore store = TensorStore::open(g_ckpt->dir);
    for (const std::string& name : store.names()) gptq::tensor_to_f32(store.get(name), out);
    benchmark::DoNotOptimize(out[0]);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * g_ckpt->f16_bytes));
}

void copy_split(char* dst, const std::byte* src, size_t n, size_t threads) {
  if (threads <= 1) {
    std::memcpy(dst, src, n);
    return;
  }
  std::vector<std::thread> pool;
  const size_t chunk = (n / threads + 4095) / 4096 * 4096;
  for (size_t b = chunk; b < n; b += chunk) {
    pool.emplace_back([=] { std::memcpy(dst + b, src + b, std::min(chunk, n - b)); });
  }
  std::memcpy(dst, src, std::min(chunk, n));
  for (auto& t : pool) t.join();
}

void BM_OpenMemcpy(benchmark::State& state) {
  const size_t threads = static_cast<size_t>(state.range(0));
  char* out = scratch(g_ckpt->elems_per_tensor * 4).data();
  for (auto _ : state) {
    const TensorStore store = TensorStore::open(g_ckpt->dir);
    for (const std::string& name : store.names()) {
      const gptq::TensorInfo& t = store.get(name);
      copy_split(out, t.data, t.nbytes, threads);
    }
    benchmark::DoNotOptimize(out[0]);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * g_ckpt->f16_bytes));
}

template <bool kVector>
void BM_Convert1T(benchmark::State& state) {
  float* out = reinterpret_cast<float*>(scratch(g_ckpt->elems_per_tensor * 4).data());
  const TensorStore store = TensorStore::open(g_ckpt->dir);
  for (auto _ : state) {
    for (const std::string& name : store.names()) {
      const gptq::TensorInfo& t = store.get(name);
      const auto* in = reinterpret_cast<const uint16_t*>(t.data);  // 8-byte aligned data
      const size_t n = t.nbytes / 2;
      if constexpr (kVector) {
        gptq::f16_to_f32(in, out, n);
      } else {
        for (size_t i = 0; i < n; ++i) out[i] = gptq::f16_to_f32(in[i]);
      }
    }
    benchmark::DoNotOptimize(out[0]);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * g_ckpt->f16_bytes));
}

// Console output plus the GB/s of each run, for the ratios printed at the end.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      const auto it = r.counters.find("bytes_per_second");
      if (it != r.counters.end()) rates_[r.benchmark_name()] = it->second.value / 1e9;
    }
  }
  void print_ratios(size_t threads) const {
    auto rate = [&](const std::string& prefix) {
      for (const auto& [name, v] : rates_) {
        if (name.rfind(prefix, 0) == 0) return v;
      }
      return 0.0;
    };
    const double conv = rate("BM_OpenConvertF32");
    const double copy1 = rate("BM_OpenMemcpy/1/");
    const double copyn = rate(fmt::format("BM_OpenMemcpy/{}/", threads));
    const double vec = rate("BM_VectorConvert1T");
    const double scalar = rate("BM_ScalarConvert1T");
    if (conv <= 0 || copy1 <= 0 || scalar <= 0) return;
    fmt::print(
        "\nF16 bytes read per second (GB/s): open+convert {:.2f} ({} threads), memcpy "
        "{:.2f} (1 thread) / {:.2f} ({} threads), vector convert {:.2f} (1 thread), "
        "scalar convert {:.2f} (1 thread)\n",
        conv, threads, copy1, copyn, threads, vec, scalar);
    fmt::print(
        "ratios: open+convert / memcpy = {:.2f} (1 thread) / {:.2f} ({} threads); "
        "open+convert / scalar = {:.1f}x; vector / scalar (1 thread) = {:.1f}x\n",
        conv / copy1, copyn > 0 ? conv / copyn : 0.0, threads, conv / scalar, vec / scalar);
  }

 private:
  std::map<std::string, double> rates_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  g_ckpt = generate();
  const size_t threads = conversion_threads();
  fmt::print(
      "checkpoint: {} x F16 [{}, 4096] = {:.2f} GB in {} (generated with "
      "SafetensorsWriter; the page cache is warm, so these figures are memory-bound, "
      "not disk-bound)\n",
      kTensors, g_ckpt->elems_per_tensor / 4096, g_ckpt->f16_bytes / 1e9, g_ckpt->dir.string());
  benchmark::RegisterBenchmark("BM_OpenConvertF32", BM_OpenConvertF32)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_OpenMemcpy", BM_OpenMemcpy)
      ->Arg(1)
      ->Arg(static_cast<int64_t>(threads))
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_VectorConvert1T", BM_Convert1T<true>)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_ScalarConvert1T", BM_Convert1T<false>)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->Iterations(2);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios(threads);
  benchmark::Shutdown();
  g_ckpt.reset();  // removes the temporary checkpoint
  return 0;
}
