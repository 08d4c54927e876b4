// The gptq executable on bad input: a table of damaged files, unsupported models and impossible
// options. Every case runs the real binary (GPTQ_EXE) and asserts
//   * the documented exit code (README "Exit codes"),
//   * stderr is exactly one line, "error: ...", naming the culprit and saying what to do
//     (substrings),
//   * nothing is left behind: no OUT and no OUT.partial (unless the run had started: then only a
//     resumable OUT.partial), and an output directory that existed before is untouched.
// The damaged inputs are built here from the fixtures (copy, then truncate / patch the header /
// rewrite tensors with the writer).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "gptq/error.h"
#include "gptq/quantize.h"
#include "io/json_reader.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "support/fixtures.h"
#include "util/fp16.h"

namespace gptq {
namespace {

namespace fs = std::filesystem;
using ::gptq::testing::fixture_data;
using ::gptq::testing::fixture_model;
using ::gptq::testing::read_file;
using ::gptq::testing::scratch_dir;
using nlohmann::json;

struct RunResult {
  int code = -1;
  std::string out, err;
};

// Runs GPTQ_EXE with `args`, stdout/stderr captured through files (no pipe deadlock), with the
// variables of `env` set.
RunResult run_gptq(const std::vector<std::string>& args, const fs::path& scratch,
                   const std::map<std::string, std::string>& env = {}) {
  const fs::path out_file = scratch / "stdout.txt", err_file = scratch / "stderr.txt";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int o = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> argv;
    std::string exe = GPTQ_EXE;
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::unsetenv("GPTQ_TEST_KILL_AFTER_BLOCK");
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  RunResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out_file);
  r.err = read_file(err_file);
  return r;
}

// ---- building damaged inputs ----

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

// A copy of a fixture model (all regular files: config, weights, tokenizer).
fs::path copy_model(const std::string& fixture, const fs::path& dst) {
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(fixture_model(fixture)))
    if (e.is_regular_file()) fs::copy_file(e.path(), dst / e.path().filename());
  return dst;
}

json read_json(const fs::path& p) { return json::parse(read_file(p)); }
void write_json(const fs::path& p, const json& j) { write_text(p, j.dump(2)); }

// Rewrites dir/model.safetensors through the writer; `edit` may change each tensor's spec and
// bytes (and return false to drop the tensor).
void rewrite_tensors(const fs::path& dir, const std::function<bool(TensorSpec&, std::string&)>& edit) {
  std::vector<TensorSpec> specs;
  std::vector<std::string> data;
  {
    const TensorStore store = TensorStore::open(dir / "model.safetensors");
    for (const auto& n : store.names()) {
      const TensorInfo& t = store.get(n);
      TensorSpec s{n, t.dtype, t.shape};
      std::string bytes(reinterpret_cast<const char*>(t.data), t.nbytes);
      if (!edit(s, bytes)) continue;
      specs.push_back(s);
      data.push_back(std::move(bytes));
    }
  }
  fs::remove(dir / "model.safetensors");
  SafetensorsWriter w(dir, specs, {});
  for (size_t i = 0; i < specs.size(); ++i) w.write(specs[i].name, data[i].data(), data[i].size());
  w.finish();
}

// Sets element `index` of an F16 tensor to `value`.
void poke_f16(const fs::path& dir, const std::string& tensor, size_t index, float value) {
  rewrite_tensors(dir, [&](TensorSpec& s, std::string& bytes) {
    if (s.name == tensor) {
      uint16_t h;
      f32_to_f16(&value, &h, 1);
      std::memcpy(bytes.data() + 2 * index, &h, 2);
    }
    return true;
  });
}

// Replaces the first occurrence of `from` in the safetensors header (same length: offsets stay).
void patch_header(const fs::path& file, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  std::string bytes = read_file(file);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  const size_t at = bytes.substr(0, 8 + n).find(from);
  ASSERT_NE(at, std::string::npos) << from;
  bytes.replace(at, from.size(), to);
  write_text(file, bytes);
}

void truncate_file(const fs::path& p, uintmax_t size) { fs::resize_file(p, size); }

// A GPTQ checkpoint of tiny-llama (RTN, 4-bit g128), made once with the CLI and copied per case.
const fs::path& quantized_fixture() {
  static const fs::path dir = [] {
    const fs::path d = scratch_dir("gptq-fixture") / "q";
    const RunResult r = run_gptq({"quantize", fixture_model("tiny-llama").string(), d.string(), "--method", "rtn",
                                  "--quiet"},
                                 d.parent_path());
    EXPECT_EQ(r.code, 0) << r.err;
    return d;
  }();
  return dir;
}

fs::path copy_quantized(const fs::path& dst) {
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(quantized_fixture()))
    if (e.is_regular_file()) fs::copy_file(e.path(), dst / e.path().filename());
  return dst;
}

// ---- the table ----

// Where a case runs: the scratch directory, the paths it may use.
struct Env {
  fs::path dir;    // scratch
  fs::path model;  // the model argument (a damaged copy, usually)
  fs::path out;    // the output argument (dir / "out")
};

enum class Leftover {
  kNone,             // neither OUT nor OUT.partial may exist afterwards
  kPartialAllowed,   // the run had started: OUT.partial may stay (resumable), OUT may not
  kOutputUntouched,  // OUT existed before the run: same files, same bytes afterwards
  kPartialUntouched, // OUT.partial existed before the run: same files, same bytes afterwards
};

struct CliCase {
  std::string name;
  std::function<std::vector<std::string>(Env&)> setup;  // prepares the inputs, returns argv[1..]
  int code;
  std::vector<std::string> stderr_has;  // substrings of the one error line
  Leftover leftover = Leftover::kNone;
};

std::vector<std::string> quantize_args(const Env& e, std::vector<std::string> extra = {}) {
  std::vector<std::string> a{"quantize",  e.model.string(), e.out.string(), "--calib",
                             fixture_data("calib.txt").string(), "--nsamples", "4", "--seqlen", "64",
                             "--damp",    "0.01",           "--quiet"};
  // An extra option replaces the default one of the same name (e.g. --nsamples 0).
  for (size_t i = 0; i < extra.size(); ++i) {
    const auto it = std::find(a.begin(), a.end(), extra[i]);
    const bool takes_value = i + 1 < extra.size() && !extra[i + 1].starts_with("--");
    if (it != a.end() && takes_value && it + 1 != a.end() && !(it + 1)->starts_with("--")) {
      *(it + 1) = extra[++i];
    } else {
      a.push_back(extra[i]);
      if (takes_value) a.push_back(extra[++i]);
    }
  }
  return a;
}

