#include "cli/test_hooks.h"

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace gptq::cli {

void kill_hook_after_block(int64_t blocks_done) {
  static const int64_t after = [] {
    const char* env = std::getenv("GPTQ_TEST_KILL_AFTER_BLOCK");
    return env ? std::atoll(env) : int64_t{-1};
  }();
  if (after >= 0 && blocks_done == after) std::raise(SIGKILL);
}

void truncate_hook_after_block(int64_t blocks_done) {
  const char* env = std::getenv("GPTQ_TEST_TRUNCATE_AFTER_BLOCK");
  if (!env) return;
  const std::string spec = env;
  const auto colon = spec.find(':');
  if (colon == std::string::npos || std::atoll(spec.substr(0, colon).c_str()) != blocks_done) return;
  const std::filesystem::path file = spec.substr(colon + 1);
  std::error_code ec;
  std::filesystem::resize_file(file, std::filesystem::file_size(file, ec) / 2, ec);
}

}  // namespace gptq::cli
