// Writes the generated part of the seed corpus into fuzz/corpus/<target>/ (run once by hand,
// the output is kept in the repository; scripts/fuzz.sh does not regenerate it):
//   safetensors        the fixtures' real headers with every tensor shrunk to a few elements (names,
//                      dtypes and metadata kept), one real header over a truncated data section,
//                      and small files of every dtype / shape kind;
//   safetensors_index  a valid index for the fixed shards of the target, the fixture's real index;
//   config             the fixtures' config.json, the loader's quantized configs, a quantize_config;
//   gptq_loader        tiny GPTQ checkpoints (a random one-block Llama quantized with RTN, one per
//                      quantization variant of the target; last byte = the variant).
// The tokenizer seeds (small hand-made tokenizer.json files) are kept as they are.
// Usage: fuzz_make_corpus_tool <source-dir>
#include <cstdio>
#include <random>

#include "pipeline/quantize.h"
#include "targets.h"
#include "util/fp16.h"

namespace fs = std::filesystem;
using namespace gptq;

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void put(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  fuzz::write_bytes(p, bytes.data(), bytes.size());
  std::printf("%8zu  %s\n", bytes.size(), p.c_str());
}

// A valid safetensors file with these specs (filled with a deterministic pattern).
std::string small_file(const std::vector<TensorSpec>& specs, const std::map<std::string, std::string>& meta) {
  const fs::path d = fuzz::fresh_dir("gen");
  {
    SafetensorsWriter w(d, specs, {.metadata = meta});
    for (const auto& s : specs) {
      std::string bytes(s.nbytes(), '\0');
      for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 37 + 11) & 0x3f);
      w.write(s.name, bytes.data(), bytes.size());
    }
    w.finish();
  }
  return read_all(d / "model.safetensors");
}

// The fixture's header: names, dtypes, metadata; every shape shrunk to a few elements.
std::string shrunk(const fs::path& file) {
  const TensorStore store = TensorStore::open(file);
  std::vector<TensorSpec> specs;
  for (const auto& n : store.names()) {
    const TensorInfo& t = store.get(n);
    std::vector<int64_t> shape(t.shape.size(), 2);
    if (!shape.empty()) shape.back() = 3;
    specs.push_back({n, t.dtype, shape});
  }
  return small_file(specs, store.metadata());
}

std::string truncated(const fs::path& file, size_t data_bytes) {
  const std::string all = read_all(file);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(all[static_cast<size_t>(i)]);
  return all.substr(0, 8 + n + data_bytes);
}

