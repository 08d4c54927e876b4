#include "support/llama_cpp.h"

#include <dlfcn.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace gptq::testing {

namespace fs = std::filesystem;

namespace {
// ggml.h (llama.cpp bundled by node-llama-cpp 3.21.1): struct ggml_type_traits.
struct GgmlTypeTraits {
  const char* type_name;
  int64_t blck_size;
  int64_t blck_size_interleave;
  size_t type_size;
  bool is_quantized;
  void (*to_float)(const void* x, float* y, int64_t k);
  void (*from_float_ref)(const float* x, void* y, int64_t k);
};
using TraitsFn = const GgmlTypeTraits* (*)(int);

std::string run(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  *status = ::pclose(p);
  return out;
}

const GgmlTypeTraits* traits(void* fn, int type) {
  const GgmlTypeTraits* t = reinterpret_cast<TraitsFn>(fn)(type);
  if (!t || !t->to_float)
    throw std::runtime_error("ggml has no to_float for type " + std::to_string(type));
  return t;
}
}  // namespace

LlamaCpp::LlamaCpp() {
  std::string prefix;
  if (const char* e = std::getenv("GPTQ_NODE_LLAMA_CPP"); e && *e) prefix = e;
  if (prefix.empty()) {
    int status = 0;
    std::string out =
        run("bash " + (fs::path(GPTQ_SOURCE_DIR) / "scripts" / "setup_llama_cpp.sh").string() +
                " 2>/dev/null",
            &status);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    if (status != 0 || out.empty()) {
      why_ =
          "llama.cpp (npm node-llama-cpp@3.21.1) could not be installed by "
          "scripts/setup_llama_cpp.sh (no npm or offline)";
      return;
    }
    prefix =
        out.substr(out.find_last_of('\n') == std::string::npos ? 0 : out.find_last_of('\n') + 1);
  }
  const fs::path lib =
      fs::path(prefix) / "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so";
  lib_ = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib_) {
    why_ = "cannot dlopen " + lib.string() + ": " + ::dlerror();
    return;
  }
  traits_ = ::dlsym(lib_, "ggml_get_type_traits");
  if (!traits_) {
    why_ = lib.string() + " has no ggml_get_type_traits";
    return;
  }
  prefix_ = prefix;
}

const LlamaCpp& LlamaCpp::get() {
  static const LlamaCpp instance;
  return instance;
}

std::vector<float> LlamaCpp::to_float(int type, const void* data, int64_t rows, int64_t n) const {
  const GgmlTypeTraits* t = traits(traits_, type);
  std::vector<float> out(static_cast<size_t>(rows * n));
  const size_t row_bytes = static_cast<size_t>(n / t->blck_size) * t->type_size;
  for (int64_t r = 0; r < rows; ++r)
    t->to_float(static_cast<const uint8_t*>(data) + r * row_bytes, out.data() + r * n, n);
  return out;
}

std::vector<uint8_t> LlamaCpp::from_float_ref(int type, const float* x, int64_t n) const {
  const GgmlTypeTraits* t = traits(traits_, type);
  std::vector<uint8_t> out(static_cast<size_t>(n / t->blck_size) * t->type_size);
  t->from_float_ref(x, out.data(), n);
  return out;
}

nlohmann::json LlamaCpp::eval(const std::string& args) const {
  const fs::path script = fs::path(GPTQ_SOURCE_DIR) / "tests" / "llama_cpp" / "eval_gguf.mjs";
  int status = 0;
  const std::string out =
      run("GPTQ_NODE_LLAMA_CPP='" + prefix_ + "' node " + script.string() + " " + args + " 2>&1",
          &status);
  if (status != 0) throw std::runtime_error("eval_gguf.mjs failed: " + out);
  const size_t nl = out.find_last_of('{');
  if (nl == std::string::npos) throw std::runtime_error("eval_gguf.mjs printed no JSON: " + out);
  return nlohmann::json::parse(
      out.substr(out.rfind('\n', nl) == std::string::npos ? 0 : out.rfind('\n', nl) + 1));
}

void write_tiny_tokenizer(const fs::path& dir, int64_t vocab) {
  // Byte-level alphabet: "Ġ" (space), "Ċ" (newline), then letters and digits.
  std::vector<std::string> toks{"\xc4\xa0", "\xc4\x8a"};
  for (char c = 'a'; c <= 'z'; ++c) toks.emplace_back(1, c);
  for (char c = 'A'; c <= 'Z'; ++c) toks.emplace_back(1, c);
  for (char c = '0'; c <= '9'; ++c) toks.emplace_back(1, c);
  for (char c : std::string("!#$%&()*+,-./:;<=>?@[]^_{|}~")) toks.emplace_back(1, c);
  if (static_cast<int64_t>(toks.size()) < vocab)
    throw std::invalid_argument("write_tiny_tokenizer: vocab too large");
  nlohmann::json v = nlohmann::json::object();
  for (int64_t i = 0; i < vocab; ++i) v[toks[static_cast<size_t>(i)]] = i;
  const nlohmann::json bl = {{"type", "ByteLevel"},
                             {"add_prefix_space", false},
                             {"trim_offsets", true},
                             {"use_regex", true}};
  const nlohmann::json tj = {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", bl},
      {"post_processor", bl},
      {"decoder", bl},
      {"model", {{"type", "BPE"}, {"vocab", v}, {"merges", nlohmann::json::array()}}}};
  std::ofstream(dir / "tokenizer.json") << tj.dump();
}

}  // namespace gptq::testing
