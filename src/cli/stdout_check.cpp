#include "cli/stdout_check.h"

#include <cerrno>
#include <cstdio>

#include "util/error.h"
#include "util/system_error.h"

namespace gptq::cli {

namespace {

[[noreturn]] void stdout_failed(int err) {
  fail_code(ExitCode::kIo, "cannot write to standard output: {}; the output is incomplete{}",
            err ? errno_text(err) : "write error", err == ENOSPC ? " (the disk is full)" : "");
}

}  // namespace

void check_stdout() {
  errno = 0;
  const bool flush_failed = std::fflush(stdout) != 0;
  const int err = errno;
  if (flush_failed || std::ferror(stdout)) stdout_failed(err);
}

void check_stdout_after(int err) {
  errno = 0;
  const bool flush_failed = std::fflush(stdout) != 0;
  if (flush_failed && !err) err = errno;
  if (flush_failed || std::ferror(stdout)) stdout_failed(err);
}

}  // namespace gptq::cli
