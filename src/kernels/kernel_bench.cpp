#include "kernels/kernel_bench.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>

#include "kernels/quant_kernels.h"
#include "kernels/quant_linear.h"
#include "util/blas.h"
#include "util/thread_pool.h"
#include "util/error.h"

namespace gptq::kernels::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// splitmix64: fast, good enough for benchmark data.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
};

std::string shape_name(int64_t n, int64_t k) {
  return fmt::format("{}x{}", n, k);
}

std::string quant_name(const LayerSpec& s) {
  return fmt::format("q{} g{}{}", s.bits, s.group_size, s.act_order ? " act" : "");
}

// 1-minute load average ("?" if unknown).
std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string v;
  return f >> v ? v : "?";
}

// Number of copies so that `bytes` each add up to at least `target` (>= 2).
int copies_for(double bytes, int64_t target) {
  return static_cast<int>(std::clamp<double>(std::ceil(double(target) / bytes), 2.0, 20000.0));
}

}  // namespace

PackedLinear random_packed(const LayerSpec& s, uint32_t seed) {
  Rng rng{seed * 0x9E3779B97F4A7C15ull + 1};
  const int maxq = (1 << s.bits) - 1;
  const int64_t gs = s.group_size > 0 ? s.group_size : s.k;
  const int64_t groups = (s.k + gs - 1) / gs;
  std::vector<uint8_t> codes(static_cast<size_t>(s.n * s.k));
  for (size_t i = 0; i < codes.size(); i += 8) {
    uint64_t r = rng.next();
    for (size_t j = i; j < std::min(codes.size(), i + 8); ++j, r >>= 8) {
      codes[j] = static_cast<uint8_t>(r & maxq);
    }
  }
  std::vector<float> scales(static_cast<size_t>(groups * s.n)), zeros(scales.size());
  for (auto& v : scales) v = 0.002f + 0.02f * rng.uniform();
  for (auto& z : zeros) z = static_cast<float>(rng.next() & maxq);
  std::vector<int32_t> g_idx(static_cast<size_t>(s.k));
  std::vector<int64_t> order(static_cast<size_t>(s.k));
  std::iota(order.begin(), order.end(), 0);
  if (s.act_order) {
    for (int64_t i = s.k - 1; i > 0; --i) std::swap(order[i], order[rng.next() % (i + 1)]);
  }
  for (int64_t i = 0; i < s.k; ++i) g_idx[order[i]] = static_cast<int32_t>(i / gs);
  return pack_linear(codes.data(), scales.data(), zeros.data(), g_idx.data(), s.n, s.k, groups,
                     s.bits, s.group_size, CheckpointFormat::kGptq);
}

std::vector<float> random_activations(int64_t rows, int64_t k, uint32_t seed) {
  Rng rng{seed + 12345ull};
  std::vector<float> x(static_cast<size_t>(rows * k));
  for (auto& v : x) v = 2.0f * rng.uniform() - 1.0f;
  return x;
}

int64_t llc_bytes() {
  for (int idx = 4; idx >= 0; --idx) {
    std::ifstream lvl(fmt::format("/sys/devices/system/cpu/cpu0/cache/index{}/level", idx));
    std::ifstream size(fmt::format("/sys/devices/system/cpu/cpu0/cache/index{}/size", idx));
    int level = 0;
    std::string sz;
    if (lvl >> level && size >> sz && level >= 2 && !sz.empty()) {
      int64_t v = std::atoll(sz.c_str());
      if (sz.back() == 'K') v <<= 10;
      if (sz.back() == 'M') v <<= 20;
      if (v > 0) return v;
    }
  }
#ifdef _SC_LEVEL3_CACHE_SIZE
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (l3 > 0) return l3;
#endif
  return int64_t{32} << 20;
}

