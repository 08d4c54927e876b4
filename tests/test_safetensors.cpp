// Safetensors reader and writer: malformed files and indexes, write -> read round trips (single
// file and sharded), the bundled fixtures, resume, cleanup and write failures.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "support/fixtures.h"
#include "util/error.h"
#include "util/fp16.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using gptq::testing::fixture_model;
using gptq::testing::read_file;
using gptq::testing::scratch_dir;

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}
// A safetensors file: length, header JSON, data bytes.
std::string st(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}
// The same with the header padded by spaces to a multiple of 8 (8-byte aligned data section).
std::string st_aligned(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return st(header, data);
}
void write_bytes(const fs::path& p, const std::string& bytes) {
  FILE* f = std::fopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
}

// Runs fn, which must throw gptq::Error (anything else fails the test); returns the error.
Error expect_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected gptq::Error, got another exception: " << e.what();
    return Error("wrong exception");
  }
  ADD_FAILURE() << "expected gptq::Error, nothing was thrown";
  return Error("nothing thrown");
}

std::vector<std::string> list_dir(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// ---------------------------------------------------------------- malformed single files

struct BadFile {
  const char* label;
  std::string bytes;
  std::vector<std::string> expect;  // substrings of the message (the file name is always checked)
};

std::vector<BadFile> bad_files() {
  const std::string w12 = R"("w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]})";
  const std::string d12(12, 'x');
  return {
      {"empty", "", {"0 bytes, shorter than the 8-byte header length"}},
      {"five_bytes", "abcde", {"5 bytes, shorter than the 8-byte"}},
      {"length_beyond_file",
       le64(1000) + "{}",
       {"header length 1000 goes beyond the end", "10 bytes"}},
      {"length_huge", le64(uint64_t{1} << 63) + "{}", {"goes beyond the end of the file"}},
      {"invalid_json", st(R"({"w": {"dtype": )"), {"not valid JSON"}},
      {"invalid_utf8", st("{\"w\xff\":1}"), {"not valid JSON"}},
      {"not_object", st("[1, 2]"), {"the header is a JSON array, expected an object"}},
      {"deep_nesting",
       st("{\"w\":" + std::string(100000, '[') + std::string(100000, ']') + "}"),
       {"nested deeper than 64 levels"}},
      {"entry_not_object", st(R"({"w": 5})"), {"tensor 'w': entry is a number 5"}},
      {"missing_dtype",
       st(R"({"w":{"shape":[1],"data_offsets":[0,2]}})", "xx"),
       {"tensor 'w': missing \"dtype\""}},
      {"missing_shape",
       st(R"({"w":{"dtype":"F16","data_offsets":[0,2]}})", "xx"),
       {"tensor 'w': missing \"shape\""}},
      {"missing_offsets",
       st(R"({"w":{"dtype":"F16","shape":[1]}})", "xx"),
       {"tensor 'w': missing \"data_offsets\""}},
      {"dtype_not_string",
       st(R"({"w":{"dtype":3,"shape":[1],"data_offsets":[0,2]}})", "xx"),
       {"\"dtype\" is a number 3"}},
      {"unknown_dtype",
       st(R"({"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,2]}})", "xx"),
       {"tensor 'w': unknown dtype 'Q7'"}},
      {"shape_not_array",
       st(R"({"w":{"dtype":"F16","shape":"2x3","data_offsets":[0,12]}})", d12),
       {"\"shape\" is a string"}},
      {"negative_dim",
       st(R"({"w":{"dtype":"F16","shape":[2,-3],"data_offsets":[0,12]}})", d12),
       {"shape dimension 1 (number -3) is negative"}},
      {"fractional_dim",
       st(R"({"w":{"dtype":"F16","shape":[2.5],"data_offsets":[0,5]}})", "xxxxx"),
       {"shape dimension 0 (number 2.5) is not an integer"}},
      {"dim_beyond_int64",
       st(R"({"w":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,1]}})", "x"),
       {"is too large"}},
      {"shape_overflow",
       st(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", "xxxx"),
       {"tensor 'w': shape [4294967296, 4294967296] is too large"}},
      {"offsets_wrong_arity",
       st(R"({"w":{"dtype":"F16","shape":[1],"data_offsets":[0]}})", "xx"),
       {"\"data_offsets\" is a array [0], expected [begin, end]"}},
      {"offsets_negative",
       st(R"({"w":{"dtype":"F16","shape":[1],"data_offsets":[-2,0]}})", "xx"),
       {"must be two non-negative integers"}},
      {"begin_after_end",
       st(R"({"w":{"dtype":"F16","shape":[1],"data_offsets":[4,2]}})", "xxxx"),
       {"data_offsets [4, 2] begin after they end"}},
      {"offsets_beyond_data",
       st(R"({"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}})", "xxxx"),
       {"data_offsets [0, 12] go beyond the data section, which is 4 bytes"}},
      {"size_mismatch",
       st(R"({"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,8]}})", "12345678"),
       {"tensor 'w' (F16 [2, 3]) needs 12 bytes but its data_offsets [0, 8] span 8 bytes"}},
      {"overlap",
       st(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
          R"("b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})",
          std::string(10, 'x')),
       {"tensor 'b' (data_offsets [6, 10]) overlaps tensor 'a' ([0, 8])"}},
      {"hole",
       st(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
          R"("b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})",
          std::string(10, 'x')),
       {"hole in the data section: bytes [4, 6) before tensor 'b'"}},
      {"first_not_at_zero",
       st(R"({"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", "xxxxxx"),
       {"bytes [0, 2) before tensor 'b'"}},
      {"trailing_bytes",
       st("{" + w12 + "}", d12 + "zz"),
       {"2 trailing bytes after the last tensor 'w'"}},
      {"empty_header_with_data",
       st("{}", "abcd"),
       {"the header declares no tensors but 4 bytes of data follow it"}},
      {"duplicate_tensor", st("{" + w12 + "," + w12 + "}", d12), {"duplicate tensor name 'w'"}},
      {"duplicate_field",
       st(R"({"w":{"dtype":"F16","dtype":"F32","shape":[1],"data_offsets":[0,2]}})", "xx"),
       {"duplicate key 'dtype' in the header entry 'w'"}},
      {"metadata_not_strings",
       st(R"({"__metadata__":{"format":"pt","n":3}})"),
       {"\"__metadata__\" value of 'n' is a number 3, expected a string"}},
      {"metadata_not_object", st(R"({"__metadata__":[1]})"), {"\"__metadata__\" is a array"}},
  };
}