// A random one-block Llama (fuzz::loader_float_config), F16.
fs::path tiny_float_model() {
  const fs::path d = fuzz::fresh_dir("float");
  const nlohmann::json cfg = fuzz::loader_float_config();
  fuzz::write_bytes(d / "config.json", cfg.dump(2).data(), cfg.dump(2).size());
  const int64_t h = 64, f = 128, v = 64;
  std::vector<std::pair<std::string, std::vector<int64_t>>> t{{"model.embed_tokens.weight", {v, h}},
                                                              {"model.norm.weight", {h}},
                                                              {"lm_head.weight", {v, h}}};
  const std::string p = "model.layers.0.";
  for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"})
    t.push_back({p + n + ".weight", {h, h}});
  t.push_back({p + "mlp.gate_proj.weight", {f, h}});
  t.push_back({p + "mlp.up_proj.weight", {f, h}});
  t.push_back({p + "mlp.down_proj.weight", {h, f}});
  t.push_back({p + "input_layernorm.weight", {h}});
  t.push_back({p + "post_attention_layernorm.weight", {h}});
  std::vector<TensorSpec> specs;
  for (const auto& [n, s] : t) specs.push_back({n, DType::F16, s});
  SafetensorsWriter w(d, specs, {});
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  for (const auto& s : specs) {
    std::vector<float> x(s.nbytes() / 2);
    const bool norm = s.shape.size() == 1;
    for (float& e : x) e = norm ? 1.0f + nd(rng) : nd(rng);
    std::vector<uint16_t> h16(x.size());
    f32_to_f16(x.data(), h16.data(), x.size());
    w.write(s.name, h16.data(), h16.size() * 2);
  }
  w.finish();
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <source-dir>\n", argv[0]);
    return 2;
  }
  const fs::path src = argv[1], corpus = src / "fuzz" / "corpus";
  const fs::path models = src / "testdata" / "models";

  // safetensors
  const fs::path st = corpus / "safetensors";
  put(st / "tiny-llama-shrunk", shrunk(models / "tiny-llama" / "model.safetensors"));
  put(st / "tiny-gpt2-shrunk", shrunk(models / "tiny-gpt2" / "model.safetensors"));
  put(st / "tiny-llama-sharded-1-shrunk", shrunk(models / "tiny-llama-sharded" / "model-00001-of-00002.safetensors"));
  put(st / "tiny-gpt2-truncated", truncated(models / "tiny-gpt2" / "model.safetensors", 64));
  std::vector<TensorSpec> all_dtypes;
  for (DType t : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16, DType::I8,
                  DType::U8, DType::BOOL, DType::U16, DType::U32, DType::U64, DType::F8_E4M3, DType::F8_E5M2})
    all_dtypes.push_back({"t." + std::string(dtype_name(t)), t, {2, 2}});
  put(st / "all-dtypes", small_file(all_dtypes, {{"format", "pt"}}));
  put(st / "shapes", small_file({{"scalar", DType::F32, {}}, {"empty", DType::F16, {0, 4}}, {"vec", DType::BF16, {5}},
                                 {"cube", DType::F32, {2, 1, 3}}},
                                {}));
  put(st / "empty", small_file({}, {}));
  put(st / "metadata-only", small_file({}, {{"format", "pt"}, {"quantizer", "gptq.cpp"}}));

  // safetensors_index: the fixed shards of the target
  const fs::path si = corpus / "safetensors_index";
  const nlohmann::json index{{"metadata", {{"total_size", 34}}},
                             {"weight_map",
                              {{"a.weight", "model-00001-of-00002.safetensors"},
                               {"b.bias", "model-00001-of-00002.safetensors"},
                               {"c.weight", "model-00002-of-00002.safetensors"},
                               {"d", "model-00002-of-00002.safetensors"}}}};
  put(si / "valid", index.dump(2));
  nlohmann::json one_shard = index;
  one_shard["weight_map"].erase("c.weight");
  one_shard["weight_map"].erase("d");
  put(si / "one-shard-unlisted", one_shard.dump());
  put(si / "tiny-llama-sharded", read_all(models / "tiny-llama-sharded" / "model.safetensors.index.json"));

  // config
  const fs::path cf = corpus / "config";
  for (const char* m : {"tiny-llama", "tiny-gpt2"}) put(cf / m, read_all(models / m / "config.json"));
  for (int v = 0; v < 4; ++v) put(cf / ("gptq-" + std::to_string(v)), fuzz::loader_config(v).dump(2));
  put(cf / "quantize_config", fuzz::loader_config(1)["quantization_config"].dump(2));

  // gptq_loader: RTN-quantized tiny checkpoints + the variant byte
  const fs::path fl = tiny_float_model();
  for (int v = 0; v < 4; ++v) {
    const fuzz::LoaderVariant& lv = fuzz::kLoaderVariants[v];
    QuantizeOptions o;
    o.method = QuantMethod::kRtn;
    o.quant.bits = lv.bits;
    o.quant.group_size = lv.group_size;
    o.quant.desc_act = lv.desc_act;
    o.quant.sym = lv.sym;
    o.format = std::string(lv.format) == "gptq" ? CheckpointFormat::kGptq : CheckpointFormat::kGptqV2;
    const fs::path out = fuzz::scratch_root() / ("q" + std::to_string(v));
    quantize_model(fl, out, o, [](const std::string&) {});
    std::string bytes = read_all(out / "model.safetensors");
    bytes.push_back(static_cast<char>(v));
    put(corpus / "gptq_loader" / ("rtn-variant-" + std::to_string(v)), bytes);
  }
  return 0;
}
