// A small persistent thread pool for the kernels: workers stay alive between calls, so a 0.5 ms
// GEMV does not pay thread creation. run(n, fn) calls fn(i) once for every i in [0, n) on n
// distinct threads (the caller is thread 0) and returns when all are done. Work is split by the
// caller (static ranges), so which thread computes what is fixed: results do not depend on
// timing. Calls from inside a task run serially on the calling thread (no nesting deadlock);
// concurrent calls from different threads are serialised.
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
  // fn(i) for i in [0, n), n <= size() (larger n is clamped to size(): callers size their split
  // with size()).
  void run(int n, const std::function<void(int)>& fn);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one run() at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* task_ = nullptr;
  int task_n_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  // Mirrors of generation_ / pending_ for the lock-free spin before sleeping.
  std::atomic<uint64_t> spin_generation_{0};
  std::atomic<int> spin_pending_{0};
  std::exception_ptr error_;  // first exception thrown by a worker's task (under mutex_)
};

// Threads used by the kernels when a QuantLinear is not given a count: initially
// std::thread::hardware_concurrency(). set_num_threads(0) restores that default.
void set_num_threads(int threads);
int num_threads();

// A process-wide pool of at least `threads` threads (pools are created on demand and kept for the
// life of the process, so a reference stays valid).
ThreadPool& global_pool(int threads);

// Splits [0, items) into `parts` contiguous ranges of near-equal size; range i is
// [begin(i), begin(i + 1)).
inline int64_t split_begin(int64_t items, int parts, int i) {
  return items * i / parts;
}

}  // namespace gptq::kernels