TEST(SafetensorsRead, MalformedFilesAreRejectedWithSpecificMessages) {
  const fs::path dir = scratch_dir("bad");
  const auto cases = bad_files();
  ASSERT_GE(cases.size(), 12u);
  for (const BadFile& c : cases) {
    SCOPED_TRACE(c.label);
    const fs::path file = dir / (std::string(c.label) + ".safetensors");
    write_bytes(file, c.bytes);
    const Error e = expect_error([&] { SafetensorsFile::open(file); });
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    EXPECT_EQ(e.code(), ExitCode::kBadInput) << msg;
    for (const std::string& s : c.expect) EXPECT_NE(msg.find(s), std::string::npos) << msg;
    // The same through TensorStore, given the file.
    const Error e2 = expect_error([&] { TensorStore::open(file); });
    EXPECT_STREQ(e2.what(), e.what());
  }
}

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  return n;
}

// (Fresh file names: rewriting one file in place makes ext4 flush it on every close.)
void expect_rejected(const fs::path& file, const std::string& bytes) {
  write_bytes(file, bytes);
  const Error e = expect_error([&] { SafetensorsFile::open(file); });
  EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  fs::remove(file);
}

TEST(SafetensorsRead, TruncatedFilesAndFlippedHeaderBytesNeverCrash) {
  const fs::path dir = scratch_dir("trunc");
  const std::string real = read_file(fixture_model("tiny-gpt2") / "model.safetensors");
  const uint64_t h = header_length(real);
  for (uint64_t cut : {uint64_t{0}, uint64_t{1}, uint64_t{7}, uint64_t{8}, uint64_t{9}, 8 + h / 2,
                       8 + h, 8 + h + 1000, real.size() - 1}) {
    expect_rejected(dir / ("cut" + std::to_string(cut) + ".safetensors"), real.substr(0, cut));
  }
  // A small file with many tensors: every truncation, then random byte flips in the header
  // (either still valid, or a gptq::Error; never a crash or another exception).
  std::string header = "{";
  std::string data;
  for (int i = 0; i < 6; ++i) {
    if (i > 0) header += ",";
    header += fmt::format(R"("t{}":{{"dtype":"F16","shape":[{},2],"data_offsets":[{},{}]}})", i, i,
                          data.size(), data.size() + 4 * i);
    data.append(4 * i, static_cast<char>(i));
  }
  const std::string small = st(header + "}", data);
  for (size_t cut = 0; cut < small.size(); ++cut) {
    expect_rejected(dir / fmt::format("small{}.safetensors", cut), small.substr(0, cut));
  }
  std::mt19937 rng(7);
  const uint64_t hs = header_length(small);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes = small;
    for (int k = 0; k < 1 + i % 3; ++k) bytes[8 + rng() % hs] = static_cast<char>(rng() % 256);
    if (i % 10 == 0) bytes[rng() % 8] = static_cast<char>(rng() % 256);  // the length too
    const fs::path file = dir / fmt::format("flip{}.safetensors", i);
    write_bytes(file, bytes);
    try {
      SafetensorsFile::open(file);
    } catch (const Error&) {
    }
    fs::remove(file);
  }
}

TEST(SafetensorsRead, EmptyHeaderIsAValidEmptyFile) {
  const fs::path dir = scratch_dir("empty");
  write_bytes(dir / "a.safetensors", st("{}"));
  write_bytes(dir / "b.safetensors", st("{}      "));  // space padding, as writers do
  write_bytes(dir / "c.safetensors", st(R"({"__metadata__":{"format":"pt"}})"));
  for (const char* name : {"a", "b", "c"}) {
    const auto f = SafetensorsFile::open(dir / (std::string(name) + ".safetensors"));
    EXPECT_TRUE(f->tensors().empty());
  }
  EXPECT_EQ(SafetensorsFile::open(dir / "c.safetensors")->metadata().at("format"), "pt");
}