// Copies tiny-llama to dir/model, applies `damage`, returns the quantize arguments.
std::function<std::vector<std::string>(Env&)> damaged(std::function<void(const fs::path&)> damage,
                                                      std::vector<std::string> extra = {}) {
  return [damage, extra](Env& e) {
    copy_model("tiny-llama", e.model);
    damage(e.model);
    return quantize_args(e, extra);
  };
}

std::function<std::vector<std::string>(Env&)> with_options(std::vector<std::string> extra) {
  return [extra](Env& e) {
    e.model = fixture_model("tiny-llama");
    return quantize_args(e, extra);
  };
}

// A GPTQ checkpoint copied to dir/model and damaged; `gptq eval` on it.
std::function<std::vector<std::string>(Env&)> eval_damaged(std::function<void(const fs::path&)> damage) {
  return [damage](Env& e) {
    copy_quantized(e.model);
    damage(e.model);
    return std::vector<std::string>{"eval", e.model.string(), "--text", fixture_data("eval.txt").string(),
                                    "--seqlen", "64", "--max-windows", "2"};
  };
}

void edit_config(const fs::path& dir, const std::function<void(json&)>& f) {
  json j = read_json(dir / "config.json");
  f(j);
  write_json(dir / "config.json", j);
}

const std::string kQ = "model.layers.0.self_attn.q_proj";

