#include "util/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <memory>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace gptq {
namespace {

thread_local bool tls_in_task = false;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// How long a thread spins before sleeping on the condition variable: back-to-back kernel calls
// (a model's consecutive linears) then reach the workers without a futex wake-up, while an idle
// pool soon stops taking CPU time from other processes.
constexpr auto kSpinTime = std::chrono::microseconds(50);

// Spins until done() or kSpinTime has passed.
template <class F>
void spin_until(F done) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 1; !done(); ++i) {
    cpu_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() - t0 > kSpinTime) return;
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int n = std::max(1, threads);
  workers_.reserve(n - 1);
  for (int i = 0; i + 1 < n; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    ++generation_;
  }
  spin_generation_.fetch_add(1, std::memory_order_release);
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain(const std::function<void(int64_t)>& fn, int64_t n) {
  std::exception_ptr err;
  tls_in_task = true;
  for (int64_t i = next_.fetch_add(1, std::memory_order_relaxed); i < n;
       i = next_.fetch_add(1, std::memory_order_relaxed)) {
    try {
      fn(i);
    } catch (...) {
      if (!err) err = std::current_exception();
    }
    finished_.fetch_add(1, std::memory_order_acq_rel);
  }
  tls_in_task = false;
  if (err) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = err;
  }
}

void ThreadPool::run(int64_t n, const std::function<void(int64_t)>& fn, int threads) {
  if (n <= 0) return;
  threads = std::clamp(threads, 1, size());
  if (threads == 1 || n == 1 || tls_in_task) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = nullptr;
    task_ = &fn;
    task_n_ = n;
    joinable_ = static_cast<int>(std::min<int64_t>(threads - 1, n - 1));
    next_.store(0, std::memory_order_relaxed);
    finished_.store(0, std::memory_order_relaxed);
    ++generation_;
  }
  spin_generation_.fetch_add(1, std::memory_order_release);
  wake_.notify_all();

  drain(fn, n);
  spin_until([&] { return finished_.load(std::memory_order_acquire) == n; });
  std::exception_ptr err;
  {
    // Wait for the tasks still running and for every worker that joined this call to leave it
    // (a worker never touches a call's state after active_ drops).
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock,
               [&] { return finished_.load(std::memory_order_acquire) == n && active_ == 0; });
    task_ = nullptr;
    err = error_;
  }
  if (err) std::rethrow_exception(err);
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    spin_until([&] { return spin_generation_.load(std::memory_order_acquire) != seen; });
    const std::function<void(int64_t)>* task = nullptr;
    int64_t n = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (task_ == nullptr || joinable_ == 0) continue;
      --joinable_;
      ++active_;
      task = task_;
      n = task_n_;
    }
    drain(*task, n);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --active_;
    }
    done_.notify_one();
  }
}

namespace {
std::atomic<int> g_threads{0};
thread_local int tls_threads = 0;  // 0: no scope on this thread
std::mutex g_pool_mutex;
std::shared_ptr<ThreadPool> g_pool;

int all_cores() {
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}
}  // namespace

int set_compute_threads(int threads) {
  g_threads.store(std::max(0, threads));
  return compute_threads();
}

int compute_threads() {
  if (tls_threads > 0) return tls_threads;
  const int t = g_threads.load();
  return t > 0 ? t : all_cores();
}

ComputeThreadsScope::ComputeThreadsScope(int threads) : saved_(tls_threads) {
  if (threads > 0) tls_threads = threads;
}

ComputeThreadsScope::~ComputeThreadsScope() {
  tls_threads = saved_;
}

std::shared_ptr<ThreadPool> shared_pool(int threads) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool || g_pool->size() < threads)
    g_pool = std::make_shared<ThreadPool>(std::max(1, threads));
  return g_pool;
}

void parallel_for(int64_t n, const std::function<void(int64_t)>& fn, int threads) {
  if (n <= 0) return;
  if (threads <= 0) threads = compute_threads();
  if (threads == 1 || n == 1 || tls_in_task) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  shared_pool(threads)->run(n, fn, threads);
}

}  // namespace gptq
