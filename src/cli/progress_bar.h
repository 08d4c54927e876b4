// A one-line progress bar with ETA on stderr (drawn only when stderr is a terminal).
#pragma once

#include <cstdint>
#include <string>

#include "util/progress.h"

namespace gptq::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  ~ProgressBar();
  // Sets the amount done (work units), with a short note shown after the bar.
  void update(int64_t done, const std::string& note = "");
  // Erases the bar so that a log line can be printed; the next update() redraws it.
  void clear();

 private:
  std::string label_;
  int64_t total_;
  bool tty_;
  bool drawn_ = false;
  Stopwatch clock_;
};

}  // namespace gptq::cli