TEST(SafetensorsRead, EveryDtypeParsesAndUnalignedHalvesConvert) {
  // A 1-byte tensor first puts the F16 and F32 data at odd addresses.
  const std::vector<std::pair<std::string, int>> dtypes = {
      {"U8", 1},  {"F16", 2}, {"F32", 4}, {"BF16", 2},    {"F64", 8},
      {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},      {"BOOL", 1},
      {"U16", 2}, {"U32", 4}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  std::string header = "{";
  std::string data;
  const std::vector<float> values = {1.5f, -2.25f, 65504.0f};
  for (const auto& [name, size] : dtypes) {
    std::string bytes;
    for (float v : values) {
      if (name == "F16" || name == "BF16") {
        const uint16_t h = name == "F16" ? f32_to_f16(v) : f32_to_bf16(v);
        bytes.append(reinterpret_cast<const char*>(&h), 2);
      } else if (name == "F32") {
        bytes.append(reinterpret_cast<const char*>(&v), 4);
      } else if (name == "F64") {
        const double d = v;
        bytes.append(reinterpret_cast<const char*>(&d), 8);
      } else {
        bytes.append(size, '\1');
      }
    }
    if (header.size() > 1) header += ",";
    header += fmt::format(R"("t_{}":{{"dtype":"{}","shape":[3],"data_offsets":[{},{}]}})", name,
                          name, data.size(), data.size() + bytes.size());
    data += bytes;
  }
  header += "}";
  const fs::path file = scratch_dir("dtypes") / "all.safetensors";
  write_bytes(file, st_aligned(header, data));
  const auto f = SafetensorsFile::open(file);
  ASSERT_EQ(f->tensors().size(), dtypes.size());
  ASSERT_EQ(reinterpret_cast<uintptr_t>(f->find("t_F16")->data) % 2, 1u);  // odd address
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const TensorInfo& t = f->tensors()[i];  // data-offset order == declaration order here
    EXPECT_EQ(t.name, "t_" + dtypes[i].first);
    EXPECT_EQ(dtype_name(t.dtype), dtypes[i].first);
    EXPECT_EQ(t.nbytes, 3u * dtypes[i].second);
    EXPECT_EQ(t.shape_str(), "[3]");
    if (i + 1 < dtypes.size()) {
      EXPECT_EQ(t.data + t.nbytes, f->tensors()[i + 1].data);  // views into one mapping
    }
  }
  for (const char* name : {"t_F16", "t_BF16", "t_F32", "t_F64"}) {
    SCOPED_TRACE(name);
    const std::vector<float> got = tensor_to_f32(*f->find(name));
    const float tol = std::string(name) == "t_BF16" ? 256.0f : 0.0f;  // 65504 rounds in bf16
    for (size_t k = 0; k < values.size(); ++k) EXPECT_NEAR(got[k], values[k], tol);
  }
  const Error e = expect_error([&] { tensor_to_f32(*f->find("t_I32")); });
  EXPECT_NE(std::string(e.what()).find("tensor 't_I32'"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("has dtype I32"), std::string::npos) << e.what();
}

TEST(SafetensorsRead, LargeConversionMatchesScalarAcrossThreadRanges) {
  const size_t n = (size_t{3} << 20) + 77;  // several threads' worth, with a tail
  std::vector<uint16_t> halves(n);
  std::mt19937 rng(3);
  for (auto& h : halves) h = static_cast<uint16_t>(rng());
  const std::string data(reinterpret_cast<const char*>(halves.data()), 2 * n);
  const std::string header =
      fmt::format(R"({{"h":{{"dtype":"F16","shape":[{}],"data_offsets":[0,{}]}},)"
                  R"("b":{{"dtype":"BF16","shape":[{}],"data_offsets":[{},{}]}}}})",
                  n, 2 * n, n, 2 * n, 4 * n);
  const fs::path file = scratch_dir("big") / "big.safetensors";
  write_bytes(file, st(header, data + data));
  const auto f = SafetensorsFile::open(file);
  const std::vector<float> h = tensor_to_f32(*f->find("h"));
  const std::vector<float> b = tensor_to_f32(*f->find("b"));
  for (size_t i = 0; i < n; ++i) {
    const float eh = f16_to_f32(halves[i]);
    const float eb = bf16_to_f32(halves[i]);
    ASSERT_EQ(std::memcmp(&h[i], &eh, 4), 0) << i;
    ASSERT_EQ(std::memcmp(&b[i], &eb, 4), 0) << i;
  }
}

// ---------------------------------------------------------------- malformed indexes

struct BadIndex {
  const char* label;
  std::string index;  // model.safetensors.index.json
  std::vector<std::string> expect;
  ExitCode code = ExitCode::kBadInput;
};

TEST(SafetensorsRead, MalformedIndexesAreRejectedWithSpecificMessages) {
  // Two valid shards: a.safetensors holds "x" and "y", b.safetensors holds "z" and "y".
  const std::string tx = R"("x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]})";
  const std::string ty = R"("y":{"dtype":"U8","shape":[2],"data_offsets":[2,4]})";
  const std::string tz = R"("z":{"dtype":"U8","shape":[2],"data_offsets":[0,2]})";
  const std::vector<BadIndex> cases = {
      {"bad_json", R"({"weight_map": {"x": "a.safetensors",)", {"not valid JSON"}},
      {"not_object", "[]", {"the index is a JSON array, expected an object"}},
      {"no_weight_map", R"({"metadata": {}})", {"expected an object \"weight_map\""}},
      {"value_not_string",
       R"({"weight_map": {"x": 1}})",
       {"weight_map entry of tensor 'x' is a number"}},
      {"missing_shard",
       R"({"weight_map": {"x": "a.safetensors", "q": "gone.safetensors"}})",
       {"names shard 'gone.safetensors'", "does not exist"},
       ExitCode::kIo},
      {"tensor_not_in_shard",
       R"({"weight_map": {"x": "a.safetensors", "y": "a.safetensors", "w": "a.safetensors"}})",
       {"maps tensor 'w' to shard 'a.safetensors', but that shard has no such tensor"}},
      {"tensor_in_two_shards",
       R"({"weight_map": {"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"}})",
       {"tensor 'y' is present in two shards, 'a.safetensors' and 'b.safetensors'"}},
      {"listed_twice",
       R"({"weight_map": {"x": "a.safetensors", "x": "a.safetensors"}})",
       {"tensor 'x' is listed twice in the weight_map"}},
      {"unlisted_tensor",
       R"({"weight_map": {"x": "a.safetensors"}})",
       {"shard 'a.safetensors' holds tensor 'y', which the weight_map does not list"}},
      {"escaping_path",
       R"({"weight_map": {"x": "../a.safetensors"}})",
       {"expected a file name inside the checkpoint directory"}},
      {"metadata_not_object",
       R"({"metadata": 5, "weight_map": {"x": "a.safetensors", "y": "a.safetensors"}})",
       {"\"metadata\" is a number"}},
  };
  for (const BadIndex& c : cases) {
    SCOPED_TRACE(c.label);
    const fs::path dir = scratch_dir(c.label);
    write_bytes(dir / "a.safetensors", st("{" + tx + "," + ty + "}", "xxyy"));
    write_bytes(dir / "b.safetensors", st("{" + tz + "," + ty + "}", "zzyy"));
    write_bytes(dir / "model.safetensors.index.json", c.index);
    const Error e = expect_error([&] { TensorStore::open(dir); });
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.safetensors.index.json"), std::string::npos) << msg;
    EXPECT_EQ(e.code(), c.code) << msg;
    for (const std::string& s : c.expect) EXPECT_NE(msg.find(s), std::string::npos) << msg;
  }
  // A damaged shard is reported with the shard's name.
  const fs::path dir = scratch_dir("damaged_shard");
  write_bytes(dir / "a.safetensors", st("{" + tx + "}", "x"));
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"x": "a.safetensors"}})");
  const Error e = expect_error([&] { TensorStore::open(dir); });
  EXPECT_NE(std::string(e.what()).find((dir / "a.safetensors").string()), std::string::npos);
  EXPECT_NE(std::string(e.what()).find("go beyond the data section"), std::string::npos);
}

