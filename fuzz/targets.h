// The fuzz targets' entry points, shared by the libFuzzer programs (fuzz/fuzz_<target>.cpp) and
// the regression suite (tests/test_fuzz_regressions.cpp feeds tests/regressions/<target>/* here).
//
// Every entry point takes the raw input bytes, lays them out as the file the library reads
// (inputs are files on disk, as in real use: a safetensors file, an index next to a fixed shard,
// config.json, tokenizer.json, a GPTQ checkpoint) and runs the public loading functions on it.
// The contract under test: an input is either accepted or rejected with gptq::Error carrying a
// non-internal exit code. Anything else (another exception, an internal error, a crash, a
// sanitizer report, a hang) is a finding.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "calib/tokenizer.h"
#include "infer/load_model.h"
#include "infer/quantized_layer.h"
#include "io/json_unique.h"
#include "io/safetensors.h"
#include "io/safetensors_header.h"
#include "io/safetensors_writer.h"
#include "model/model_config.h"
#include "model/quantization_config.h"
#include "util/error.h"

namespace gptq::fuzz {

namespace fs = std::filesystem;

// A private scratch directory for this process (tmpfs when available: inputs are written for
// every run). Removed at exit.
inline const fs::path& scratch_root() {
  static const fs::path root = [] {
    const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path p = base / ("gptq-fuzz-" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    static const fs::path to_remove = p;
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(to_remove, ec);
    });
    return p;
  }();
  return root;
}

// A fresh empty directory `scratch_root()/name`.
inline fs::path fresh_dir(const std::string& name) {
  const fs::path d = scratch_root() / name;
  std::error_code ec;
  fs::remove_all(d, ec);
  fs::create_directories(d);
  return d;
}

inline void write_bytes(const fs::path& p, const void* data, size_t size) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", p.c_str());
    std::abort();
  }
}

// Runs `body`; a gptq::Error with a documented, non-internal exit code is a clean rejection.
// An internal error is a finding: it aborts (libFuzzer records a crash); other exceptions escape
// (libFuzzer: "deadly signal" via std::terminate; the regression test: a failure).
inline void expect_clean(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    if (e.code() == ExitCode::kInternal || std::string_view(e.what()).empty()) {
      std::fprintf(stderr, "FINDING: internal error on bad input: %s\n", e.what());
      std::abort();
    }
  }
}

// Touches every byte of the float tensors (converted) and sums them, so that a view past the
// mapping is read.
inline double consume_tensors(const TensorStore& store) {
  double sum = 0;
  for (const auto& name : store.names()) {
    const TensorInfo& t = store.get(name);
    if (t.numel() > (int64_t{1} << 22)) continue;
    if (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16 || t.dtype == DType::F64) {
      for (float v : tensor_to_f32(t)) sum += std::isfinite(v) ? v : 0.0;
    } else {
      for (size_t i = 0; i < t.nbytes; ++i) sum += static_cast<double>(std::to_integer<int>(t.data[i]));
    }
  }
  return sum;
}

// ---- safetensors: one file ----
inline void run_safetensors(const uint8_t* data, size_t size) {
  // The header parser on its own, for headers that claim any data size.
  if (size >= 8) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
    if (n <= size - 8) {
      expect_clean([&] {
        parse_safetensors_header(std::string_view(reinterpret_cast<const char*>(data) + 8, n), size - 8 - n,
                                 "fuzz.safetensors");
      });
    }
  }
  const fs::path dir = fresh_dir("safetensors");
  write_bytes(dir / "model.safetensors", data, size);
  expect_clean([&] {
    const TensorStore store = TensorStore::open(dir / "model.safetensors");
    volatile double sink = consume_tensors(store);
    (void)sink;
    for (const auto& [k, v] : store.metadata()) (void)k.size(), (void)v.size();
  });
}

// ---- sharded checkpoint: the input is model.safetensors.index.json, next to a fixed shard ----
// The fixed shard "model-00001-of-00002.safetensors" holds a.weight F32 [2, 2] and b.bias F16 [3];
// "model-00002-of-00002.safetensors" holds c.weight BF16 [2] and d I32 [1].
inline const fs::path& index_fixture_dir() {
  static const fs::path dir = [] {
    const fs::path d = fresh_dir("index-fixture");
    {
      SafetensorsWriter w(d, {{"a.weight", DType::F32, {2, 2}}, {"b.bias", DType::F16, {3}}},
                          {.base_name = "shard1"});
      const float a[4] = {1, 2, 3, 4};
      const uint16_t b[3] = {0x3c00, 0x4000, 0xbc00};
      w.write("a.weight", a, sizeof a);
      w.write("b.bias", b, sizeof b);
      w.finish();
    }
    {
      SafetensorsWriter w(d, {{"c.weight", DType::BF16, {2}}, {"d", DType::I32, {1}}}, {.base_name = "shard2"});
      const uint16_t c[2] = {0x3f80, 0x4000};
      const int32_t dd[1] = {7};
      w.write("c.weight", c, sizeof c);
      w.write("d", dd, sizeof dd);
      w.finish();
    }
    fs::rename(d / "shard1.safetensors", d / "model-00001-of-00002.safetensors");
    fs::rename(d / "shard2.safetensors", d / "model-00002-of-00002.safetensors");
    return d;
  }();
  return dir;
}

inline void run_safetensors_index(const uint8_t* data, size_t size) {
  const fs::path& dir = index_fixture_dir();
  write_bytes(dir / "model.safetensors.index.json", data, size);
  expect_clean([&] {
    const TensorStore store = TensorStore::open(dir);
    volatile double sink = consume_tensors(store);
    (void)sink;
  });
  expect_clean([&] { (void)TensorStore::open(dir / "model.safetensors.index.json").size(); });
}