double memory_bandwidth(int64_t bytes, int threads, int reps) {
  const int64_t n = bytes / static_cast<int64_t>(sizeof(float));
  std::unique_ptr<float[]> buf(new float[static_cast<size_t>(n)]);
  const std::shared_ptr<ThreadPool> shared = shared_pool(threads);
  ThreadPool& pool = *shared;
  // First touch by the threads that read it (NUMA placement), values small.
  const int64_t tasks = 64 * threads;  // 1/64 of a thread's share per task
  pool.run(
      tasks,
      [&](int64_t i) {
        const int64_t a = split_begin(n, tasks, i), e = split_begin(n, tasks, i + 1);
        for (int64_t j = a; j < e; ++j) buf[j] = static_cast<float>(j & 7);
      },
      threads);
  double best = 0.0;
  std::vector<float> sink(static_cast<size_t>(tasks));
  for (int r = 0; r < 2 * reps; ++r) {
    const int streams = r % 2 == 0 ? 1 : 4;  // best of one and four streams per thread
    const auto t0 = Clock::now();
    pool.run(
        tasks,
        [&](int64_t i) {
          const int64_t a = split_begin(n, tasks, i), e = split_begin(n, tasks, i + 1);
          sink[i] = sum_floats(buf.get() + a, static_cast<size_t>(e - a), streams);
        },
        threads);
    best = std::max(best, double(n) * sizeof(float) / seconds_since(t0) / 1e9);
  }
  volatile float keep = sink[0];
  (void)keep;
  return best;
}

Timing time_calls(const std::function<void(int64_t)>& fn, double min_time, int64_t min_calls,
                  int warmup) {
  int64_t i = 0;
  for (; i < warmup; ++i) fn(i);
  std::vector<double> t;
  const auto start = Clock::now();
  while (static_cast<int64_t>(t.size()) < min_calls || seconds_since(start) < min_time) {
    const auto t0 = Clock::now();
    fn(i++);
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  Timing r;
  r.calls = static_cast<int64_t>(t.size());
  r.best_s = t.front();
  r.median_s = t[t.size() / 2];
  return r;
}

namespace {

struct Runner {
  const BenchOptions& opt;
  std::FILE* progress;
  int threads;
  int64_t cold_target;
  BenchReport& report;

  void note(const std::string& what) {
    if (progress) fmt::print(progress, "bench: {}\n", what);
  }

  // Quantized kernels of one layer spec, at every batch size.
  void quant(const LayerSpec& s, const std::vector<int64_t>& batches, bool with_dequant_sgemm) {
    note(fmt::format("{} {} (build)", shape_name(s.n, s.k), quant_name(s)));
    std::vector<QuantLinear> mats;
    {
      const PackedLinear p = random_packed(s, static_cast<uint32_t>(s.n * 31 + s.k + s.bits));
      mats.emplace_back(p);
    }
    const double bytes = static_cast<double>(mats[0].weight_bytes());
    const int copies = copies_for(bytes, cold_target);
    mats.reserve(copies);
    for (int c = 1; c < copies; ++c) mats.emplace_back(mats[0]);
    for (int64_t rows : batches) {
      const std::vector<float> x = random_activations(rows, s.k, 7);
      std::vector<float> y(static_cast<size_t>(rows * s.n));
      std::vector<std::pair<GemmPath, std::string>> paths;
      if (rows == 1) {
        paths = {{GemmPath::kFused, "gemv"}};
      } else {
        paths = {{GemmPath::kFused, "fused"}};
        if (with_dequant_sgemm) paths.emplace_back(GemmPath::kDequantSgemm, "dequant+sgemm");
      }
      for (const auto& [path, pname] : paths) {
        BenchResult r;
        r.kernel = fmt::format("{} {}", quant_name(s), pname);
        r.family = path == GemmPath::kDequantSgemm ? "dequant+sgemm" : "quant";
        r.n = s.n;
        r.k = s.k;
        r.rows = rows;
        r.bits = s.bits;
        r.group_size = s.group_size;
        r.act_order = s.act_order;
        r.weight_bytes = bytes;
        r.checkpoint_bytes = static_cast<double>(mats[0].checkpoint_bytes());
        r.flops = 2.0 * double(s.n) * double(s.k) * double(rows);
        r.cold_copies = copies;
        note(fmt::format("{} batch {} {}", shape_name(s.n, s.k), rows, r.kernel));
        const QuantLinear& m0 = mats[0];
        const GemmPath pth = path;
        r.warm = time_calls([&](int64_t) { m0.forward(x.data(), rows, y.data(), pth); },
                            opt.min_time, 5, 2);
        r.cold =
            time_calls([&](int64_t i) { mats[i % copies].forward(x.data(), rows, y.data(), pth); },
                       opt.min_time, 5, 1);
        report.results.push_back(r);
      }
    }
  }

  // OpenBLAS fp32 baselines on the dequantized matrix of the shape.
  void dense(const LayerSpec& s, const std::vector<int64_t>& batches) {
    note(fmt::format("{} fp32 (build)", shape_name(s.n, s.k)));
    std::vector<std::vector<float>> mats;
    mats.push_back(dequantize_linear(random_packed(s, 5)));
    const double bytes = double(s.n) * double(s.k) * sizeof(float);
    const int copies = copies_for(bytes, cold_target);
    for (int c = 1; c < copies; ++c) mats.push_back(mats[0]);
    const int n = static_cast<int>(s.n), k = static_cast<int>(s.k);
    for (int64_t rows : batches) {
      const std::vector<float> x = random_activations(rows, s.k, 7);
      std::vector<float> y(static_cast<size_t>(rows * s.n));
      const int m = static_cast<int>(rows);
      auto call = [&](const std::vector<float>& w) {
        if (rows == 1) {
          blas::sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w.data(), k, x.data(), 0.0f, y.data());
        } else {
          blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data(), k, w.data(), k, 0.0f,
                      y.data(), n);
        }
      };
      BenchResult r;
      r.kernel = rows == 1 ? "fp32 sgemv (OpenBLAS)" : "fp32 sgemm (OpenBLAS)";
      r.family = "blas";
      r.n = s.n;
      r.k = s.k;
      r.rows = rows;
      r.weight_bytes = bytes;
      r.flops = 2.0 * double(s.n) * double(s.k) * double(rows);
      r.cold_copies = copies;
      note(fmt::format("{} batch {} {}", shape_name(s.n, s.k), rows, r.kernel));
      r.warm = time_calls([&](int64_t) { call(mats[0]); }, opt.min_time, 5, 2);
      r.cold = time_calls([&](int64_t i) { call(mats[i % copies]); }, opt.min_time, 5, 1);
      report.results.push_back(r);
    }
  }
};