// ---------------------------------------------------------------- path resolution

TEST(SafetensorsRead, StoreResolvesDirectoriesIndexesAndFiles) {
  const fs::path dir = scratch_dir("resolve");
  const std::string one = st(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "a");
  write_bytes(dir / "weights.safetensors", one);  // the only .safetensors: chosen
  EXPECT_EQ(TensorStore::open(dir).names(), std::vector<std::string>{"x"});
  EXPECT_EQ(TensorStore::open(dir).root(), dir);
  write_bytes(dir / "other.safetensors", one);  // two, no index: ambiguous
  Error e = expect_error([&] { TensorStore::open(dir); });
  EXPECT_NE(std::string(e.what()).find("2 .safetensors files (other.safetensors, "
                                       "weights.safetensors)"),
            std::string::npos)
      << e.what();
  write_bytes(dir / "model.safetensors",
              st(R"({"m":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "b"));
  EXPECT_EQ(TensorStore::open(dir).names(), std::vector<std::string>{"m"});  // model.safetensors
  EXPECT_EQ(TensorStore::open(dir / "other.safetensors").names(), std::vector<std::string>{"x"});
  write_bytes(dir / "model.safetensors.index.json",
              R"({"weight_map": {"x": "other.safetensors"}})");
  EXPECT_EQ(TensorStore::open(dir).files().size(), 1u);  // the index wins
  EXPECT_EQ(TensorStore::open(dir).files().front()->path(), dir / "other.safetensors");
  EXPECT_EQ(TensorStore::open(dir / "model.safetensors.index.json").names(),
            std::vector<std::string>{"x"});

  e = expect_error([&] { TensorStore::open(dir / "missing"); });
  EXPECT_EQ(e.code(), ExitCode::kIo);
  EXPECT_NE(std::string(e.what()).find("missing' does not exist"), std::string::npos);
  e = expect_error([&] { TensorStore::open(scratch_dir("none")); });
  EXPECT_EQ(e.code(), ExitCode::kIo);
  EXPECT_NE(std::string(e.what()).find("no safetensors checkpoint"), std::string::npos);

  const TensorStore store = TensorStore::open(dir / "other.safetensors");
  e = expect_error([&] { store.get("nope"); });
  EXPECT_NE(std::string(e.what()).find("tensor 'nope' not found in checkpoint"), std::string::npos);
}

// ---------------------------------------------------------------- fixtures

TEST(SafetensorsFixtures, TinyLlamaF16) {
  const TensorStore store = TensorStore::open(fixture_model("tiny-llama"));
  EXPECT_EQ(store.files().size(), 1u);
  const TensorInfo& embed = store.get("model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, DType::F16);
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{4096, 256}));
  EXPECT_EQ(embed.nbytes, 4096u * 256 * 2);
  EXPECT_EQ(embed.numel(), 4096 * 256);
  EXPECT_EQ(*embed.file, fixture_model("tiny-llama") / "model.safetensors");
  EXPECT_EQ(store.get("model.layers.0.mlp.down_proj.weight").shape,
            (std::vector<int64_t>{256, 768}));
  int64_t params = 0;
  for (const std::string& name : store.names()) params += store.get(name).numel();
  EXPECT_EQ(params, 5245184);  // README: 5,245,184 stored parameters
  const std::vector<float> w = tensor_to_f32(embed);
  std::vector<uint16_t> raw(w.size());
  std::memcpy(raw.data(), embed.data, embed.nbytes);
  for (size_t i = 0; i < w.size(); ++i) {
    ASSERT_TRUE(std::isfinite(w[i]));
    ASSERT_EQ(w[i], f16_to_f32(raw[i]));
  }
}

TEST(SafetensorsFixtures, ShardedTinyLlamaIsByteIdentical) {
  const TensorStore single = TensorStore::open(fixture_model("tiny-llama"));
  const TensorStore sharded = TensorStore::open(fixture_model("tiny-llama-sharded"));
  EXPECT_EQ(sharded.files().size(), 2u);
  EXPECT_EQ(sharded.metadata().at("total_size"), "10490368");
  ASSERT_EQ(single.names(), sharded.names());
  for (const std::string& name : single.names()) {
    const TensorInfo& a = single.get(name);
    const TensorInfo& b = sharded.get(name);
    EXPECT_EQ(a.dtype, b.dtype) << name;
    EXPECT_EQ(a.shape, b.shape) << name;
    ASSERT_EQ(a.nbytes, b.nbytes) << name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
  }
}

TEST(SafetensorsFixtures, TinyGpt2F32) {
  const TensorStore store = TensorStore::open(fixture_model("tiny-gpt2"));
  size_t f32 = 0;
  for (const std::string& name : store.names()) {
    const TensorInfo& t = store.get(name);
    if (t.dtype != DType::F32) continue;
    ++f32;
    const std::vector<float> v = tensor_to_f32(t);
    ASSERT_EQ(v.size() * 4, t.nbytes);
    EXPECT_EQ(std::memcmp(v.data(), t.data, t.nbytes), 0) << name;
  }
  EXPECT_GT(f32, 10u);
}

// ---------------------------------------------------------------- writer

struct Tensor {
  TensorSpec spec;
  std::string bytes;
};

std::vector<Tensor> make_tensors(uint32_t seed) {
  const std::vector<TensorSpec> specs = {
      {"emb", DType::F16, {16, 8}},  {"odd", DType::I8, {5}},     {"w", DType::F32, {3, 7}},
      {"b", DType::BF16, {2, 3, 4}}, {"scalar", DType::F32, {}},  {"empty", DType::F16, {0, 4}},
      {"d", DType::F64, {3}},        {"ids", DType::I64, {4}},    {"mask", DType::BOOL, {9}},
      {"q", DType::U8, {33}},        {"f8", DType::F8_E4M3, {6}}, {"u32", DType::U32, {2, 2}},
  };
  std::mt19937 rng(seed);
  std::vector<Tensor> out;
  for (const TensorSpec& s : specs) {
    std::string bytes(s.nbytes(), '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    out.push_back({s, bytes});
  }
  return out;
}

std::vector<TensorSpec> specs_of(const std::vector<Tensor>& ts) {
  std::vector<TensorSpec> specs;
  for (const Tensor& t : ts) specs.push_back(t.spec);
  return specs;
}

// Writes every tensor in three pieces, all pieces of all tensors in a shuffled order.
void write_shuffled(SafetensorsWriter& w, const std::vector<Tensor>& ts, uint32_t seed) {
  struct Piece {
    const Tensor* t;
    uint64_t begin, end;
  };
  std::vector<Piece> pieces;
  for (const Tensor& t : ts) {
    const uint64_t n = t.bytes.size();
    pieces.push_back({&t, 0, n / 3});
    pieces.push_back({&t, n / 3, 2 * n / 3});
    pieces.push_back({&t, 2 * n / 3, n});
  }
  std::shuffle(pieces.begin(), pieces.end(), std::mt19937(seed));
  for (const Piece& p : pieces) {
    w.write(p.t->spec.name, p.t->bytes.data() + p.begin, p.end - p.begin, p.begin);
  }
}

void expect_same(const TensorStore& store, const std::vector<Tensor>& ts) {
  ASSERT_EQ(store.size(), ts.size());
  for (const Tensor& t : ts) {
    const TensorInfo& got = store.get(t.spec.name);
    EXPECT_EQ(got.dtype, t.spec.dtype) << t.spec.name;
    EXPECT_EQ(got.shape, t.spec.shape) << t.spec.name;
    ASSERT_EQ(got.nbytes, t.bytes.size()) << t.spec.name;
    EXPECT_EQ(std::memcmp(got.data, t.bytes.data(), got.nbytes), 0) << t.spec.name;
  }
}

TEST(SafetensorsWriter, SingleFileRoundTripIsBitIdentical) {
  const fs::path dir = scratch_dir("single") / "out" / "nested";  // created by the writer
  const std::vector<Tensor> ts = make_tensors(1);
  SafetensorsWriter::Options opt;
  opt.metadata = {{"format", "pt"}, {"quant", "gptq \"w4\""}};
  {
    SafetensorsWriter w(dir, specs_of(ts), opt);
    EXPECT_EQ(w.file_names(), std::vector<std::string>{"model.safetensors"});
    write_shuffled(w, ts, 2);
    w.finish();
  }
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"model.safetensors"});
  const TensorStore store = TensorStore::open(dir);
  expect_same(store, ts);
  EXPECT_EQ(store.metadata(), opt.metadata);

  // Header: length a multiple of 8, padded with spaces; tensors in declared order.
  const std::string bytes = read_file(dir / "model.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.find_first_not_of(' ', header.rfind('}') + 1), std::string::npos);
  EXPECT_LT(header.find("\"emb\""), header.find("\"odd\""));
  EXPECT_LT(header.find("\"odd\""), header.find("\"w\""));
  EXPECT_EQ(store.get("odd").data + 5, store.get("w").data);  // declared order = data order
}

TEST(SafetensorsWriter, ShardedRoundTripAndIndex) {
  const fs::path dir = scratch_dir("sharded");
  const std::vector<Tensor> ts = make_tensors(3);
  uint64_t total = 0;
  for (const Tensor& t : ts) total += t.bytes.size();
  SafetensorsWriter::Options opt;
  opt.max_shard_bytes = 260;  // emb alone is 256 bytes
  opt.metadata = {{"format", "pt"}};
  std::vector<std::string> names;
  {
    SafetensorsWriter w(dir, specs_of(ts), opt);
    names = w.file_names();
    write_shuffled(w, ts, 4);
    w.finish();
  }
  ASSERT_GE(names.size(), 3u);
  const size_t shards = names.size() - 1;
  EXPECT_EQ(names.back(), "model.safetensors.index.json");
  for (size_t i = 0; i < shards; ++i) {
    EXPECT_EQ(names[i], fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards));
  }
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(list_dir(dir), sorted);

  const TensorStore store = TensorStore::open(dir);
  EXPECT_EQ(store.files().size(), shards);
  expect_same(store, ts);
  EXPECT_EQ(store.metadata().at("format"), "pt");
  EXPECT_EQ(store.metadata().at("total_size"), std::to_string(total));

  const std::string text = read_file(dir / "model.safetensors.index.json");
  const nlohmann::json index = nlohmann::json::parse(text);
  EXPECT_EQ(index.dump(2) + "\n", text);  // sorted keys, indent 2
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_EQ(index["weight_map"].size(), ts.size());
  for (const Tensor& t : ts) {
    EXPECT_EQ(index["weight_map"][t.spec.name].get<std::string>(),
              store.get(t.spec.name).file->filename().string());
  }
  // Each shard stays within the limit unless it holds a single tensor.
  for (const auto& f : store.files()) {
    uint64_t bytes = 0;
    for (const TensorInfo& t : f->tensors()) bytes += t.nbytes;
    if (f->tensors().size() > 1) {
      EXPECT_LE(bytes, opt.max_shard_bytes);
    }
  }
}

