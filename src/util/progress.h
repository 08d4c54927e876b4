// A one-line progress bar with ETA on stderr (only when stderr is a terminal), and a clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace gptq {

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

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

// Peak resident set size of this process, in bytes.
uint64_t peak_rss_bytes();
std::string human_bytes(double bytes);
std::string human_seconds(double s);

}  // namespace gptq