const BenchResult* find(const BenchReport& rep, int64_t n, int64_t k, int64_t rows,
                        const std::string& family, int bits = 4, int gs = 128, bool act = false) {
  for (const auto& r : rep.results) {
    if (r.n == n && r.k == k && r.rows == rows && r.family == family &&
        (family == "blas" || (r.bits == bits && r.group_size == gs && r.act_order == act))) {
      return &r;
    }
  }
  return nullptr;
}

}  // namespace

BenchReport run_benchmarks(const BenchOptions& o, std::FILE* progress) {
  const auto start = Clock::now();
  BenchOptions opt = o;
  const int threads = set_compute_threads(opt.threads);
  if (opt.shapes.empty()) {
    if (opt.quick) {
      opt.shapes = {{256, 256}, {768, 256}, {256, 768}, {4096, 4096}};
    } else {
      opt.shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {256, 256}, {768, 256}, {256, 768}};
    }
  }
  if (opt.variants.empty()) {
    const int64_t vn = opt.quick ? 4096 : 11008, vk = 4096;
    opt.variants = {{vn, vk, 2, 128},       {vn, vk, 3, 128}, {vn, vk, 8, 128},
                    {vn, vk, 4, 128, true}, {vn, vk, 4, 32},  {vn, vk, 4, -1}};
  }
  if (opt.batches.empty()) opt.batches = {1, 16};
  if (opt.quick && o.min_time == BenchOptions{}.min_time) opt.min_time = 0.05;

  BenchReport rep;
  rep.load_start = load_average();
  rep.target = dispatch_target_name();
  rep.threads = threads;
  rep.llc_bytes = llc_bytes();
  rep.membw_bytes =
      opt.membw_bytes > 0 ? opt.membw_bytes : (opt.quick ? int64_t{256} << 20 : int64_t{1} << 30);
  const int64_t cold_target =
      opt.cold_bytes > 0
          ? opt.cold_bytes
          : std::max<int64_t>((opt.quick ? 3 : 8) * rep.llc_bytes, opt.quick ? 0 : 256 << 20);

  if (progress) fmt::print(progress, "bench: memory bandwidth ({} MiB)\n", rep.membw_bytes >> 20);
  rep.membw_gbs = memory_bandwidth(rep.membw_bytes, threads, opt.quick ? 3 : 5);

  Runner run{opt, progress, threads, cold_target, rep};
  for (const LayerSpec& s : opt.shapes) {
    run.quant(s, opt.batches, true);
    run.dense(s, opt.batches);
  }
  for (const LayerSpec& s : opt.variants) run.quant(s, opt.batches, false);
  // Again at the end (best of both): on a shared machine one probe can fall on a busy moment.
  rep.membw_gbs = std::max(rep.membw_gbs, memory_bandwidth(rep.membw_bytes, threads, 3));
  rep.seconds = seconds_since(start);
  rep.load_end = load_average();
  return rep;
}

