// Paths of the bundled fixtures (testdata/, copied from the project's shared fixtures) and
// scratch directories for tests.
#pragma once

#include <filesystem>
#include <cstdint>
#include <string>
#include <vector>

namespace gptq::testing {

// testdata/models/<name> (tiny-llama, tiny-llama-sharded, tiny-gpt2, tiny-llama-outliers).
std::filesystem::path fixture_model(const std::string& name);
// testdata/data/<name> (calib.txt, eval.txt).
std::filesystem::path fixture_data(const std::string& name);
// A fresh empty directory under the build tree, unique per test; removed at process exit.
std::filesystem::path scratch_dir(const std::string& tag);
// Reads a whole file.
std::string read_file(const std::filesystem::path& p);
// Token ids of testdata/data/eval.txt under a fixture's tokenizer (reference/eval_ids.json).
std::vector<int32_t> eval_ids(const std::string& fixture);

}  // namespace gptq::testing