// `gptq eval tiny-llama --ids dir/ids.json` with that file holding `ids_json`, plus `extra`.
std::function<std::vector<std::string>(Env&)> eval_ids_file(std::string ids_json, std::vector<std::string> extra = {}) {
  return [ids_json, extra](Env& e) {
    write_text(e.dir / "ids.json", ids_json);
    std::vector<std::string> args{"eval", fixture_model("tiny-llama").string(), "--ids", (e.dir / "ids.json").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
}

// Nested JSON: `depth` arrays around a number (a JSON value refused by the depth limit).
std::string nested_json(int depth) { return std::string(depth, '[') + "1" + std::string(depth, ']'); }

// A copy of tiny-llama (float) damaged, then `gptq <command>` on it.
std::function<std::vector<std::string>(Env&)> float_damaged(std::function<void(const fs::path&)> damage,
                                                            std::string command = "eval") {
  return [damage, command](Env& e) {
    copy_model("tiny-llama", e.model);
    damage(e.model);
    if (command == "generate")
      return std::vector<std::string>{"generate", e.model.string(), "--prompt", "In the beginning",
                                      "--max-new-tokens", "4"};
    return std::vector<std::string>{"eval", e.model.string(), "--text", fixture_data("eval.txt").string(),
                                    "--seqlen", "64", "--max-windows", "1"};
  };
}

// `gptq eval tiny-llama` with `extra` options.
std::function<std::vector<std::string>(Env&)> eval_options(std::vector<std::string> extra) {
  return [extra](Env&) {
    std::vector<std::string> args{"eval", fixture_model("tiny-llama").string(), "--text",
                                  fixture_data("eval.txt").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
}

fs::path partial_of(const Env& e) { return e.out.string() + ".partial"; }

// A quantize run of a copy of tiny-llama killed after 2 of its 4 blocks, then `damage`; returns
// the arguments of its --resume.
std::function<std::vector<std::string>(Env&)> interrupted_run(std::function<void(Env&)> damage) {
  return [damage](Env& e) {
    copy_model("tiny-llama", e.model);
    const RunResult r = run_gptq(quantize_args(e), e.dir, {{"GPTQ_TEST_KILL_AFTER_BLOCK", "2"}});
    EXPECT_EQ(r.code, 137) << r.err;
    damage(e);
    return quantize_args(e, {"--resume"});
  };
}

// Overwrites bytes of a file at `offset`.
void poke_bytes(const fs::path& p, uint64_t offset, const std::string& bytes) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::string le64(int64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }

void edit_state(const Env& e, const std::function<void(json&)>& f) {
  const fs::path p = partial_of(e) / ".gptq-run" / "state.json";
  json j = read_json(p);
  f(j);
  write_json(p, j);
}

// acts-2.bin of an interrupted run: header (magic, hidden, n, n sizes) then the floats.
const char* kActs = "acts-2.bin";

std::vector<CliCase> cases() {
  return {
      // ---- damaged safetensors ----
      {"TruncatedSafetensors", damaged([](const fs::path& m) { truncate_file(m / "model.safetensors", 5'000'000); }),
       3, {"model.safetensors", "truncated file", "re-download"}},
      {"SafetensorsShorterThanLength", damaged([](const fs::path& m) { truncate_file(m / "model.safetensors", 5); }),
       3, {"model.safetensors", "shorter than the 8-byte header length", "re-download"}},
      {"HeaderLengthFlipped", damaged([](const fs::path& m) {
         std::string b = read_file(m / "model.safetensors");
         b[6] = '\x7f';
         write_text(m / "model.safetensors", b);
       }),
       3, {"model.safetensors", "header length", "re-download"}},
      {"HeaderNotJson", damaged([](const fs::path& m) { patch_header(m / "model.safetensors", "{\"", "#\""); }), 3,
       {"model.safetensors", "not valid JSON", "re-download"}},
      {"UnknownDtype", damaged([](const fs::path& m) { patch_header(m / "model.safetensors", "\"F16\"", "\"F17\""); }),
       3, {"model.safetensors", "unknown dtype 'F17'"}},
      {"ShapeDisagreesWithOffsets",
       damaged([](const fs::path& m) { patch_header(m / "model.safetensors", "[4096,256]", "[4096,255]"); }), 3,
       {"model.safetensors", "needs", "bytes", "re-download"}},
      {"IntegerWeight", damaged([](const fs::path& m) {
         rewrite_tensors(m, [](TensorSpec& s, std::string&) {
           if (s.name == kQ + ".weight") s.dtype = DType::I16;
           return true;
         });
       }),
       3, {kQ + ".weight", "I16"}},
      {"WrongWeightShape", damaged([](const fs::path& m) {
         rewrite_tensors(m, [](TensorSpec& s, std::string&) {
           if (s.name == "model.layers.1.self_attn.k_proj.weight") s.shape = {256, 128};
           return true;
         });
       }),
       3, {"model.layers.1.self_attn.k_proj.weight", "[256, 128]", "config.json implies [128, 256]"}},
      {"MissingTensor", damaged([](const fs::path& m) {
         rewrite_tensors(m, [](TensorSpec& s, std::string&) { return s.name != "model.layers.2.mlp.up_proj.weight"; });
       }),
       3, {"model.layers.2.mlp.up_proj.weight", "missing from the checkpoint", "does not match config.json"}},
      {"NanWeight", damaged([](const fs::path& m) { poke_f16(m, "model.layers.1.mlp.up_proj.weight", 777, NAN); }), 3,
       {"model.layers.1.mlp.up_proj", "non-finite", "damaged"}, Leftover::kPartialAllowed},
      {"InfInNorm",
       damaged([](const fs::path& m) { poke_f16(m, "model.layers.2.post_attention_layernorm.weight", 3, INFINITY); }),
       3, {"model.layers.2.post_attention_layernorm.weight", "non-finite", "damaged"}, Leftover::kPartialAllowed},
      {"NanInEmbedding", damaged([](const fs::path& m) { poke_f16(m, "model.embed_tokens.weight", 256 * 100, NAN); }),
       3, {"model.embed_tokens.weight", "non-finite"}, Leftover::kPartialAllowed},
      // ---- config.json ----
      {"ConfigNotJson", damaged([](const fs::path& m) { truncate_file(m / "config.json", 100); }), 3,
       {"config.json", "not valid JSON", "download it again"}},
      {"ConfigMissing", damaged([](const fs::path& m) { fs::remove(m / "config.json"); }), 4,
       {"config.json", "not found"}},
      {"ConfigNotObject", damaged([](const fs::path& m) { write_text(m / "config.json", "[1, 2]"); }), 3,
       {"config.json", "JSON object"}},
      {"ConfigMissingKey", damaged([](const fs::path& m) { edit_config(m, [](json& j) { j.erase("hidden_size"); }); }),
       3, {"config.json", "hidden_size", "missing"}},
      {"ConfigWrongType",
       damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["num_hidden_layers"] = "four"; }); }), 3,
       {"config.json", "num_hidden_layers", "integer"}},
      {"ConfigFewerLayers",
       damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["num_hidden_layers"] = 6; }); }), 3,
       {"config.json", "num_hidden_layers is 6", "4 blocks", "use the config.json of this checkpoint"}},
      {"UnsupportedArchitecture",
       damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["model_type"] = "bert"; }); }), 3,
       {"model_type 'bert'", "not supported", "llama"}},
      {"AlreadyQuantized", [](Env& e) {
         copy_quantized(e.model);
         return quantize_args(e);
       },
       3, {"already a quantized checkpoint", "quantize the float model"}},
      // ---- tokenizer and calibration data ----
      {"MissingTokenizer", damaged([](const fs::path& m) { fs::remove(m / "tokenizer.json"); }), 4,
       {"tokenizer.json", "tokenizer.model", "copy the tokenizer files"}},
      {"DamagedTokenizer", damaged([](const fs::path& m) { truncate_file(m / "tokenizer.json", 1000); }), 3,
       {"tokenizer.json"}},
      {"CalibMissing", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         auto a = quantize_args(e);
         a[4] = (e.dir / "nope.txt").string();
         return a;
       },
       4, {"nope.txt", "not found"}},
      {"CalibTooShort", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         write_text(e.dir / "short.txt", "In the beginning.");
         auto a = quantize_args(e);
         a[4] = (e.dir / "short.txt").string();
         return a;
       },
       3, {"short.txt", "tokens", "give more text"}},
      {"CalibIdsOutOfVocab", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         write_text(e.dir / "ids.json", "[[1, 2, 3, 99999]]");
         auto a = quantize_args(e);
         a[4] = (e.dir / "ids.json").string();
         return a;
       },
       3, {"ids.json", "99999", "vocabulary"}},
      {"CalibOptionMissing", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         return std::vector<std::string>{"quantize", e.model.string(), e.out.string()};
       },
       2, {"--calib FILE is required"}},
      // ---- impossible options ----
      {"Bits5", with_options({"--bits", "5"}), 2, {"--bits 5", "2, 3, 4, 8"}},
      {"GroupSize0", with_options({"--group-size", "0"}), 2, {"--group-size 0", "-1"}},
      {"GroupSizeMinus2", with_options({"--group-size", "-2"}), 2, {"--group-size -2", "positive"}},
      {"Nsamples0", with_options({"--nsamples", "0"}), 2, {"--nsamples 0", "at least 1"}},
      {"Damp0", with_options({"--damp", "0"}), 2, {"--damp 0", "between 0 and 1"}},
      {"Damp1_5", with_options({"--damp", "1.5"}), 2, {"--damp 1.5", "between 0 and 1"}},
      {"SeqlenBeyondMaxPositions", with_options({"--seqlen", "100000"}), 2, {"--seqlen 100000", "512"}},
      {"DampAutoIncrementNegative", with_options({"--damp-auto-increment", "-0.1"}), 2, {"--damp-auto-increment"}},
      {"SymAndAsym", with_options({"--sym", "--asym"}), 2, {"--sym and --asym"}},
      {"BadMaxShardSize", with_options({"--max-shard-size", "lots"}), 2, {"--max-shard-size 'lots'", "5GB"}},
      {"UnknownFormat", with_options({"--format", "marlin"}), 2, {"--format", "marlin", "--help"}},
      {"UnknownOption", with_options({"--bitz", "4"}), 2, {"--bitz", "--help"}},
      {"BitsNotANumber", with_options({"--bits", "four"}), 2, {"--bits", "four"}},
      {"ModulesInBlockUnknown", with_options({"--modules-in-block", "self_attn.nonexistent"}), 2,
       {"--modules-in-block", "self_attn.nonexistent", "matches no"}},
      {"ModulesInBlockBadJson", with_options({"--modules-in-block", "[[\"self_attn.q_proj\","}), 2,
       {"--modules-in-block", "JSON list of lists"}},
      {"ActGroupAwareWithDescAct", with_options({"--act-group-aware", "--desc-act"}), 2,
       {"--act-group-aware and --desc-act"}},
      // ---- paths ----
      {"ModelMissing", [](Env& e) {
         e.model = e.dir / "does-not-exist";
         return quantize_args(e);
       },
       4, {"does-not-exist", "not found"}},
      {"OutputInsideInput", [](Env& e) {
         copy_model("tiny-llama", e.model);
         e.out = e.model / "out";
         return quantize_args(e);
       },
       2, {"inside the model directory", "outside the input"}},
      {"OutputExists", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         fs::create_directories(e.out / "sub");
         write_text(e.out / "keep.txt", "precious");
         write_text(e.out / "sub" / "model.safetensors", "old bytes");
         return quantize_args(e);
       },
       2, {"already exists", "choose a new path or delete it"}, Leftover::kOutputUntouched},
      {"ResumeWithoutRun", with_options({"--resume"}), 2, {"--resume", "no interrupted run", "without --resume"}},
      {"PartialWithoutResume", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         fs::create_directories(e.out.string() + ".partial/.gptq-run");
         write_text(e.out.string() + ".partial/.gptq-run/state.json", "{}");
         write_text(e.out.string() + ".partial/.gptq-run/owner", "1\n");
         return quantize_args(e);
       },
       2, {"out.partial", "add --resume"}, Leftover::kPartialUntouched},
      // OUT.partial that this program did not make is never used or deleted.
      {"ResumeForeignPartial", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         fs::create_directories(partial_of(e) / "sub");
         write_text(partial_of(e) / "sub" / "mine.txt", "precious");
         return quantize_args(e, {"--resume"});
       },
       2, {"out.partial", "not made by gptq quantize", "refusing to use or delete it"}, Leftover::kPartialUntouched},
      {"ResumePartialIsAFile", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         write_text(partial_of(e), "precious");
         return quantize_args(e, {"--resume"});
       },
       2, {"out.partial", "not a directory made by gptq quantize", "file"}, Leftover::kPartialUntouched},
      {"PartialInUse", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         fs::create_directories(partial_of(e) / ".gptq-run");
         write_text(partial_of(e) / ".gptq-run" / "owner", "4242\n");
         const int fd = ::open((partial_of(e) / ".gptq-run" / "owner").c_str(), O_RDONLY | O_CLOEXEC);
         EXPECT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);  // held by this process (fd left open)
         return quantize_args(e, {"--resume"});
       },
       2, {"out.partial", "in use by another run (pid 4242)"}, Leftover::kPartialUntouched},
      {"OutputDanglingSymlink", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         fs::create_symlink(e.dir / "nowhere", e.out);
         return quantize_args(e);
       },
       2, {"out", "symbolic link", "nowhere"}},
      // A resume trusts nothing in OUT.partial it cannot check.
      {"ResumeShardTruncated", interrupted_run([](Env& e) {
         truncate_file(partial_of(e) / "model.safetensors.partial", 1'000'000);
       }),
       3, {"out.partial/model.safetensors.partial", "truncated", "1000000 bytes", "without resuming"},
       Leftover::kPartialAllowed},
      {"ResumeShardModified", interrupted_run([](Env& e) {
         poke_bytes(partial_of(e) / "model.safetensors.partial", 100'000, "\x7f\x7f");
       }),
       3, {"out.partial/model.safetensors.partial", "lm_head.weight", "not what the interrupted run wrote"},
       Leftover::kPartialAllowed},
      {"ResumeWeightsChanged", interrupted_run([](Env& e) {
         poke_bytes(e.model / "model.safetensors", 5'000'000, "\x01\x02");
       }),
       2, {"model/model.safetensors", "changed since the interrupted run", "mix two models"},
       Leftover::kPartialAllowed},
      {"ResumeStateBlocksPastModel", interrupted_run([](Env& e) {
         edit_state(e, [](json& j) { j["blocks_done"] = 9; });
       }),
       3, {"state.json", "blocks_done is 9", "the model has 4 blocks"}, Leftover::kPartialAllowed},
      {"ResumeStateLayersMissing", interrupted_run([](Env& e) {
         edit_state(e, [](json& j) { j["blocks_done"] = 3; });
       }),
       3, {"state.json", "14 layer records", "21 quantized layers"}, Leftover::kPartialAllowed},
      {"ResumeStateChecksumMissing", interrupted_run([](Env& e) {
         edit_state(e, [](json& j) { j["written"].erase("lm_head.weight"); });
       }),
       3, {"state.json", "no checksum for tensor 'lm_head.weight'"}, Leftover::kPartialAllowed},
      {"ResumeActsFewerSequences", interrupted_run([](Env& e) {
         poke_bytes(partial_of(e) / ".gptq-run" / kActs, 16, le64(3));
       }),
       3, {kActs, "holds 3 calibration sequences, the run has 4"}, Leftover::kPartialAllowed},
      {"ResumeActsOtherWidth", interrupted_run([](Env& e) {
         poke_bytes(partial_of(e) / ".gptq-run" / kActs, 8, le64(128));
       }),
       3, {kActs, "128 wide", "hidden size is 256"}, Leftover::kPartialAllowed},
      {"ResumeActsShortSequence", interrupted_run([](Env& e) {
         // Sequence 0 one token (256 floats) shorter, the file consistent with its header.
         const fs::path p = partial_of(e) / ".gptq-run" / kActs;
         std::string bytes = read_file(p);
         const size_t data = 24 + 8 * 4;
         bytes.erase(data, 256 * 4);
         int64_t first = 0;
         std::memcpy(&first, bytes.data() + 24, 8);
         const std::string patched = le64(first - 256);
         bytes.replace(24, 8, patched);
         write_text(p, bytes);
       }),
       3, {kActs, "calibration sequence 0 has 63 tokens", "the run has 64"}, Leftover::kPartialAllowed},
      // --report never lands in the model or the output.
      {"ReportInsideModel", [](Env& e) {
         copy_model("tiny-llama", e.model);
         return quantize_args(e, {"--report", (e.model / "config.json").string()});
       },
       2, {"--report", "config.json", "inside the model directory"}},
      {"ReportThroughLinkIntoModel", [](Env& e) {
         copy_model("tiny-llama", e.model);
         fs::create_symlink(e.model / "config.json", e.dir / "report.json");
         return quantize_args(e, {"--report", (e.dir / "report.json").string()});
       },
       2, {"--report", "inside the model directory", "through a link to"}},
      {"ReportInsideOutput", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         return quantize_args(e, {"--report", partial_of(e).string() + "/report.json"});
       },
       2, {"--report", "inside the output's working directory"}},
      {"OutputParentIsAFile", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         write_text(e.dir / "file", "x");
         e.out = e.dir / "file" / "out";
         return quantize_args(e);
       },
       4, {"file/out", "writable"}},
      // ---- GPTQ checkpoints (eval, loader) ----
      {"EvalNonGptqMethod", eval_damaged([](const fs::path& m) {
         edit_config(m, [](json& j) { j["quantization_config"]["quant_method"] = "awq"; });
       }),
       3, {"quant_method 'awq'", "only GPTQ"}},
      {"EvalMissingQzeros", eval_damaged([](const fs::path& m) {
         rewrite_tensors(m, [](TensorSpec& s, std::string&) { return s.name != kQ + ".qzeros"; });
       }),
       3, {kQ + ".qzeros is missing", "qweight, qzeros, scales and g_idx"}},
      {"EvalQweightShape", eval_damaged([](const fs::path& m) {
         rewrite_tensors(m, [](TensorSpec& s, std::string&) {
           if (s.name == kQ + ".qweight") s.shape = {256, 32};
           return true;
         });
       }),
       3, {kQ + ".qweight", "shape [256, 32]"}},
      {"EvalGidxOutOfRange", eval_damaged([](const fs::path& m) {
         rewrite_tensors(m, [](TensorSpec& s, std::string& b) {
           if (s.name == kQ + ".g_idx") {
             const int32_t v = 7;
             std::memcpy(b.data() + 4 * 10, &v, 4);
           }
           return true;
         });
       }),
       3, {kQ + ".g_idx[10] = 7", "outside"}},
      {"EvalNanScales", eval_damaged([](const fs::path& m) { poke_f16(m, kQ + ".scales", 5, NAN); }), 3,
       {kQ + ".scales", "non-finite"}},
      {"EvalBits5InConfig", eval_damaged([](const fs::path& m) {
         edit_config(m, [](json& j) { j["quantization_config"]["bits"] = 5; });
       }),
       3, {"bits 5", "2, 3, 4 or 8"}},
      {"EvalTextMissing", [](Env& e) {
         return std::vector<std::string>{"eval", fixture_model("tiny-llama").string(), "--text",
                                         (e.dir / "missing.txt").string()};
       },
       4, {"missing.txt"}},
      {"EvalDequantizedAndInt8", [](Env&) {
         return std::vector<std::string>{"eval", fixture_model("tiny-llama").string(), "--text",
                                         fixture_data("eval.txt").string(), "--dequantized",
                                         "--int8-activations"};
       },
       2, {"--dequantized", "--int8-activations", "exclude each other"}},
      {"EvalSeqlen1", [](Env&) {
         return std::vector<std::string>{"eval", fixture_model("tiny-llama").string(), "--text",
                                         fixture_data("eval.txt").string(), "--seqlen", "1"};
       },
       2, {"--seqlen 1", "at least 2"}},
      // ---- eval --ids ----
      {"EvalIdsNotJson", eval_ids_file("[1, 2,"), 3, {"ids.json", "not valid JSON"}},
      {"EvalIdsOutsideVocabulary", eval_ids_file("[1, 2, 4096]"), 3, {"ids.json", "4096", "vocabulary [0, 4096)"}},
      {"EvalIdsNotIntegers", eval_ids_file("{\"input_ids\": [1, 2.5]}"), 3, {"ids.json", "non-integer", "2.5"}},
      {"EvalIdsListOfLists", eval_ids_file("[[1, 2], [3]]"), 3, {"ids.json", "one list of token ids"}},
      {"EvalIdsRepeatedKey", eval_ids_file("{\"input_ids\": [1], \"input_ids\": [2]}"), 3,
       {"ids.json", "'input_ids' appears twice"}},
      {"EvalIdsTooDeep", eval_ids_file(std::string(100, '[') + std::string(100, ']')), 3,
       {"ids.json", "not valid JSON", "nested deeper"}},
      {"EvalIdsShorterThanWindow", eval_ids_file("[1, 2, 3]"), 3, {"--ids", "3 tokens", "--seqlen 256"}},
      {"EvalIdsMissing", [](Env& e) {
         return std::vector<std::string>{"eval", fixture_model("tiny-llama").string(), "--ids",
                                         (e.dir / "missing.json").string()};
       },
       4, {"missing.json", "not found"}},
      {"EvalIdsAndText", eval_ids_file("[1, 2, 3]", {"--text", fixture_data("eval.txt").string()}), 2,
       {"--ids", "--text", "gptq eval --help"}},
      {"EvalNoData", [](Env&) { return std::vector<std::string>{"eval", fixture_model("tiny-llama").string()}; }, 2,
       {"--text FILE", "--ids FILE.json"}},
      // ---- issue 13: every JSON input bounded (depth, repeated keys), the file named ----
      {"ConfigTooDeep", damaged([](const fs::path& m) {
         std::string t = read_file(m / "config.json");
         t.insert(t.find('{') + 1, "\"extra\": " + nested_json(20000) + ", ");
         write_text(m / "config.json", t);
       }),
       3, {"config.json", "not valid JSON", "nested deeper than 64"}},
      {"ConfigRepeatedKey", damaged([](const fs::path& m) {
         std::string t = read_file(m / "config.json");
         t.insert(t.find('{') + 1, "\"vocab_size\": 12, ");
         write_text(m / "config.json", t);
       }),
       3, {"config.json", "'vocab_size' appears twice"}},
      {"TokenizerTooDeep", damaged([](const fs::path& m) {
         std::string deep;
         for (int i = 0; i < 20000; ++i) deep += "{\"type\":\"Sequence\",\"pretokenizers\":[";
         deep += "{\"type\":\"Whitespace\"}";
         for (int i = 0; i < 20000; ++i) deep += "]}";
         std::string t = read_file(m / "tokenizer.json");
         const size_t at = t.find("\"pre_tokenizer\"");
         ASSERT_NE(at, std::string::npos);
         t.insert(at, "\"deep_pre_tokenizer\": " + deep + ", ");
         write_text(m / "tokenizer.json", t);
       }),
       3, {"tokenizer.json", "nested deeper than 64"}},
      {"TokenizerConfigTooDeep", damaged([](const fs::path& m) {
         write_text(m / "tokenizer_config.json", "{\"x\": " + nested_json(5000) + "}");
       }),
       3, {"tokenizer_config.json", "nested deeper than 64"}},
      {"CalibJsonlLineTooDeep", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         write_text(e.dir / "c.jsonl", "{\"text\": \"In the beginning\"}\n{\"text\": " + nested_json(5000) + "}\n");
         auto a = quantize_args(e);
         a[4] = (e.dir / "c.jsonl").string();
         return a;
       },
       3, {"c.jsonl line 2", "nested deeper than 64"}},
      {"DynamicTooDeep", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         write_text(e.dir / "dyn.json", "{\"-:x\": " + nested_json(5000) + "}");
         return quantize_args(e, {"--dynamic", (e.dir / "dyn.json").string()});
       },
       3, {"dyn.json", "nested deeper than 64"}},
      {"GenerationConfigTooDeep", float_damaged([](const fs::path& m) {
         write_text(m / "generation_config.json", "{\"eos_token_id\": " + nested_json(5000) + "}");
       }, "generate"),
       3, {"generation_config.json", "nested deeper than 64"}},
      // ---- issue 13: config.json against limits and the checkpoint ----
      {"ConfigLayers0", damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["num_hidden_layers"] = 0; }); }),
       3, {"config.json", "num_hidden_layers is 0", "1..4096"}},
      {"EvalConfigLayersNegative",
       float_damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["num_hidden_layers"] = -3; }); }), 3,
       {"config.json", "num_hidden_layers is -3"}},
      {"EvalConfigLayersHuge",
       float_damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["num_hidden_layers"] = 1'000'000'000'000; }); }),
       3, {"config.json", "num_hidden_layers is 1000000000000"}},
      {"EvalConfigHiddenHuge",
       float_damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["hidden_size"] = int64_t{1} << 40; }); }),
       3, {"config.json", "hidden size is 1099511627776"}},
      {"EvalConfigHeadDimOverflow",
       float_damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["head_dim"] = int64_t{1} << 62; }); }),
       3, {"config.json", "head_dim is 4611686018427387904"}},
      {"EvalConfigVocabHuge",
       float_damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["vocab_size"] = int64_t{1} << 50; }); }),
       3, {"config.json", "vocab_size is"}},
      {"GenerateConfigMaxPositionsHuge", float_damaged([](const fs::path& m) {
         edit_config(m, [](json& j) { j["max_position_embeddings"] = int64_t{1} << 60; });
       }, "generate"),
       3, {"config.json", "max_position_embeddings is 1152921504606846976"}},
      {"EvalConfigIntermediateNegative",
       float_damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["intermediate_size"] = -768; }); }), 3,
       {"config.json", "intermediate_size is -768"}},
      {"EvalRopeThetaNegative",
       float_damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["rope_theta"] = -10000.0; }); }), 3,
       {"config.json", "rope_theta is -10000", "> 0"}},
      {"EvalNormEpsZero",
       float_damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["rms_norm_eps"] = 0.0; }); }), 3,
       {"config.json", "norm epsilon", "is 0"}},
      {"EvalMoreBlocksThanConfig", eval_damaged([](const fs::path& m) {
         edit_config(m, [](json& j) { j["num_hidden_layers"] = 3; });
       }),
       3, {"config.json", "num_hidden_layers is 3", "has 4 blocks"}},
      {"GenerateMoreBlocksThanConfig",
       float_damaged([](const fs::path& m) { edit_config(m, [](json& j) { j["num_hidden_layers"] = 2; }); }, "generate"),
       3, {"config.json", "num_hidden_layers is 2", "has 4 blocks"}},
      {"EvalMissingLmHead", float_damaged([](const fs::path& m) {
         rewrite_tensors(m, [](TensorSpec& s, std::string&) { return s.name != "lm_head.weight"; });
       }),
       3, {"lm_head.weight is missing", "tie_word_embeddings is false"}},
      {"EvalQuantizedMissingLmHead", eval_damaged([](const fs::path& m) {
         rewrite_tensors(m, [](TensorSpec& s, std::string&) { return s.name != "lm_head.weight"; });
       }),
       3, {"lm_head.weight is missing"}},
      // ---- issue 13: numbers ----
      {"EvalNonFiniteLogits", float_damaged([](const fs::path& m) {
         rewrite_tensors(m, [](TensorSpec& s, std::string& b) {
           if (s.name == "model.norm.weight") {  // finite F32 weights whose products overflow
             s.dtype = DType::F32;
             std::vector<float> big(static_cast<size_t>(s.shape[0]), 3e38f);
             b.assign(reinterpret_cast<const char*>(big.data()), big.size() * sizeof(float));
           }
           return true;
         });
       }),
       5, {"non-finite logit"}},
      {"SeqlenNegative", with_options({"--seqlen", "-5"}), 2, {"--seqlen -5", "at least 1"}},
      {"Seqlen0", with_options({"--seqlen", "0"}), 2, {"--seqlen 0", "at least 1"}},
      {"EvalSeqlenBeyondPositions", eval_options({"--seqlen", "1024"}), 2,
       {"--seqlen 1024", "512 positions", "max_position_embeddings"}},
      {"MaxShardSizeExponent", with_options({"--max-shard-size", "1e30"}), 2, {"--max-shard-size '1e30'", "unit"}},
      {"MaxShardSizeNan", with_options({"--max-shard-size", "nan"}), 2, {"--max-shard-size 'nan'", "not a number"}},
      {"MaxShardSizeInf", with_options({"--max-shard-size", "inf"}), 2, {"--max-shard-size 'inf'", "not a number"}},
      {"MaxShardSizeHalfByte", with_options({"--max-shard-size", "0.5B"}), 2,
       {"--max-shard-size '0.5B'", "whole number of bytes"}},
      {"MaxShardSizeTooLarge", with_options({"--max-shard-size", "99999999999TB"}), 2,
       {"--max-shard-size '99999999999TB'", "2^64"}},
      {"MaxShardSizeNegative", with_options({"--max-shard-size", "-1GB"}), 2, {"--max-shard-size '-1GB'"}},
      {"NsamplesExponent", with_options({"--nsamples", "1e3"}), 2, {"--nsamples", "'1e3' is not a whole number"}},
      {"NsamplesHex", with_options({"--nsamples", "0x10"}), 2, {"--nsamples", "'0x10' is not a whole number"}},
      {"NsamplesBeyond64Bits", with_options({"--nsamples", "99999999999999999999"}), 2,
       {"--nsamples", "does not fit in 64 bits"}},
      {"EvalMaxWindowsBeyond64Bits", eval_options({"--max-windows", "18446744073709551617"}), 2,
       {"--max-windows", "does not fit in 64 bits"}},
      {"GenerateMaxNewTokensHex", [](Env&) {
         return std::vector<std::string>{"generate", fixture_model("tiny-llama").string(), "--prompt", "In",
                                         "--max-new-tokens", "0x10"};
       },
       2, {"--max-new-tokens", "not a whole number"}},
      {"InspectGroupSizeSpace", [](Env&) {
         return std::vector<std::string>{"inspect", fixture_model("tiny-llama").string(), "--group-size", " 128"};
       },
       2, {"--group-size", "not a whole number"}},
      // ---- issue 13: calibration bounded by the model ----
      {"CalibSampleBeyondPositions", [](Env& e) {
         e.model = fixture_model("tiny-llama");
         std::string ids = "[[1, 2, 3], [";
         for (int i = 0; i < 20000; ++i) ids += (i ? ", " : "") + std::to_string(5 + i % 4000);
         write_text(e.dir / "ids.json", ids + "]]");
         auto a = quantize_args(e);
         a[4] = (e.dir / "ids.json").string();
         return a;
       },
       3, {"ids.json", "sample 1 has 20000 tokens", "512 positions"}},
      {"CalibNsamplesBeyondMemory", with_options({"--nsamples", "1000000000000", "--seqlen", "512"}), 2,
       {"--nsamples 1000000000000 x --seqlen 512", "GB of hidden states", "lower --nsamples"}},
      {"InspectMissingModel", [](Env& e) {
         return std::vector<std::string>{"inspect", (e.dir / "nowhere").string()};
       },
       4, {"nowhere", "not found"}},
      {"InspectBits5", [](Env&) {
         return std::vector<std::string>{"inspect", fixture_model("tiny-llama").string(), "--bits", "5"};
       },
       2, {"--bits 5"}},
  };
}

