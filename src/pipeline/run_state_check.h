// What a resumed run checks before it trusts OUT.partial: the input checkpoint is byte for byte
// the one the interrupted run read (content hash of every file), and state.json agrees with the
// plan (block counts, one record per quantized layer of the finished blocks, a checksum for every
// tensor written so far). The shards themselves are checked against those checksums by
// SafetensorsWriter::adopt_written, the activation files by load_activations.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/run_state.h"

namespace gptq {

class TensorStore;
struct ModelPlan;

// [{"file": name relative to the checkpoint, "size": bytes, "xxh3": hex}] of every file of `store`.
nlohmann::json input_file_hashes(const TensorStore& store);

// Refuses (naming the file) a resume whose input files differ from the recorded ones.
void check_input_files(const RunState& state, const nlohmann::json& now,
                       const std::filesystem::path& model_dir,
                       const std::filesystem::path& staging);

// Refuses a state.json that does not fit the plan: blocks_done past the model, layer records of
// unfinished blocks or missing ones, checksums missing for tensors that must be written.
// `written_now` lists the tensors the state says are in the shards.
void check_run_state(const RunState& state, const ModelPlan& plan,
                     const std::vector<std::string>& written_now,
                     const std::filesystem::path& staging);

}  // namespace gptq
