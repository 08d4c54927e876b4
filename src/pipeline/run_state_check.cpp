#include "pipeline/run_state_check.h"

#include <fmt/format.h>

#include <map>
#include <set>

#include "io/safetensors.h"
#include "model/convert.h"
#include "util/content_hash.h"
#include "util/error.h"

namespace gptq {

namespace fs = std::filesystem;

nlohmann::json input_file_hashes(const TensorStore& store) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& f : store.files()) {
    uint64_t size = 0;
    const std::string h = content_hash_of_file(f->path(), &size);
    out.push_back({{"file", f->path().filename().string()}, {"size", size}, {"xxh3", h}});
  }
  return out;
}

void check_input_files(const RunState& state, const nlohmann::json& now, const fs::path& model_dir,
                       const fs::path& staging) {
  std::map<std::string, nlohmann::json> before;
  for (const auto& f : state.inputs)
    if (f.is_object() && f.contains("file") && f["file"].is_string())
      before[f["file"].get<std::string>()] = f;
  for (const auto& f : now) {
    const std::string name = f.at("file").get<std::string>();
    const auto it = before.find(name);
    if (it == before.end())
      fail_code(ExitCode::kUsage,
                "--resume: {} is not a file of the checkpoint the interrupted run in {} read; "
                "rerun with the same "
                "model, or delete {} to start again",
                (model_dir / name).string(), staging.string(), staging.string());
    if (it->second != f)
      fail_code(ExitCode::kUsage,
                "--resume: {} changed since the interrupted run in {} read it (size {} -> {}, "
                "content hash {} -> "
                "{}); resuming would mix two models: restore the file, or delete {} to start again",
                (model_dir / name).string(), staging.string(),
                it->second.value("size", uint64_t{0}), f.at("size").get<uint64_t>(),
                it->second.value("xxh3", std::string("?")), f.at("xxh3").get<std::string>(),
                staging.string());
    before.erase(it);
  }
  if (!before.empty())
    fail_code(ExitCode::kUsage,
              "--resume: the interrupted run in {} read {}, which is no longer part of {}; rerun "
              "with the same "
              "model, or delete {} to start again",
              staging.string(), before.begin()->first, model_dir.string(), staging.string());
}

void check_run_state(const RunState& state, const ModelPlan& plan,
                     const std::vector<std::string>& written_now, const fs::path& staging) {
  const fs::path file = RunState::dir(staging) / "state.json";
  auto damaged = [&](const std::string& what) {
    fail("{} is damaged ({}); delete {} and start again without --resume", file.string(), what,
         staging.string());
  };
  if (state.blocks_done > plan.num_blocks)
    damaged(fmt::format("blocks_done is {}, the model has {} blocks", state.blocks_done,
                        plan.num_blocks));
  if (state.blocks_done > 0 && !state.copied)
    damaged("blocks are done but the float tensors are not copied");
  std::set<std::string> expected;
  for (const auto& l : plan.layers)
    if (l.quantize && l.block < state.blocks_done) expected.insert(l.name);
  std::set<std::string> recorded;
  for (const auto& r : state.layers) {
    if (!r.is_object() || !r.contains("name") || !r["name"].is_string() || !r.contains("block") ||
        !r["block"].is_number_integer())
      damaged("a layer record without name or block");
    const std::string name = r["name"].get<std::string>();
    if (!expected.count(name))
      damaged(fmt::format(
          "layer '{}' is recorded but is not a quantized layer of the {} finished blocks", name,
          state.blocks_done));
    if (!recorded.insert(name).second) damaged(fmt::format("layer '{}' is recorded twice", name));
  }
  if (recorded.size() != expected.size())
    damaged(
        fmt::format("{} layer records for the {} finished blocks, which have {} quantized layers",
                    recorded.size(), state.blocks_done, expected.size()));
  for (const auto& n : written_now)
    if (!state.written.contains(n)) damaged(fmt::format("no checksum for tensor '{}'", n));
}

}  // namespace gptq
