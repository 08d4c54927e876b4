#include "kernels/thread_pool.h"

#include <algorithm>
#include <memory>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace gptq::kernels {
namespace {

thread_local bool tls_in_task = false;

// Spin iterations (~30-60 us) before sleeping on the condition variable: back-to-back kernel
// calls (a model's consecutive linears) then reach the workers without a futex wake-up.
constexpr int kSpinIterations = 20000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int n = std::max(1, threads);
  workers_.reserve(n - 1);
  for (int i = 0; i + 1 < n; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
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

void ThreadPool::run(int n, const std::function<void(int)>& fn) {
  n = std::clamp(n, 1, size());
  if (n == 1 || tls_in_task) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = nullptr;
    task_ = &fn;
    task_n_ = n;
    pending_ = n - 1;
    spin_pending_.store(n - 1, std::memory_order_relaxed);
    ++generation_;
  }
  spin_generation_.fetch_add(1, std::memory_order_release);
  wake_.notify_all();

  std::exception_ptr own_error;
  tls_in_task = true;
  try {
    fn(0);
  } catch (...) {
    own_error = std::current_exception();
  }
  tls_in_task = false;

  for (int i = 0; i < kSpinIterations && spin_pending_.load(std::memory_order_acquire) > 0; ++i) {
    cpu_relax();
  }
  std::exception_ptr worker_error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    task_ = nullptr;
    worker_error = error_;
  }
  if (own_error) std::rethrow_exception(own_error);
  if (worker_error) std::rethrow_exception(worker_error);
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    for (int i = 0;
         i < kSpinIterations && spin_generation_.load(std::memory_order_acquire) == seen; ++i) {
      cpu_relax();
    }
    const std::function<void(int)>* task = nullptr;
    int n = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      task = task_;
      n = task_n_;
    }
    if (task == nullptr || index + 1 >= n) continue;
    std::exception_ptr err;
    tls_in_task = true;
    try {
      (*task)(index + 1);
    } catch (...) {
      err = std::current_exception();
    }
    tls_in_task = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (err && !error_) error_ = err;
      --pending_;
      spin_pending_.fetch_sub(1, std::memory_order_release);
      if (pending_ == 0) done_.notify_one();
    }
  }
}

namespace {
std::atomic<int> g_threads{0};
std::mutex g_pool_mutex;
std::vector<std::unique_ptr<ThreadPool>>& pools() {
  static std::vector<std::unique_ptr<ThreadPool>> p;
  return p;
}
}  // namespace

void set_num_threads(int threads) { g_threads.store(std::max(0, threads)); }

int num_threads() {
  const int t = g_threads.load();
  if (t > 0) return t;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

ThreadPool& global_pool(int threads) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  auto& p = pools();
  if (p.empty() || p.back()->size() < threads) {
    p.push_back(std::make_unique<ThreadPool>(std::max(1, threads)));
  }
  return *p.back();
}

}  // namespace gptq::kernels
