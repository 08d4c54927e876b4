#include "cli/progress_bar.h"

#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>

namespace gptq::cli {

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)), total_(total > 0 ? total : 1), tty_(::isatty(STDERR_FILENO) != 0) {}

ProgressBar::~ProgressBar() {
  clear();
}

void ProgressBar::update(int64_t done, const std::string& note) {
  if (!tty_) return;
  const double frac = static_cast<double>(done) / static_cast<double>(total_);
  const int width = 30;
  const int filled = static_cast<int>(frac * width + 0.5);
  const double elapsed = clock_.seconds();
  const std::string eta = done > 0 ? human_seconds(elapsed * (1.0 - frac) / frac) : "?";
  fmt::print(stderr, "\r\033[K{} [{}{}] {:3.0f}% ETA {} {}", label_, std::string(filled, '#'),
             std::string(width - filled, '.'), 100.0 * frac, eta, note);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::clear() {
  if (tty_ && drawn_) {
    fmt::print(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace gptq::cli
