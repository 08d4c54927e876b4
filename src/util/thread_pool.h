// The one thread pool of the process: every parallel stage (the forward's BLAS tiles, attention
// heads, the Hessians, the GPTQ solver, packing, tensor conversion and the QuantLinear kernels)
// runs its work items on it, with at most compute_threads() threads, the caller included.
// OpenBLAS is kept single-threaded (util/blas.h cuts BLAS work into tiles run here), so
// `--threads N` bounds the cores of every stage.
//
// Workers stay alive between calls, so a 0.3 ms GEMV does not pay thread creation. run(n, fn)
// calls fn(i) once for every i in [0, n); the caller and the workers claim indices dynamically
// (an atomic counter), so a worker that the OS has descheduled (a loaded machine) delays nothing.
// Callers make every index compute a fixed piece of the output (bounds from the problem's shape,
// never from the thread count), so results do not depend on which thread ran it or on the thread
// count. Calls from inside a task run serially on the calling thread (no nesting deadlock);
// concurrent calls from different threads are serialised.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace gptq {

class ThreadPool {
 public:
  // `threads` in total, the caller included (>= 1).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // fn(i) for every i in [0, n) on up to `threads` threads (<= size(); the caller is one of
  // them). Rethrows the first exception a task threw, after all tasks have finished.
  void run(int64_t n, const std::function<void(int64_t)>& fn, int threads);
  void run(int64_t n, const std::function<void(int64_t)>& fn) { run(n, fn, size()); }

 private:
  void worker_loop();
  // Claims and runs tasks of the current call until none is left.
  void drain(const std::function<void(int64_t)>& fn, int64_t n);

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one run() at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  // Current call (under mutex_): task, size, how many workers may join, how many are inside.
  const std::function<void(int64_t)>* task_ = nullptr;
  int64_t task_n_ = 0;
  int joinable_ = 0;
  int active_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::atomic<int64_t> next_{0};      // next unclaimed index
  std::atomic<int64_t> finished_{0};  // tasks completed
  std::atomic<uint64_t> spin_generation_{0};
};

// Threads of all compute when no scope says otherwise: `threads` if > 0, else every core
// (std::thread::hardware_concurrency()). Returns the count now in use.
int set_compute_threads(int threads);
// The calling thread's compute threads: its innermost ComputeThreadsScope, else the process
// default of set_compute_threads.
int compute_threads();

// Sets the calling thread's compute threads for the life of the object (an API call's
// `threads`); 0 keeps the current count.
class ComputeThreadsScope {
 public:
  explicit ComputeThreadsScope(int threads);
  ~ComputeThreadsScope();
  ComputeThreadsScope(const ComputeThreadsScope&) = delete;
  ComputeThreadsScope& operator=(const ComputeThreadsScope&) = delete;

 private:
  int saved_;
};

// The shared pool with at least `threads` threads (it is replaced by a larger one when a call
// asks for more; the pointer keeps the one in use alive).
std::shared_ptr<ThreadPool> shared_pool(int threads);

// fn(i) for every i in [0, n) on `threads` threads of the shared pool (0: compute_threads()).
// Inside a task, and with one thread, runs serially on the calling thread.
void parallel_for(int64_t n, const std::function<void(int64_t)>& fn, int threads = 0);

// fn(begin, end) over [0, n) cut into ranges of `grain` items (the last one shorter), in
// parallel: for element-wise and row-wise loops. The ranges depend on n and grain only. A single
// range (n <= grain: one row of a decode step, one head of a q/k norm) runs inline, with no
// std::function and no pool hand-off.
template <class Fn>
void parallel_ranges(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (n <= grain) {
    fn(int64_t{0}, n);
    return;
  }
  parallel_for((n + grain - 1) / grain,
               [&](int64_t i) { fn(i * grain, std::min(n, (i + 1) * grain)); });
}
// The grain of element-wise loops (activations, residual adds): a multiple of every vector width,
// so a vectorised loop's scalar tail stays at the end of the array.
constexpr int64_t kElementwiseGrain = int64_t{1} << 15;

// Splits [0, items) into `parts` contiguous ranges of near-equal size; range i is
// [split_begin(i), split_begin(i + 1)).
inline int64_t split_begin(int64_t items, int64_t parts, int64_t i) {
  return items * i / parts;
}

}  // namespace gptq
