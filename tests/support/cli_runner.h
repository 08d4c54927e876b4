// Runs the gptq command line in a test: GPTQ_EXE (the CLI's path, defined by CMake for the tests
// that run it) with `args`, stdout and stderr captured together, and its exit code.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace gptq::testing {

struct CliResult {
  int code = -1;    // exit code; -1 if the process did not exit normally
  std::string out;  // stdout and stderr
};

inline CliResult run_cli(const std::string& args) {
  CliResult r;
  FILE* p = ::popen((std::string(GPTQ_EXE) + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace gptq::testing
