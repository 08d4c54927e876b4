#include "cli/test_hooks.h"

#include <csignal>
#include <cstdlib>

namespace gptq::cli {

void kill_hook_after_block(int64_t blocks_done) {
  static const int64_t after = [] {
    const char* env = std::getenv("GPTQ_TEST_KILL_AFTER_BLOCK");
    return env ? std::atoll(env) : int64_t{-1};
  }();
  if (after >= 0 && blocks_done == after) std::raise(SIGKILL);
}

}  // namespace gptq::cli