TEST(SafetensorsWriter, ShardingFollowsHuggingFaceMaxShardSize) {
  auto plan = [](const std::vector<int64_t>& sizes, uint64_t max) {
    std::vector<TensorSpec> specs;
    for (size_t i = 0; i < sizes.size(); ++i) {
      specs.push_back({fmt::format("t{}", i), DType::U8, {sizes[i]}});
    }
    SafetensorsWriter::Options opt;
    opt.max_shard_bytes = max;
    const fs::path dir = scratch_dir("plan");
    SafetensorsWriter w(dir, specs, opt);
    for (const TensorSpec& s : specs) {
      w.write(s.name, std::string(s.nbytes(), 'a').data(), s.nbytes());
    }
    w.finish();
    const TensorStore store = TensorStore::open(dir);
    std::vector<std::vector<std::string>> shards;
    for (const auto& f : store.files()) {
      shards.emplace_back();
      for (const TensorInfo& t : f->tensors()) shards.back().push_back(t.name);
    }
    return shards;
  };
  using S = std::vector<std::vector<std::string>>;
  EXPECT_EQ(plan({40, 40, 40, 100, 10}, 100), (S{{"t0", "t1"}, {"t2"}, {"t3"}, {"t4"}}));
  EXPECT_EQ(plan({10, 150, 10}, 100), (S{{"t0"}, {"t1"}, {"t2"}}));  // oversized: own shard
  EXPECT_EQ(plan({50, 50}, 100), (S{{"t0", "t1"}}));                 // exactly full
  EXPECT_EQ(plan({150}, 100), (S{{"t0"}}));
  // One shard: plain model.safetensors, no index.
  const fs::path dir = scratch_dir("one");
  SafetensorsWriter::Options opt;
  opt.max_shard_bytes = 1000;
  SafetensorsWriter w(dir, {{"a", DType::U8, {3}}}, opt);
  EXPECT_EQ(w.file_names(), std::vector<std::string>{"model.safetensors"});
}