// ---- config.json and quantization_config ----
inline void run_config(const uint8_t* data, size_t size) {
  const fs::path dir = fresh_dir("config");
  write_bytes(dir / "config.json", data, size);
  expect_clean([&] {
    const ModelConfig cfg = ModelConfig::load(dir);
    (void)cfg.default_seqlen();
    (void)cfg.is_quantized();
    if (cfg.arch) (void)cfg.require_arch();
  });
  expect_clean([&] { (void)QuantizationConfig::find_in_model_dir(dir); });
  // The same text as a quantization config on its own (quantize_config.json), through the parser.
  // Parsed as the product parses every JSON input (depth-bounded, repeated keys refused).
  const JsonParseResult parsed =
      parse_json_unique_keys(std::string_view(reinterpret_cast<const char*>(data), size));
  const nlohmann::json& j = parsed.value;
  if (parsed.ok()) {
    expect_clean([&] {
      const QuantizationConfig q = QuantizationConfig::from_json(j, "fuzz quantize_config.json");
      (void)QuantizationConfig::from_json(q.to_json(), "fuzz round trip");
    });
    if (j.is_object() && j.contains("quantization_config"))
      expect_clean([&] { (void)QuantizationConfig::from_json(j["quantization_config"], "fuzz quantization_config"); });
  }
}

// ---- tokenizer.json ----
inline void run_tokenizer(const uint8_t* data, size_t size) {
  const fs::path dir = fresh_dir("tokenizer");
  write_bytes(dir / "tokenizer.json", data, size);
  expect_clean([&] {
    const auto tok = Tokenizer::from_tokenizer_json(dir / "tokenizer.json");
    (void)tok->vocab_size();
    (void)tok->bos_id();
    (void)tok->eos_id();
    static const std::string kFixed =
        "In the beginning God created the heaven and the earth.\n\tAnd the earth was without form,  "
        "<s> </s> <|endoftext|> caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80 1234567 ALLCAPS";
    std::vector<int32_t> ids = tok->encode(kFixed, true);
    (void)tok->decode(ids, true);
    (void)tok->decode(ids, false);
    // A part of the input itself (its last 256 bytes, when they are valid UTF-8).
    const size_t part = std::min<size_t>(size, 256);
    const std::string_view tail(reinterpret_cast<const char*>(data) + size - part, part);
    expect_clean([&] {
      ids = tok->encode(tail, false);
      (void)tok->decode(ids, false);
    });
    // Out-of-range ids are dropped by decode.
    (void)tok->decode({-1, 0, 1, 2147483647}, true);
  });
}

// ---- GPTQ checkpoint loader ----
// A Llama with one block (hidden 64, 2 heads of 32, intermediate 128, vocab 64). The last input
// byte picks one of four quantization configs; the other bytes are model.safetensors.
struct LoaderVariant {
  int bits, group_size;
  bool desc_act, sym;
  const char* format;
};
inline constexpr LoaderVariant kLoaderVariants[4] = {
    {4, 32, false, true, "gptq"},
    {3, -1, true, true, "gptq"},
    {8, 64, false, false, "gptq_v2"},
    {2, 32, true, false, "gptq_v2"},
};

inline nlohmann::json loader_float_config() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", 64},
          {"intermediate_size", 128},
          {"num_attention_heads", 2},
          {"num_key_value_heads", 2},
          {"num_hidden_layers", 1},
          {"vocab_size", 64},
          {"max_position_embeddings", 64},
          {"rms_norm_eps", 1e-5},
          {"tie_word_embeddings", false},
          {"torch_dtype", "float16"}};
}

inline nlohmann::json loader_config(int variant) {
  const LoaderVariant& v = kLoaderVariants[variant & 3];
  nlohmann::json c = loader_float_config();
  c["quantization_config"] = {{"quant_method", "gptq"},   {"bits", v.bits},
                              {"group_size", v.group_size}, {"desc_act", v.desc_act},
                              {"sym", v.sym},               {"checkpoint_format", v.format},
                              {"damp_percent", 0.01},       {"true_sequential", true}};
  return c;
}

inline void run_gptq_loader(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const int variant = data[size - 1] & 3;
  const fs::path dir = fresh_dir("loader");
  const std::string cfg = loader_config(variant).dump(2);
  write_bytes(dir / "config.json", cfg.data(), cfg.size());
  write_bytes(dir / "model.safetensors", data, size - 1);
  // One layer through read_quantized_layer directly (and dequantized).
  expect_clean([&] {
    const TensorStore store = TensorStore::open(dir);
    const auto q = QuantizationConfig::find_in_model_dir(dir);
    const QuantizedLayerData d = read_quantized_layer(store, "model.layers.0.self_attn.q_proj", 64, 64, *q);
    volatile float sink = dequantize_layer(d)[0];
    (void)sink;
  });
  // The whole model, with the kernels or the dequantized reference, and a forward pass.
  for (const LinearBackend backend : {LinearBackend::kKernel, LinearBackend::kDequantized}) {
    expect_clean([&] {
      const auto m = load_model(dir, backend);
      const std::vector<float> logits = m->model->logits(std::vector<int32_t>{1, 5, 63});
      volatile float sink = logits.empty() ? 0.0f : logits.back();
      (void)sink;
    });
  }
}

// name -> entry point (for the regression test and the fuzz programs).
using Entry = void (*)(const uint8_t*, size_t);
inline const std::map<std::string, Entry>& targets() {
  static const std::map<std::string, Entry> t{{"safetensors", run_safetensors},
                                               {"safetensors_index", run_safetensors_index},
                                               {"config", run_config},
                                               {"tokenizer", run_tokenizer},
                                               {"gptq_loader", run_gptq_loader}};
  return t;
}

}  // namespace gptq::fuzz