namespace {

// An acceptance figure from the medians and from the best calls (on a shared machine the
// medians move with the other processes' load; the best calls show the kernels' own speed).
struct Acceptance {
  std::string what;
  double median = 0, best = 0, target = 0;
  const char* status() const { return median >= target ? "ok" : best >= target ? "ok*" : "MISS"; }
};

std::vector<Acceptance> acceptance(const BenchReport& rep) {
  std::vector<Acceptance> acc;
  // The layer (11008 x 4096) if measured, else the largest 4-bit g128 shape.
  const BenchResult* g = nullptr;
  for (const auto& r : rep.results) {
    if (r.family == "quant" && r.rows == 1 && r.bits == 4 && r.group_size == 128 && !r.act_order &&
        (!g || (r.n == 11008 && r.k == 4096) ||
         (!(g->n == 11008 && g->k == 4096) && r.flops > g->flops))) {
      g = &r;
    }
  }
  if (!g) return acc;
  const std::string shape = shape_name(g->n, g->k);
  if (const BenchResult* b = find(rep, g->n, g->k, 1, "blas")) {
    acc.push_back({fmt::format("batch-1 q4 g128 GEMV {} warm speed-up vs fp32 sgemv", shape),
                   b->warm.median_s / g->warm.median_s, b->warm.best_s / g->warm.best_s, 7.0});
  }
  acc.push_back({fmt::format("batch-1 q4 g128 GEMV {} cold GB/s / memory bandwidth", shape),
                 g->weight_bytes / g->cold.median_s / 1e9 / rep.membw_gbs,
                 g->weight_bytes / g->cold.best_s / 1e9 / rep.membw_gbs, 0.7});
  for (const auto& r : rep.results) {
    if (r.family != "quant" || r.rows != 16 || r.bits != 4 || r.group_size != 128 || r.act_order)
      continue;
    if (const BenchResult* b = find(rep, r.n, r.k, 16, "blas")) {
      acc.push_back({fmt::format("batch-16 q4 g128 fused GEMM {} GFLOP/s vs fp32 sgemm (warm)",
                                 shape_name(r.n, r.k)),
                     b->warm.median_s / r.warm.median_s, b->warm.best_s / r.warm.best_s, 1.0});
    }
  }
  return acc;
}

}  // namespace