TEST(SafetensorsWriter, UnfinishedWriterLeavesNoFiles) {
  const fs::path dir = scratch_dir("unfinished");
  const std::vector<Tensor> ts = make_tensors(5);
  SafetensorsWriter::Options opt;
  opt.max_shard_bytes = 200;
  {
    SafetensorsWriter w(dir, specs_of(ts), opt);
    w.write("emb", ts[0].bytes.data(), ts[0].bytes.size());
    EXPECT_FALSE(list_dir(dir).empty());  // the .partial files
    for (const std::string& name : list_dir(dir)) EXPECT_TRUE(name.ends_with(".partial")) << name;
  }
  EXPECT_TRUE(list_dir(dir).empty());
}

TEST(SafetensorsWriter, FinishRequiresEveryByte) {
  const fs::path dir = scratch_dir("incomplete");
  SafetensorsWriter w(dir, {{"a", DType::F32, {2}}, {"b", DType::U8, {3}}, {"z", DType::F16, {0}}},
                      {});
  const float a[2] = {1, 2};
  w.write("a", a, 4, 0);
  w.write("b", "xyz", 3);
  Error e = expect_error([&] { w.finish(); });
  EXPECT_NE(std::string(e.what()).find("1 of 3 tensors are not completely written: 'a' (4 of 8 "
                                       "bytes)"),
            std::string::npos)
      << e.what();
  w.write("a", a, 4, 0);  // rewriting a range does not count twice
  e = expect_error([&] { w.finish(); });
  EXPECT_NE(std::string(e.what()).find("'a' (4 of 8 bytes)"), std::string::npos) << e.what();
  w.write("a", a + 1, 4, 4);
  w.finish();
  EXPECT_EQ(tensor_to_f32(TensorStore::open(dir).get("a")), (std::vector<float>{1, 2}));
}

