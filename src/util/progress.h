// A clock, the peak memory of the process, and human-readable sizes and durations.
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

// Peak resident set size of this process, in bytes.
uint64_t peak_rss_bytes();
std::string human_bytes(double bytes);
std::string human_seconds(double s);

}  // namespace gptq
