#include "util/progress.h"

#include <fmt/core.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

namespace gptq {

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)), total_(total > 0 ? total : 1), tty_(::isatty(STDERR_FILENO) != 0) {}

ProgressBar::~ProgressBar() { clear(); }

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

uint64_t peak_rss_bytes() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", b, units[u]);
}

std::string human_seconds(double s) {
  if (s < 60) return fmt::format("{:.1f}s", s);
  if (s < 3600) return fmt::format("{}m{:02d}s", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  return fmt::format("{}h{:02d}m", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
}

}  // namespace gptq