TEST(SafetensorsWriter, InvalidUseIsRejected) {
  const fs::path dir = scratch_dir("invalid");
  Error e = expect_error([&] {
    SafetensorsWriter(dir, {{"a", DType::U8, {1}}, {"a", DType::U8, {2}}}, {});
  });
  EXPECT_NE(std::string(e.what()).find("tensor 'a' is declared twice"), std::string::npos);
  e = expect_error([&] { SafetensorsWriter(dir, {{"a", DType::U8, {-1}}}, {}); });
  EXPECT_NE(std::string(e.what()).find("invalid shape [-1]"), std::string::npos);
  e = expect_error([&] { SafetensorsWriter(dir, {{"__metadata__", DType::U8, {1}}}, {}); });
  EXPECT_NE(std::string(e.what()).find("invalid tensor name"), std::string::npos);
  EXPECT_TRUE(list_dir(dir).empty());

  SafetensorsWriter w(dir, {{"a", DType::U8, {4}}}, {});
  e = expect_error([&] { w.write("nope", "x", 1); });
  EXPECT_NE(std::string(e.what()).find("tensor 'nope': it was not declared"), std::string::npos);
  e = expect_error([&] { w.write("a", "xyz", 3, 2); });
  EXPECT_NE(std::string(e.what()).find("bytes [2, 5) of tensor 'a', which has 4 bytes"),
            std::string::npos)
      << e.what();
  e = expect_error([&] { w.write("a", "x", 1, ~uint64_t{0}); });
  EXPECT_NE(std::string(e.what()).find("which has 4 bytes"), std::string::npos) << e.what();
  e = expect_error([&] { w.mark_written("nope"); });
  EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos);
}

