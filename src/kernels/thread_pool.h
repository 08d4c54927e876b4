// A small persistent thread pool for the kernels: workers stay alive between calls, so a 0.3 ms
// GEMV does not pay thread creation. run(n, fn) calls fn(i) once for every i in [0, n); the
// caller and the workers claim indices dynamically (an atomic counter), so a worker that the OS
// has descheduled (a loaded machine) delays nothing: the others take its share. Callers make
// every index compute a fixed piece of the output, so results do not depend on which thread ran
// it or on the thread count. Calls from inside a task run serially on the calling thread (no
// nesting deadlock); concurrent calls from different threads are serialised.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gptq::kernels {

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
  void worker_loop(int index);
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

// Threads used by the kernels when a QuantLinear is not given a count: initially
// std::thread::hardware_concurrency(). set_num_threads(0) restores that default.
void set_num_threads(int threads);
int num_threads();

// Threads of all compute (the kernels' default and OpenBLAS): `threads` if > 0, else every core.
// Returns the count now in use.
int set_compute_threads(int threads);

// A process-wide pool of at least `threads` threads (pools are created on demand and kept for the
// life of the process, so a reference stays valid).
ThreadPool& global_pool(int threads);

// Splits [0, items) into `parts` contiguous ranges of near-equal size; range i is
// [split_begin(i), split_begin(i + 1)).
inline int64_t split_begin(int64_t items, int64_t parts, int64_t i) {
  return items * i / parts;
}

}  // namespace gptq::kernels
