#include "support/fixtures.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

namespace gptq::testing {

namespace fs = std::filesystem;

fs::path fixture_model(const std::string& name) {
  return fs::path(GPTQ_SOURCE_DIR) / "testdata" / "models" / name;
}

fs::path fixture_data(const std::string& name) {
  return fs::path(GPTQ_SOURCE_DIR) / "testdata" / "data" / name;
}

namespace {
struct ScratchRoot {
  fs::path root;
  ScratchRoot() {
    root = fs::path(GPTQ_BINARY_DIR) / "test-scratch" / std::to_string(::getpid());
    fs::remove_all(root);
    fs::create_directories(root);
  }
  ~ScratchRoot() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};
}  // namespace

fs::path scratch_dir(const std::string& tag) {
  static ScratchRoot root;
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = tag;
  if (info) name = std::string(info->test_suite_name()) + "." + info->name() + "." + tag;
  for (char& c : name)
    if (c == '/') c = '_';
  fs::path dir = root.root / (name + "." + std::to_string(counter++));
  fs::create_directories(dir);
  return dir;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int32_t> eval_ids(const std::string& fixture) {
  return nlohmann::json::parse(read_file(fixture_model(fixture) / "reference" / "eval_ids.json"))
      .get<std::vector<int32_t>>();
}

}  // namespace gptq::testing