TEST(SafetensorsWriter, ResumeReopensMatchingPartials) {
  const fs::path dir = scratch_dir("resume");
  const std::vector<Tensor> ts = make_tensors(6);
  SafetensorsWriter::Options opt;
  opt.max_shard_bytes = 200;
  opt.keep_partial = true;
  std::vector<std::string> partials;
  {
    SafetensorsWriter w(dir, specs_of(ts), opt);
    for (size_t i = 0; i < ts.size() / 2; ++i)
      w.write(ts[i].spec.name, ts[i].bytes.data(), ts[i].bytes.size());
    w.write(ts.back().spec.name, ts.back().bytes.data(), 3);  // half written: redone below
    w.sync();
    partials = list_dir(dir);
  }
  EXPECT_EQ(list_dir(dir), partials);  // kept
  for (const std::string& name : partials) EXPECT_TRUE(name.ends_with(".partial")) << name;

  // A different layout cannot resume from these files; they are left alone.
  std::vector<TensorSpec> other = specs_of(ts);
  other[0].shape = {16, 9};
  SafetensorsWriter::Options ropt = opt;
  ropt.resume = true;
  ropt.keep_partial = false;
  const Error e = expect_error([&] { SafetensorsWriter(dir, other, ropt); });
  EXPECT_NE(std::string(e.what()).find("cannot resume from '" + (dir / partials[0]).string()),
            std::string::npos)
      << e.what();
  EXPECT_NE(std::string(e.what()).find("header differs"), std::string::npos) << e.what();
  EXPECT_EQ(list_dir(dir), partials);

  {
    SafetensorsWriter w(dir, specs_of(ts), ropt);
    for (size_t i = 0; i < ts.size() / 2; ++i) w.mark_written(ts[i].spec.name);
    for (size_t i = ts.size() / 2; i < ts.size(); ++i) {
      w.write(ts[i].spec.name, ts[i].bytes.data(), ts[i].bytes.size());
    }
    w.finish();
  }
  expect_same(TensorStore::open(dir), ts);
  for (const std::string& name : list_dir(dir)) EXPECT_FALSE(name.ends_with(".partial")) << name;

  // Nothing to resume from.
  const fs::path empty = scratch_dir("resume_none");
  const Error e2 = expect_error([&] { SafetensorsWriter(empty, specs_of(ts), ropt); });
  EXPECT_EQ(e2.code(), ExitCode::kIo);
  EXPECT_NE(std::string(e2.what()).find("cannot resume from"), std::string::npos) << e2.what();
}

TEST(SafetensorsWriter, StaleFilesOfAnEarlierRunAreReplaced) {
  const fs::path dir = scratch_dir("stale");
  const std::vector<Tensor> ts = make_tensors(8);
  SafetensorsWriter::Options sharded;
  sharded.max_shard_bytes = 200;
  {
    SafetensorsWriter w(dir, specs_of(ts), sharded);
    write_shuffled(w, ts, 1);
    w.finish();
  }
  write_bytes(dir / "config.json", "{}");
  const std::vector<Tensor> ts2 = make_tensors(9);
  {
    SafetensorsWriter w(dir, specs_of(ts2), {});
    write_shuffled(w, ts2, 1);
    w.finish();
  }
  EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"config.json", "model.safetensors"}));
  expect_same(TensorStore::open(dir), ts2);
}

TEST(SafetensorsWriter, ConcurrentPieceWrites) {
  const fs::path dir = scratch_dir("threads");
  const size_t n = 1 << 20;
  std::string bytes(n, '\0');
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>(i * 7);
  {
    SafetensorsWriter w(dir, {{"t", DType::U8, {static_cast<int64_t>(n)}}}, {});
    std::vector<std::thread> threads;
    for (size_t k = 0; k < 4; ++k) {
      threads.emplace_back([&, k] {
        for (size_t off = k * 4096; off < n; off += 4 * 4096)
          w.write("t", bytes.data() + off, 4096, off);
      });
    }
    for (auto& t : threads) t.join();
    w.finish();
  }
  const TensorStore store = TensorStore::open(dir);
  EXPECT_EQ(std::memcmp(store.get("t").data, bytes.data(), n), 0);
}

// A write beyond RLIMIT_FSIZE fails with EFBIG (SIGXFSZ ignored): a kIo error naming the file and
// the system error, and the temporaries are removed. Runs in a forked child.
void write_past_file_size_limit(const fs::path& dir) {
  std::signal(SIGXFSZ, SIG_IGN);
  const rlimit limit{1 << 16, 1 << 16};
  if (setrlimit(RLIMIT_FSIZE, &limit) != 0) std::_Exit(3);
  try {
    SafetensorsWriter w(dir, {{"big", DType::U8, {1 << 20}}}, {});
    const std::string data(1 << 20, 'x');
    w.write("big", data.data(), data.size());
    std::fprintf(stderr, "no error\n");
    std::_Exit(1);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s [code %d] [files %zu]\n", e.what(), static_cast<int>(e.code()),
                 list_dir(dir).size());
    std::_Exit(0);
  }
}

TEST(SafetensorsWriterDeathTest, WriteFailureIsAnIoErrorAndLeavesNoFiles) {
  const fs::path dir = scratch_dir("efbig");
  EXPECT_EXIT(write_past_file_size_limit(dir), ::testing::ExitedWithCode(0),
              "cannot write '.*model.safetensors.partial': File too large; .*raise the limit.*"
              "\\[code 4\\] \\[files 0\\]");
}

}  // namespace
}  // namespace gptq
