#include "io/json_reader.h"
#include "pipeline/run_state.h"

#include <cstring>
#include <fstream>

#include "model/json_util.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace gptq {

namespace fs = std::filesystem;

namespace {
constexpr char kActsMagic[8] = {'G', 'P', 'T', 'Q', 'A', 'C', 'T', '1'};

template <typename T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
}  // namespace

fs::path RunState::dir(const fs::path& staging) { return staging / ".gptq-run"; }

std::optional<RunState> RunState::load(const fs::path& staging) {
  const fs::path p = dir(staging) / "state.json";
  if (!fs::exists(p)) return std::nullopt;
  const auto j = read_json_file(p);
  RunState s;
  try {
    s.fingerprint = j.at("fingerprint").get<std::string>();
    s.blocks_done = j.at("blocks_done").get<int64_t>();
    s.copied = j.at("copied").get<bool>();
    s.layers = j.at("layers");
    s.inputs = j.at("inputs");
    s.written = j.at("written");
  } catch (const nlohmann::json::exception& e) {
    fail("{} is damaged ({}); delete {} and start again without --resume", p.string(), e.what(), staging.string());
  }
  auto damaged = [&](const std::string& what) {
    fail("{} is damaged ({}); delete {} and start again without --resume", p.string(), what, staging.string());
  };
  if (s.blocks_done < 0) damaged(fmt::format("blocks_done is {}", s.blocks_done));
  if (!s.layers.is_array() || !s.inputs.is_array() || !s.written.is_object())
    damaged("layers, inputs or written of the wrong type");
  for (const auto& [name, sum] : s.written.items())
    if (!sum.is_string()) damaged(fmt::format("the checksum of tensor '{}' is not a string", name));
  return s;
}

void RunState::save(const fs::path& staging) const {
  fs::create_directories(dir(staging));
  const nlohmann::json j{{"fingerprint", fingerprint}, {"blocks_done", blocks_done}, {"copied", copied},
                         {"layers", layers},           {"inputs", inputs},           {"written", written}};
  write_file_atomic(dir(staging) / "state.json", json_output(j, 1));
}

void RunState::remove_files(const fs::path& staging) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir(staging), ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("acts") || name.starts_with("state.json")) fs::remove(e.path(), ec);
  }
}

namespace {
fs::path acts_file(const fs::path& staging, int64_t blocks_done) {
  return RunState::dir(staging) / ("acts-" + std::to_string(blocks_done) + ".bin");
}
}  // namespace

void save_activations(const fs::path& staging, const Activations& acts, int64_t blocks_done) {
  std::vector<int64_t> sizes;
  for (const auto& s : acts.seqs) sizes.push_back(static_cast<int64_t>(s.size()));
  save_activations(
      staging, acts.hidden, sizes,
      [&](size_t s, std::vector<float>&) { return acts.seqs[s].data(); }, blocks_done);
}

namespace {
std::string activations_header(int64_t hidden, const std::vector<int64_t>& sizes) {
  std::string header(kActsMagic, sizeof kActsMagic);
  put(header, static_cast<int64_t>(hidden));
  put(header, static_cast<int64_t>(sizes.size()));
  for (int64_t s : sizes) put(header, s);
  return header;
}

fs::path with_run_dir(fs::path file) {
  fs::create_directories(file.parent_path());
  return file;
}
}  // namespace

ActivationFileWrite::ActivationFileWrite(const fs::path& staging, int64_t hidden,
                                         const std::vector<int64_t>& sizes, int64_t blocks_done)
    : sizes_(sizes), file_(with_run_dir(acts_file(staging, blocks_done))) {
  const std::string header = activations_header(hidden, sizes);
  // Each sequence at its offset (the header's size is a multiple of 8: floats stay aligned).
  uint64_t pos = header.size();
  for (int64_t s : sizes) {
    offset_.push_back(pos);
    pos += static_cast<uint64_t>(s) * sizeof(float);
  }
  file_.write_at(0, header.data(), header.size());
}

void ActivationFileWrite::write_sequence(size_t s, const float* values) const {
  file_.write_at(offset_.at(s), values, static_cast<size_t>(sizes_[s]) * sizeof(float));
}

void save_activations(const fs::path& staging, int64_t hidden, const std::vector<int64_t>& sizes,
                      const std::function<const float*(size_t, std::vector<float>&)>& rows,
                      int64_t blocks_done) {
  ActivationFileWrite file(staging, hidden, sizes, blocks_done);
  // One task per sequence: the copies into the page cache run on every thread.
  parallel_for(static_cast<int64_t>(sizes.size()), [&](int64_t s) {
    std::vector<float> scratch;
    file.write_sequence(static_cast<size_t>(s), rows(static_cast<size_t>(s), scratch));
  });
  file.commit();
}

void remove_activations_except(const fs::path& staging, int64_t blocks_done) {
  const std::string keep = acts_file(staging, blocks_done).filename().string();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(RunState::dir(staging), ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("acts") && name != keep) fs::remove(e.path(), ec);
  }
}

Activations load_activations(const fs::path& staging, int64_t blocks_done, int64_t expected_hidden,
                             const std::vector<int64_t>& seq_tokens) {
  const fs::path p = acts_file(staging, blocks_done);
  std::ifstream in(p, std::ios::binary);
  auto bad = [&](const char* what) -> Activations {
    fail("{} is damaged ({}); delete {} and start again without --resume", p.string(), what, staging.string());
  };
  if (!in) return bad("missing or unreadable");
  std::error_code ec;
  const uintmax_t file_size = fs::file_size(p, ec);
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, kActsMagic, 8) != 0) return bad("bad magic");
  int64_t hidden = 0, n = 0;
  if (!in.read(reinterpret_cast<char*>(&hidden), 8) || !in.read(reinterpret_cast<char*>(&n), 8) || n < 0 ||
      n > (1 << 24) || hidden <= 0)
    return bad("bad header");
  if (hidden != expected_hidden)
    fail("{} is damaged: its activations are {} wide, the model's hidden size is {}; delete {} and start again "
         "without --resume", p.string(), hidden, expected_hidden, staging.string());
  if (n != static_cast<int64_t>(seq_tokens.size()))
    fail("{} is damaged: it holds {} calibration sequences, the run has {}; delete {} and start again without "
         "--resume", p.string(), n, seq_tokens.size(), staging.string());
  Activations a;
  a.hidden = hidden;
  std::vector<int64_t> sizes(static_cast<size_t>(n));
  uint64_t expected = 24 + 8 * static_cast<uint64_t>(n);
  for (size_t i = 0; i < sizes.size(); ++i) {
    int64_t& s = sizes[i];
    if (!in.read(reinterpret_cast<char*>(&s), 8) || s < 0 || s % hidden != 0 || static_cast<uint64_t>(s) > file_size / 4)
      return bad("bad sizes");
    if (s / hidden != seq_tokens[i])
      fail("{} is damaged: calibration sequence {} has {} tokens of activations, the run has {}; delete {} and "
           "start again without --resume", p.string(), i, s / hidden, seq_tokens[i], staging.string());
    expected += 4 * static_cast<uint64_t>(s);
  }
  if (ec || expected != file_size) return bad("its size does not match its header");
  for (int64_t s : sizes) {
    std::vector<float> v(static_cast<size_t>(s));
    if (!in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(s * sizeof(float))))
      return bad("truncated");
    a.seqs.push_back(std::move(v));
  }
  return a;
}

}  // namespace gptq
