// Wall and process CPU time per named stage of a run (the quantize report's "stages"): a clock is
// activated on the thread that runs the pipeline, and code marks what it does with Stage scopes.
// Scopes nest: an inner one pauses the outer (a Hessian update inside the forward counts as
// "hessian" only). A Stage on a thread without an active clock costs two loads and does nothing,
// so library code marks its stages whoever calls it. CPU time is the whole process's
// (CLOCK_PROCESS_CPUTIME_ID: the pool's workers included), so cpu / wall of a stage is the number
// of cores it kept busy.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace gptq {

class StageClock {
 public:
  struct Total {
    std::string name;
    double wall_seconds = 0;
    double cpu_seconds = 0;
  };

  // Active on the calling thread for the life of the object; time outside any Stage goes to
  // `base` (e.g. "other").
  explicit StageClock(std::string base);
  ~StageClock();
  StageClock(const StageClock&) = delete;
  StageClock& operator=(const StageClock&) = delete;

  // Every stage seen so far, in the order first entered (the current one charged up to now).
  std::vector<Total> totals();

  // Charges the calling thread's time to `name` while alive.
  class Stage {
   public:
    explicit Stage(const char* name);
    ~Stage();
    Stage(const Stage&) = delete;
    Stage& operator=(const Stage&) = delete;

   private:
    StageClock* clock_;
    size_t outer_ = 0;
  };

 private:
  size_t index_of(const std::string& name);
  void charge();  // adds the time since the last switch to the current stage
  size_t switch_to(size_t stage);

  std::vector<Total> totals_;
  size_t current_ = 0;
  double wall0_ = 0, cpu0_ = 0;
  StageClock* outer_clock_;
};

}  // namespace gptq
