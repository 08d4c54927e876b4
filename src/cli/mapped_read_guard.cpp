#include "cli/mapped_read_guard.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "gptq/error.h"
#include "io/mapped_regions.h"

namespace gptq::cli {

namespace {

void put(const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

extern "C" void on_sigbus(int sig, siginfo_t* info, void*) {
  const char* file = info ? mapped_file_at(info->si_addr) : nullptr;
  if (!file) {  // not a mapped model file: the default action (core dump)
    ::signal(sig, SIG_DFL);
    return;
  }
  // Only async-signal-safe calls from here on.
  put("error: '");
  put(file);
  put("' changed or was truncated while being read (SIGBUS on its memory mapping): a model file "
      "must not "
      "change during a run; restore it and run again (an interrupted quantization continues with "
      "--resume)\n");
  ::_exit(static_cast<int>(ExitCode::kIo));
}

}  // namespace

void guard_mapped_reads() {
  struct sigaction sa {};
  sa.sa_sigaction = on_sigbus;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGBUS, &sa, nullptr);
}

}  // namespace gptq::cli
