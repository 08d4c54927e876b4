#include "util/stage_clock.h"

#include <time.h>

namespace gptq {

namespace {

thread_local StageClock* tls_clock = nullptr;

double now(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

StageClock::StageClock(std::string base) : outer_clock_(tls_clock) {
  totals_.push_back({std::move(base), 0, 0});
  wall0_ = now(CLOCK_MONOTONIC);
  cpu0_ = now(CLOCK_PROCESS_CPUTIME_ID);
  tls_clock = this;
}

StageClock::~StageClock() {
  tls_clock = outer_clock_;
}

size_t StageClock::index_of(const std::string& name) {
  for (size_t i = 0; i < totals_.size(); ++i)
    if (totals_[i].name == name) return i;
  totals_.push_back({name, 0, 0});
  return totals_.size() - 1;
}

void StageClock::charge() {
  const double w = now(CLOCK_MONOTONIC), c = now(CLOCK_PROCESS_CPUTIME_ID);
  totals_[current_].wall_seconds += w - wall0_;
  totals_[current_].cpu_seconds += c - cpu0_;
  wall0_ = w;
  cpu0_ = c;
}

size_t StageClock::switch_to(size_t stage) {
  charge();
  const size_t prev = current_;
  current_ = stage;
  return prev;
}

std::vector<StageClock::Total> StageClock::totals() {
  charge();
  return totals_;
}

StageClock::Stage::Stage(const char* name) : clock_(tls_clock) {
  if (clock_) outer_ = clock_->switch_to(clock_->index_of(name));
}

StageClock::Stage::~Stage() {
  if (clock_) clock_->switch_to(outer_);
}

}  // namespace gptq