// Every file under `dir` (relative path -> bytes).
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  if (!fs::is_directory(dir)) return {{"", read_file(dir)}};
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out[fs::relative(e.path(), dir).string() + (e.is_directory() ? "/" : "")] =
        e.is_regular_file() ? read_file(e.path()) : "";
  return out;
}

class BadInput : public ::testing::TestWithParam<CliCase> {};

TEST_P(BadInput, OneClearErrorAndNothingLeftBehind) {
  const CliCase& c = GetParam();
  Env e;
  e.dir = scratch_dir("cli");
  e.model = e.dir / "model";
  e.out = e.dir / "out";
  const std::vector<std::string> args = c.setup(e);
  if (::testing::Test::HasFatalFailure()) return;
  const fs::path partial = e.out.string() + ".partial";
  const auto out_before = snapshot(e.out), partial_before = snapshot(partial);
  const auto model_before = fs::is_directory(e.model) && e.model.string().starts_with(e.dir.string())
                                ? snapshot(e.model)
                                : std::map<std::string, std::string>{};

  const RunResult r = run_gptq(args, e.dir);
  std::string cmd;
  for (const auto& a : args) cmd += " " + a;
  SCOPED_TRACE("gptq" + cmd + "\nstderr: " + r.err);

  EXPECT_EQ(r.code, c.code);
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr must be exactly one line";
  EXPECT_TRUE(r.err.starts_with("error: "));
  for (const auto& s : c.stderr_has) EXPECT_NE(r.err.find(s), std::string::npos) << "missing: " << s;
  EXPECT_EQ(r.err.find("internal"), std::string::npos);

  switch (c.leftover) {
    case Leftover::kNone:
      EXPECT_FALSE(fs::exists(e.out));
      EXPECT_FALSE(fs::exists(partial));
      break;
    case Leftover::kPartialAllowed:
      EXPECT_FALSE(fs::exists(e.out));
      if (fs::exists(partial)) {
        EXPECT_TRUE(fs::exists(partial / ".gptq-run" / "state.json"));
      }
      break;
    case Leftover::kOutputUntouched:
      EXPECT_EQ(snapshot(e.out), out_before);
      EXPECT_FALSE(fs::exists(partial));
      break;
    case Leftover::kPartialUntouched:
      EXPECT_EQ(snapshot(partial), partial_before);
      EXPECT_FALSE(fs::exists(e.out));
      break;
  }
  // The input model is never modified (and no output appears inside it).
  if (!model_before.empty()) {
    EXPECT_EQ(snapshot(e.model), model_before);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BadInput, ::testing::ValuesIn(cases()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST(BadInputTable, HasAtLeastThirtyCases) { EXPECT_GE(cases().size(), 30u); }

// Acceptance of `eval --ids`: the fixture's reference ids of eval.txt give the perplexity of --text.
TEST(Cli, EvalIdsSamePerplexityAsText) {
  const fs::path dir = scratch_dir("ids");
  const std::string model = fixture_model("tiny-llama").string();
  const std::vector<std::string> common{"--seqlen", "256", "--max-windows", "6", "--json"};
  auto eval = [&](const std::string& flag, const fs::path& file) {
    std::vector<std::string> args{"eval", model, flag, file.string()};
    args.insert(args.end(), common.begin(), common.end());
    const RunResult r = run_gptq(args, dir);
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out);
  };
  const json text = eval("--text", fixture_data("eval.txt"));
  const json ids = eval("--ids", fixture_model("tiny-llama") / "reference" / "eval_ids.json");
  EXPECT_EQ(ids.at("tokens"), text.at("tokens"));
  EXPECT_EQ(ids.at("windows"), 6);
  EXPECT_EQ(ids.at("ppl").get<double>(), text.at("ppl").get<double>());  // same ids, same windows: same bits
  // {"input_ids": [...]} (a tokenizer's output) reads the same.
  const json list = json::parse(read_file(fixture_model("tiny-llama") / "reference" / "eval_ids.json"));
  write_text(dir / "tok.json", json{{"input_ids", list}, {"attention_mask", json::array()}}.dump());
  EXPECT_EQ(eval("--ids", dir / "tok.json").at("ppl").get<double>(), text.at("ppl").get<double>());
}

// Asymmetric output defaults to v1; its zero points of 0 are counted per layer, in the layer lines,
// the final summary and the report.
TEST(Cli, AsymDefaultsToV1AndCountsZeroPointsOf0) {
  const fs::path dir = scratch_dir("asym");
  const RunResult r = run_gptq({"quantize", fixture_model("tiny-llama").string(), (dir / "q").string(), "--method",
                                "rtn", "--asym", "--bits", "2", "--group-size", "16", "--report",
                                (dir / "report.json").string()},
                               dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_json(dir / "q" / "config.json").at("quantization_config").at("checkpoint_format"), "gptq");
  const json report = read_json(dir / "report.json");
  const int64_t total = report.at("totals").at("zero_point_0_groups").get<int64_t>();
  EXPECT_GT(total, 0);
  EXPECT_NE(r.err.find("zero-point-0 groups"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(fmt::format("warning: {} zero points of 0", total)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--format gptq_v2"), std::string::npos);
  // gptq_v2 says which loaders misread it.
  const RunResult v2 = run_gptq({"quantize", fixture_model("tiny-llama").string(), (dir / "q2").string(), "--method",
                                 "rtn", "--asym", "--format", "gptq_v2", "--quiet"},
                                dir);
  ASSERT_EQ(v2.code, 0) << v2.err;
  EXPECT_NE(v2.err.find("read the zeros as v1"), std::string::npos) << v2.err;
  EXPECT_NE(v2.err.find("auto-gptq"), std::string::npos);
}

// Shapes a loader cannot take are a line of `gptq inspect` (and a warning of `gptq quantize`).
TEST(Cli, InspectNamesLoaderShapeIssues) {
  const fs::path dir = scratch_dir("inspect");
  const std::string model = fixture_model("tiny-llama").string();
  const RunResult ok = run_gptq({"inspect", model}, dir);
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("loaders     no shape issue"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("model.layers.0.self_attn.q_proj              Linear     256    256 zero "), std::string::npos)
      << ok.out;
  const RunResult g = run_gptq({"inspect", model, "--group-size", "512"}, dir);
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.out.find("loaders     mlp.down_proj (256x768, 4 blocks): in_features 768 is not a multiple of "
                       "group_size 512: auto-gptq"),
            std::string::npos)
      << g.out;
  EXPECT_NE(g.out.find("--group-size 256 avoids it"), std::string::npos);
  const RunResult q = run_gptq({"quantize", model, (dir / "q").string(), "--method", "rtn", "--group-size", "512",
                                "--quiet"},
                               dir);
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_NE(q.err.find("warning: mlp.down_proj (256x768, 4 blocks): in_features 768"), std::string::npos) << q.err;
  const RunResult nb = run_gptq({"inspect", model, "--no-zero-bias"}, dir);
  EXPECT_EQ(nb.out.find(" zero "), std::string::npos);
}

// Paths that are not UTF-8 (Latin-1 file names) go into --json output and reports with U+FFFD
// instead of an "internal error" from the JSON library.
TEST(Cli, NonUtf8PathsInJsonOutput) {
  const fs::path dir = scratch_dir("latin1");
  const fs::path model = dir / "mod\xe8le", text = dir / "caf\xe9.txt";
  copy_model("tiny-llama", model);
  fs::copy_file(fixture_data("eval.txt"), text);
  const RunResult r = run_gptq({"eval", model.string(), "--text", text.string(), "--seqlen", "64", "--max-windows",
                                "1", "--json"},
                               dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const json out = json::parse(r.out);
  EXPECT_NE(out.at("text").get<std::string>().find("caf\xef\xbf\xbd.txt"), std::string::npos) << r.out;
  EXPECT_NE(out.at("model").get<std::string>().find("mod\xef\xbf\xbdle"), std::string::npos) << r.out;

  const RunResult q = run_gptq({"quantize", model.string(), (dir / "q").string(), "--method", "rtn", "--quiet",
                                "--report", (dir / "r\xe9port.json").string()},
                               dir);
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_TRUE(read_json(dir / "r\xe9port.json").is_object());
}

// A GPTQ checkpoint with a quantized output head (--lm-head, tie_word_embeddings false) is
// evaluated with that head: 29 quantized layers and a perplexity near the float model's (the
// embedding as head would be far off); without its head tensors it is refused.
TEST(Cli, QuantizedLmHeadIsLoaded) {
  const fs::path dir = scratch_dir("lm-head-cli");
  const std::string model = fixture_model("tiny-llama").string();
  const RunResult q = run_gptq({"quantize", model, (dir / "q").string(), "--method", "rtn", "--lm-head", "--quiet"}, dir);
  ASSERT_EQ(q.code, 0) << q.err;
  auto eval = [&](const std::string& m) {
    const RunResult r = run_gptq({"eval", m, "--text", fixture_data("eval.txt").string(), "--seqlen", "128",
                                  "--max-windows", "4", "--json"},
                                 dir);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? json::parse(r.out) : json::object();
  };
  const json f = eval(model), g = eval((dir / "q").string());
  ASSERT_TRUE(g.contains("ppl"));
  EXPECT_NE(g.at("model_kind").get<std::string>().find("(29 quantized layers)"), std::string::npos) << g.dump();
  const double ratio = g.at("ppl").get<double>() / f.at("ppl").get<double>();
  EXPECT_GT(ratio, 0.95);
  EXPECT_LT(ratio, 1.25);
  rewrite_tensors(dir / "q", [](TensorSpec& s, std::string&) { return !s.name.starts_with("lm_head."); });
  const RunResult r = run_gptq({"eval", (dir / "q").string(), "--text", fixture_data("eval.txt").string(), "--seqlen",
                                "64", "--max-windows", "1"},
                               dir);
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("lm_head.weight is missing"), std::string::npos) << r.err;
}

// --max-shard-size / max_shard_size: decimal or binary units, a whole number of bytes.
TEST(ByteSize, AcceptsPlainSizesExactly) {
  EXPECT_EQ(parse_byte_size("0"), 0u);
  EXPECT_EQ(parse_byte_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(parse_byte_size("500mb"), 500'000'000u);
  EXPECT_EQ(parse_byte_size("1.5GiB"), 1'610'612'736u);
  EXPECT_EQ(parse_byte_size("4096"), 4096u);
  EXPECT_EQ(parse_byte_size("18446744073709551615B"), UINT64_MAX);
  for (const char* bad : {"", "1e30", "nan", "inf", "0.5B", "-1GB", "18446744073709551616", "5 GB", "1.2.3GB", "GB",
                          "0GB"}) {
    try {
      (void)parse_byte_size(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kUsage) << bad;
      EXPECT_NE(std::string(e.what()).find(fmt::format("--max-shard-size '{}'", bad)), std::string::npos) << e.what();
    }
  }
}

// The JSON reader refuses a file over its size limit before reading it, naming the file.
TEST(JsonReader, SizeLimitNamesTheFile) {
  const fs::path dir = scratch_dir("json-size");
  write_text(dir / "big.json", "[1, 2, 3, 4, 5, 6, 7, 8, 9]");
  EXPECT_EQ(read_json_input(dir / "big.json", "advice", 100).size(), 9u);
  try {
    (void)read_json_input(dir / "big.json", "get a smaller one", 10);
    ADD_FAILURE() << "a 27-byte file passed a 10-byte limit";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), ExitCode::kBadInput);
    EXPECT_NE(msg.find((dir / "big.json").string() + " is 27 bytes, more than the 10 bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("get a smaller one"), std::string::npos) << msg;
  }
  try {
    (void)read_json_input(dir / "missing.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kIo);
  }
}

// --report through a symbolic link writes the link's target; the link stays.
TEST(Cli, ReportThroughSymlinkWritesItsTarget) {
  const fs::path dir = scratch_dir("report-link");
  fs::create_directories(dir / "reports");
  fs::create_symlink("reports/r.json", dir / "link.json");  // dangling until the run writes it
  const RunResult r = run_gptq({"quantize", fixture_model("tiny-llama").string(), (dir / "q").string(), "--method",
                                "rtn", "--quiet", "--report", (dir / "link.json").string()},
                               dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::is_symlink(dir / "link.json"));
  EXPECT_EQ(read_json(dir / "reports" / "r.json").at("layers").size(), 28u);
}

// A run that fails before its first durable state removes OUT.partial and the parent
// directories it created for OUT.
TEST(Cli, FailedRunRemovesTheParentsItCreated) {
  const fs::path dir = scratch_dir("parents");
  const RunResult r = run_gptq({"quantize", fixture_model("tiny-llama").string(), (dir / "a" / "b" / "out").string(),
                                "--calib", (dir / "nope.txt").string(), "--quiet"},
                               dir);
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("nope.txt"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "a"));
}

// The owner marker is not left in a finished output.
TEST(Cli, FinishedOutputHasNoRunFiles) {
  const fs::path dir = scratch_dir("finished");
  const RunResult r = run_gptq({"quantize", fixture_model("tiny-llama").string(), (dir / "q").string(), "--method",
                                "rtn", "--quiet"},
                               dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(dir / "q" / ".gptq-run"));
  EXPECT_FALSE(fs::exists(dir / "q.partial"));
}

TEST(Cli, VersionAndHelpSucceed) {
  const fs::path dir = scratch_dir("v");
  const RunResult v = run_gptq({"--version"}, dir);
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("gptq.cpp"), std::string::npos);
  EXPECT_EQ(run_gptq({"quantize", "--help"}, dir).code, 0);
  const RunResult none = run_gptq({}, dir);
  EXPECT_EQ(none.code, 2);
}

}  // namespace
}  // namespace gptq