void print_report(const BenchReport& rep, std::FILE* out) {
  fmt::print(out,
             "gptq bench: SIMD target {}, {} threads (ours and OpenBLAS), LLC {} MiB, memory read "
             "bandwidth {:.1f} GB/s ({} MiB streaming SIMD sum)\n",
             rep.target, rep.threads, rep.llc_bytes >> 20, rep.membw_gbs, rep.membw_bytes >> 20);
  fmt::print(out, "load average {} at the start, {} at the end (other processes share the cores)\n",
             rep.load_start, rep.load_end);
  fmt::print(out,
             "MB = weight bytes the kernel reads per call (repacked codes + float group params; "
             "fp32: 4 B/weight), GB/s = MB / time, %bw = cold GB/s / memory bandwidth; times are "
             "medians; vs fp32 = OpenBLAS time / ours, same shape and batch\n\n");
  fmt::print(out,
             "{:<11} {:>5} {:<22} {:>6} |{:>8} {:>6} {:>7} |{:>8} {:>6} {:>4} {:>7} |{:>7} {:>7}\n",
             "shape NxK", "batch", "kernel", "MB", "warm ms", "GB/s", "GFLOP/s", "cold ms", "GB/s",
             "%bw", "GFLOP/s", "vs fp32", "(cold)");
  std::string last;
  for (const auto& r : rep.results) {
    const std::string shape = shape_name(r.n, r.k);
    const std::string key = r.family == "blas" ? shape : fmt::format("{}/{}", shape, r.kernel);
    if (!last.empty() && shape_name(r.n, r.k) != last.substr(0, last.find('/'))) {
      fmt::print(out, "\n");
    }
    last = key;
    const double wgbs = r.weight_bytes / r.warm.median_s / 1e9;
    const double cgbs = r.weight_bytes / r.cold.median_s / 1e9;
    std::string ratio = "", ratio_cold = "";
    if (r.family != "blas") {
      if (const BenchResult* b = find(rep, r.n, r.k, r.rows, "blas")) {
        ratio = fmt::format("{:.2f}x", b->warm.median_s / r.warm.median_s);
        ratio_cold = fmt::format("{:.2f}x", b->cold.median_s / r.cold.median_s);
      }
    }
    fmt::print(
        out,
        "{:<11} {:>5} {:<22} {:>6.1f} |{:>8.3f} {:>6.1f} {:>7.1f} |{:>8.3f} {:>6.1f} {:>3.0f}% "
        "{:>7.1f} |{:>7} {:>7}\n",
        shape, r.rows, r.kernel, r.weight_bytes / 1e6, r.warm.median_s * 1e3, wgbs,
        r.flops / r.warm.median_s / 1e9, r.cold.median_s * 1e3, cgbs, 100.0 * cgbs / rep.membw_gbs,
        r.flops / r.cold.median_s / 1e9, ratio, ratio_cold);
  }
  fmt::print(out,
             "\nacceptance targets (issue): value from the medians / from the best calls "
             "(ok* = met by the best calls only)\n");
  for (const auto& a : acceptance(rep)) {
    fmt::print(out, "  {:<4} {:<70} {:>6.2f} / {:>6.2f}  (target >= {:.2f})\n", a.status(), a.what,
               a.median, a.best, a.target);
  }
  fmt::print(out, "total {:.1f} s\n", rep.seconds);
}

nlohmann::json report_json(const BenchReport& rep) {
  nlohmann::json j;
  j["target"] = rep.target;
  j["threads"] = rep.threads;
  j["llc_bytes"] = rep.llc_bytes;
  j["memory_bandwidth_gbs"] = rep.membw_gbs;
  j["memory_bandwidth_buffer_bytes"] = rep.membw_bytes;
  j["seconds"] = rep.seconds;
  j["load_average_start"] = rep.load_start;
  j["load_average_end"] = rep.load_end;
  auto timing = [](const Timing& t) {
    return nlohmann::json{
        {"median_ms", t.median_s * 1e3}, {"best_ms", t.best_s * 1e3}, {"calls", t.calls}};
  };
  nlohmann::json results = nlohmann::json::array();
  for (const auto& r : rep.results) {
    nlohmann::json e{{"kernel", r.kernel},
                     {"family", r.family},
                     {"n", r.n},
                     {"k", r.k},
                     {"rows", r.rows},
                     {"bits", r.bits},
                     {"group_size", r.group_size},
                     {"act_order", r.act_order},
                     {"weight_bytes", r.weight_bytes},
                     {"checkpoint_bytes", r.checkpoint_bytes},
                     {"flops", r.flops},
                     {"cold_copies", r.cold_copies},
                     {"warm", timing(r.warm)},
                     {"cold", timing(r.cold)},
                     {"warm_gbs", r.weight_bytes / r.warm.median_s / 1e9},
                     {"cold_gbs", r.weight_bytes / r.cold.median_s / 1e9},
                     {"warm_gflops", r.flops / r.warm.median_s / 1e9},
                     {"cold_gflops", r.flops / r.cold.median_s / 1e9}};
    results.push_back(e);
  }
  j["results"] = results;
  nlohmann::json acc = nlohmann::json::array();
  for (const auto& a : acceptance(rep)) {
    acc.push_back({{"what", a.what},
                   {"median", a.median},
                   {"best", a.best},
                   {"target", a.target},
                   {"status", a.status()}});
  }
  j["acceptance"] = acc;
  return j;
}

}  // namespace gptq::kernels::bench
