#include "pipeline/quantize.h"

#include <fmt/core.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "calib/tokenizer.h"
#include "dist/chunked_hessians.h"
#include "dist/communicator.h"
#include "io/json_reader.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/convert.h"
#include "model/dynamic_overrides.h"
#include "model/loader_compat.h"
#include "model/model_config.h"
#include "model/quantization_config.h"
#include "nn/block_forward.h"
#include "nn/norm.h"
#include "nn/weight_loader.h"
#include "pipeline/calibration_inputs.h"
#include "pipeline/output_layout.h"
#include "pipeline/quantize_report.h"
#include "pipeline/run_staging.h"
#include "pipeline/run_state.h"
#include "pipeline/run_state_check.h"
#include "pipeline/sequential_plan.h"
#include "quant/gptq.h"
#include "quant/pack.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/hash.h"
#include "util/progress.h"
#include "util/stage_clock.h"
#include "util/system_error.h"
#include "util/thread_pool.h"

namespace gptq {

namespace fs = std::filesystem;

namespace {

nlohmann::json options_json(const QuantizeOptions& o) {
  const QuantConfig& q = o.quant;
  return {{"method", o.method == QuantMethod::kGptq ? "gptq" : "rtn"},
          {"bits", q.bits},
          {"group_size", q.group_size},
          {"damp_percent", q.damp_percent},
          {"damp_auto_increment", q.damp_auto_increment},
          {"desc_act", q.desc_act},
          {"static_groups", q.static_groups},
          {"sym", q.sym},
          {"act_group_aware", q.act_group_aware},
          {"mse", q.mse_norm},
          {"true_sequential", o.true_sequential},
          {"format", format_name(o.effective_format())},
          {"modules_in_block", o.modules_in_block},
          {"block_name", o.block_name},
          {"allow_unaligned", o.allow_unaligned},
          {"zero_bias", o.zero_bias},
          {"nsamples", o.calib.nsamples},
          {"seqlen", o.calib.seqlen},
          {"seed", o.calib.seed},
          {"max_shard_bytes", o.max_shard_bytes},
          {"moe_calibration", o.moe_calibration == MoeCalibration::kAll ? "all" : "routed"},
          {"moe_min_tokens", o.moe_min_tokens},
          {"moe_experts_per_chunk", o.moe_experts_per_chunk},
          {"dynamic", o.dynamic},
          {"lm_head", o.lm_head},
          {"hessian_chunk", o.hessian_chunk},
          {"batch_rows", o.batch_rows},
          {"activation_dtype", activation_dtype_name(o.activation_dtype)}};
}

// Totals of the layers' zero points of 0, and what a loader makes of the output.
void add_loader_report(QuantizeResult& r, const QuantizeOptions& o, const ModelPlan& plan) {
  for (const auto& l : r.layers) {
    r.zero_point_0_groups += l.zero_point_0_groups;
    r.layers_with_zero_point_0 += l.zero_point_0_groups > 0;
  }
  r.loader_warnings = plan.loader_warnings;
  if (o.effective_format() == CheckpointFormat::kGptqV2)
    r.loader_warnings.push_back(gptq_v2_readers_note());
  if (o.effective_format() == CheckpointFormat::kGptq && r.zero_point_0_groups > 0)
    r.loader_warnings.push_back(fmt::format("{} zero points of 0 in {} layers: {}",
                                            r.zero_point_0_groups, r.layers_with_zero_point_0,
                                            v1_zero_point_0_note()));
}

std::string fingerprint_of(const ModelConfig& cfg, const TensorStore& store,
                           const nlohmann::json& options, const std::vector<TokenSequence>& calib) {
  Fnv64 h;
  h.add("gptq.cpp " GPTQ_VERSION).add(cfg.raw.dump()).add(json_output(options));
  for (const auto& n : store.names()) {
    const auto& t = store.get(n);
    h.add(n).add(dtype_name(t.dtype)).add_u64(t.nbytes);
    for (int64_t d : t.shape) h.add_u64(static_cast<uint64_t>(d));
  }
  for (const auto& s : calib) {
    h.add_u64(s.size());
    h.add(s.data(), s.size() * sizeof(int32_t));
  }
  return h.hex();
}

// A finished shard that a stopped run had already renamed into place goes back to its .partial
// name, so that the writer reopens it (finish() renames it again).
void unfinish_shards(const fs::path& staging) {
  for (const auto& e : fs::directory_iterator(staging)) {
    const fs::path p = e.path();
    std::error_code ec;
    if (e.is_regular_file() && p.extension() == ".safetensors" &&
        !fs::exists(p.string() + ".partial"))
      fs::rename(p, p.string() + ".partial", ec);
    if (ec)
      fail_code(ExitCode::kIo, "cannot rename {} back to {}.partial to resume: {}", p.string(),
                p.string(), ec.message());
  }
}

// NaN/Inf in a checkpoint tensor (F32/F16/BF16 bit patterns): the input is damaged.
void require_finite(const TensorInfo& t) {
  auto bad = [&](size_t i) {
    fail(
        "tensor '{}' holds a non-finite value (NaN or Inf) at element {}: the checkpoint is "
        "damaged or was "
        "saved after a diverged training run; re-download or re-export it",
        t.name, i);
  };
  if (t.dtype == DType::F32) {
    for (size_t i = 0; i < t.nbytes / 4; ++i) {
      uint32_t b;
      std::memcpy(&b, t.data + 4 * i, 4);
      if ((b & 0x7f800000u) == 0x7f800000u) bad(i);
    }
  } else if (t.dtype == DType::F16 || t.dtype == DType::BF16) {
    const uint16_t mask = t.dtype == DType::F16 ? 0x7c00 : 0x7f80;
    for (size_t i = 0; i < t.nbytes / 2; ++i) {
      uint16_t b;
      std::memcpy(&b, t.data + 2 * i, 2);
      if ((b & mask) == mask) bad(i);
    }
  }
}

void copy_aux_files(const fs::path& model_dir, const fs::path& staging) {
  static const std::set<std::string> skip{"config.json", "model.safetensors.index.json",
                                          "README.md", "quantize_config.json", "quant_config.json"};
  for (const auto& e : fs::directory_iterator(model_dir)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    const std::string ext = e.path().extension().string();
    if (skip.count(name) || ext == ".safetensors" || ext == ".bin" || ext == ".pt" ||
        ext == ".pth" || ext == ".gguf" || ext == ".partial" || name.ends_with(".index.json"))
      continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_file_atomic(staging / name, bytes);
  }
}

class QuantizeRun {
 public:
  QuantizeRun(const fs::path& model_dir, const fs::path& out, const QuantizeOptions& opt,
              const Callbacks& cb)
      : model_dir_(model_dir), out_(out), staging_(out.string() + ".partial"), opt_(opt), cb_(cb) {}

  QuantizeSummary run();

 private:
  void discard_staging();
  void validate_blocks() const;
  void setup();
  void copy_float_tensors();
  void quantize_block(int64_t b);
  // A layer to solve: its weight from `bf` (or `weight`), GPTQ with `hessian` or RTN without.
  struct SolveJob {
    const QuantLayer* layer = nullptr;
    const std::vector<float>* hessian = nullptr;
    nlohmann::json extra;
    BlockForward* bf = nullptr;                  // the dequantized weight goes back into it
    const std::vector<float>* weight = nullptr;  // when there is no block (the head)
  };
  // A factor of one Hessian that a process's jobs share (q/k/v, gate/up: the same inputs, the
  // same settings): made by the first of them, dropped after the last.
  struct SharedFactor {
    const std::vector<float>* hessian = nullptr;
    QuantConfig cfg;
    size_t last_job = 0;
    std::optional<GptqFactor> factor;
  };
  // Solves the jobs round-robin over the processes, then applies every solution in job order on
  // every process (recorded in state_.layers).
  void solve_layers(const std::vector<SolveJob>& jobs);
  dist::Bytes solve_matrix(const SolveJob& job, SharedFactor* shared);
  nlohmann::json apply_solution(const SolveJob& job, const dist::Bytes& solution);
  // This process's sequences' Hessians of one stage, summed over every process (chunk order).
  std::map<std::string, HessianAccumulator> reduce_hessians(dist::ChunkedHessians& h) {
    return h.reduce(comm_, &moved_hessians_);
  }
  void save_block_activations(int64_t blocks_done);
  void load_block_activations();
  bool root() const { return comm_.rank() == 0; }
  // Tokens of every calibration sequence (what the saved activations must hold).
  std::vector<int64_t> calib_lengths() const {
    std::vector<int64_t> t;
    for (const auto& c : calib_) t.push_back(static_cast<int64_t>(c.size()));
    return t;
  }
  void quantize_lm_head();
  void process_experts(BlockForward& bf, std::vector<SequenceState>& states,
                       const std::map<std::string, const QuantLayer*>& layers);
  // Consecutive sequences of this process run as one state (SequenceState::segments).
  struct SequenceBatch {
    size_t first = 0, count = 0;  // local indices (acts_)
  };
  // Batches of whole sequences of up to opt_.batch_rows tokens (a longer sequence alone), never
  // across a Hessian chunk: a chunk's sums are then the same for any number of processes. One
  // sequence per batch for MoE blocks (their experts' capture and solves go sequence by sequence).
  std::vector<SequenceBatch> batch_sequences(bool one_by_one) const;
  int64_t moe_min_tokens() const;
  void finalize();
  nlohmann::json quantization_config_json() const;
  void log(const std::string& line) const {
    if (cb_.log) cb_.log(line);
  }
  // Reports progress at a block boundary; a callback returning false stops the run there.
  void report_progress(int64_t blocks_done);
  [[noreturn]] void cancelled() const;

  fs::path model_dir_, out_, staging_;
  const QuantizeOptions& opt_;
  const Callbacks& cb_;
  QuantConfig qc_;
  DynamicOverrides dynamic_;
  ModelConfig cfg_;
  TensorStore store_;
  ModelPlan plan_;
  OutputLayout layout_;
  std::vector<TokenSequence> calib_;
  std::unique_ptr<RunStaging> run_staging_;  // OUT.partial: checked, owned and locked
  std::unique_ptr<SafetensorsWriter> writer_;
  RunState state_;
  // acts-<b+1>.bin of the block b just run (one process), written as its batches finished,
  // committed by save_block_activations.
  std::unique_ptr<ActivationFileWrite> next_inputs_;
  ActivationStore acts_;  // the inputs of the next block of this process's sequences
  dist::Communicator& comm_ = dist::world();
  dist::Range mine_;    // this process's calibration sequences [first, last)
  int64_t solves_ = 0;  // layers solved so far (the round-robin over processes)
  uint64_t moved_hessians_ = 0, moved_acts_ = 0,
           moved_solutions_ = 0;  // bytes sent between processes
  Stopwatch clock_;
  StageClock stages_{"other"};
  QuantizeSummary summary_;
  double flops_ = 0;
  int64_t seqlen_ = 0;
  bool resume_ = false;   // there is an interrupted run to continue
  bool durable_ = false;  // the staging directory holds a resumable state
};

// Every block's tensors exist with the shapes config.json implies (headers only: the weights are
// read block by block later), so that a damaged checkpoint fails before the run, not at block 40.
void QuantizeRun::validate_blocks() const {
  if (cfg_.hp.layers != plan_.num_blocks)
    fail(
        "{}: num_hidden_layers is {} but the checkpoint has {} blocks in '{}': config.json and the "
        "weights do not "
        "belong together; use the config.json of this checkpoint",
        (model_dir_ / "config.json").string(), cfg_.hp.layers, plan_.num_blocks, plan_.block_name);
  const ArchSpec& arch = cfg_.require_arch();
  for (int64_t b = 0; b < plan_.num_blocks; ++b) {
    BlockOptions bo;
    bo.load_linears = false;  // norms and biases are loaded (small) and checked
    bo.block_name = plan_.block_name;
    const BlockForward bf(cfg_, store_, b, bo);
    for (const auto& local : bf.linears()) {
      const auto [n, k] = bf.linear_dims(local);
      nn::check_linear_weight(store_, bf.prefix() + local + ".weight", arch.linear_kind(local), n,
                              k);
    }
  }
}

// A failure before the first durable state leaves nothing behind.
void QuantizeRun::discard_staging() {
  if (!run_staging_ || durable_) return;
  writer_.reset();
  run_staging_->discard();
}

void QuantizeRun::setup() {
  qc_ = opt_.quant;
  qc_.validate();
  if (root()) {  // the first process owns the output (the others only compute)
    // Early, before any expensive work: an existing output, a foreign or busy OUT.partial, a
    // read-only or full output location fail here.
    run_staging_ = std::make_unique<RunStaging>(model_dir_, out_, opt_.resume, cb_.log);
    resume_ = run_staging_->resuming();
    durable_ = resume_;
  }
  if (comm_.size() > 1) {
    dist::Bytes flag{static_cast<char>(resume_)};
    comm_.broadcast(flag, 0);
    resume_ = flag.at(0) != 0;
  }
  cfg_ = ModelConfig::load(model_dir_);
  cfg_.require_arch();
  if (cfg_.is_quantized())
    fail(
        "{} is already a quantized checkpoint (config.json has quantization_config); quantize the "
        "float model",
        model_dir_.string());
  store_ = TensorStore::open(model_dir_);
  dynamic_ = DynamicOverrides(opt_.dynamic, "--dynamic");
  plan_ = convert_model(cfg_, store_, convert_options(opt_, &dynamic_));
  validate_blocks();
  for (const auto& w : plan_.warnings) log("warning: " + w);
  for (const auto& w : plan_.loader_warnings) log("warning: " + w);
  // Calibration data (not needed for round-to-nearest).
  seqlen_ = opt_.calib.seqlen > 0 ? opt_.calib.seqlen : cfg_.default_seqlen();
  if (seqlen_ > cfg_.hp.max_positions)
    fail_code(ExitCode::kUsage, "--seqlen {} exceeds the model's maximum of {} positions", seqlen_,
              cfg_.hp.max_positions);
  if (opt_.method == QuantMethod::kGptq) {
    if (opt_.calib.file.empty() && opt_.calib.texts.empty() && opt_.calib.sequences.empty())
      fail_code(ExitCode::kUsage,
                "--calib FILE is required for GPTQ (a text file, .jsonl or pre-tokenized .json; "
                "the API's dataset: such a file, texts or token-id lists)");
    CalibOptions c = opt_.calib;
    c.seqlen = seqlen_;
    c.max_positions = cfg_.hp.max_positions;
    c.hidden_size = cfg_.hp.hidden;
    std::unique_ptr<Tokenizer> tok;
    if (c.sequences.empty() && c.file.extension() != ".json")
      tok = Tokenizer::from_model_dir(model_dir_);
    calib_ = load_calibration(c, tok.get(), cfg_.hp.vocab);
  }
  // This process's calibration sequences: whole Hessian chunks (dist/chunked_hessians.h).
  mine_ = dist::chunk_range(static_cast<int64_t>(calib_.size()), opt_.hessian_chunk, comm_.rank(),
                            comm_.size());
  acts_ = ActivationStore(opt_.activation_dtype);
  if (comm_.size() > 1 && opt_.hessian_chunk <= 0 && calib_.size() > 1)
    log(
        fmt::format("note: {} processes with one Hessian chunk (--hessian-chunk 0): the first "
                    "process runs every "
                    "calibration sequence; --hessian-chunk S splits them in chunks of S",
                    comm_.size()));
  layout_ = make_output_layout(store_, plan_, opt_.zero_bias);
  const std::string fp = fingerprint_of(cfg_, store_, options_json(opt_), calib_);
  const nlohmann::json inputs =
      input_file_hashes(store_);          // the content, not just names and shapes
  std::vector<std::string> done_tensors;  // in the shards already (resume)
  if (resume_) {
    if (root()) {
      state_ = *RunState::load(staging_);
      check_input_files(state_, inputs, model_dir_, staging_);
      if (state_.fingerprint != fp)
        fail_code(ExitCode::kUsage,
                  "--resume: the interrupted run in {} was made with another model, calibration or "
                  "options (fingerprint {} != {}); rerun with the same arguments, or delete it to "
                  "start again",
                  staging_.string(), state_.fingerprint, fp);
      if (state_.copied) done_tensors = layout_.copied;
      for (const auto& l : plan_.layers)
        if (l.quantize && l.block < state_.blocks_done) {
          for (const char* s : {".qweight", ".qzeros", ".scales", ".g_idx"})
            done_tensors.push_back(l.name + s);
          if (l.has_bias || opt_.zero_bias) done_tensors.push_back(l.name + ".bias");
        }
      check_run_state(state_, plan_, done_tensors, staging_);
    }
    if (comm_.size() > 1) {  // the first process's run state to the others
      const std::string j = nlohmann::json{
          {"blocks_done", state_.blocks_done},
          {"copied", state_.copied},
          {"layers",
           state_.layers}}.dump();
      dist::Bytes b(j.begin(), j.end());
      comm_.broadcast(b, 0);
      const nlohmann::json got = nlohmann::json::parse(b.begin(), b.end());
      state_.fingerprint = fp;
      state_.blocks_done = got.at("blocks_done").get<int64_t>();
      state_.copied = got.at("copied").get<bool>();
      state_.layers = got.at("layers");
    }
    if (!calib_.empty() && state_.blocks_done > 0 &&
        (state_.blocks_done < plan_.num_blocks || opt_.lm_head))
      load_block_activations();
    if (root()) unfinish_shards(staging_);
  } else {
    state_.fingerprint = fp;
    state_.inputs = inputs;
  }
  if (!root()) return;  // the first process writes the output
  SafetensorsWriter::Options wo;
  wo.max_shard_bytes = opt_.max_shard_bytes;
  wo.metadata = {{"format", "pt"}, {"quantizer", "gptq.cpp " GPTQ_VERSION}};
  wo.keep_partial = true;
  wo.resume = resume_;
  writer_ = std::make_unique<SafetensorsWriter>(staging_, layout_.specs, wo);
  // What the interrupted run wrote is checked against its checksums (a truncated or modified
  // shard is refused, naming it).
  for (const auto& n : done_tensors)
    writer_->adopt_written(n, state_.written.at(n).get<std::string>());
  if (resume_)
    log(fmt::format("resuming: {} of {} blocks already done", state_.blocks_done,
                    plan_.num_blocks));
}

void QuantizeRun::copy_float_tensors() {
  if (state_.copied) return;
  if (!root()) {
    state_.copied = true;
    return;
  }
  for (const auto& n : layout_.copied) {
    const auto& t = store_.get(n);
    require_finite(t);
    writer_->write(n, t.data, t.nbytes);
    drop_mapped_pages(t.data, t.nbytes);  // written out: the embedding and head leave the RSS
  }
  writer_->sync();
  state_.copied = true;
  state_.written = writer_->checksums();
  state_.save(staging_);
  durable_ = true;
}

void QuantizeRun::solve_layers(const std::vector<SolveJob>& jobs) {
  std::vector<dist::Bytes> solutions(jobs.size());
  const int64_t first = solves_;
  solves_ += static_cast<int64_t>(jobs.size());
  auto mine = [&](size_t i) {
    return (first + static_cast<int64_t>(i)) % comm_.size() == comm_.rank();
  };
  std::vector<SharedFactor> shared;
  std::vector<int> shared_of(jobs.size(), -1);
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!mine(i) || !jobs[i].hessian) continue;
    const QuantConfig c = dynamic_.resolve(jobs[i].layer->name, qc_);
    size_t s = 0;
    while (s < shared.size() &&
           !(shared[s].hessian == jobs[i].hessian && same_factor(shared[s].cfg, c)))
      ++s;
    if (s == shared.size()) shared.push_back({jobs[i].hessian, c, i, std::nullopt});
    shared[s].last_job = i;
    shared_of[i] = static_cast<int>(s);
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!mine(i)) continue;
    SharedFactor* sf = shared_of[i] >= 0 ? &shared[static_cast<size_t>(shared_of[i])] : nullptr;
    solutions[i] = solve_matrix(jobs[i], sf);
    if (sf && sf->last_job == i) sf->factor.reset();
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    const int owner = static_cast<int>((first + static_cast<int64_t>(i)) % comm_.size());
    if (comm_.size() > 1) {
      comm_.broadcast(solutions[i], owner);
      if (comm_.rank() == owner)
        moved_solutions_ += solutions[i].size() * static_cast<uint64_t>(comm_.size() - 1);
    }
    state_.layers.push_back(apply_solution(jobs[i], solutions[i]));
    dist::Bytes().swap(solutions[i]);
  }
}

// The output head from the final-norm activations of the calibration sequences (the outputs of
// the last block), as GPTQModel's lm_head=True.
void QuantizeRun::quantize_lm_head() {
  const QuantLayer& l = plan_.layers.back();
  const ArchSpec& arch = cfg_.require_arch();
  const ModelLayout names =
      model_layout(cfg_, [&](const std::string& n) { return store_.find(n) != nullptr; });
  const int64_t hidden = cfg_.hp.hidden;
  const nn::Norm norm = nn::load_norm(store_, names.final_norm, arch.norm, hidden,
                                      static_cast<float>(cfg_.hp.norm_eps));
  const std::vector<float> w = nn::load_linear_weight(
      store_, l.name + ".weight", LinearKind::kLinear, l.out_features, l.in_features);
  std::vector<float> h;
  if (opt_.method == QuantMethod::kGptq && !calib_.empty()) {
    dist::ChunkedHessians acc(opt_.hessian_chunk);
    std::vector<float> normed;
    for (size_t s = 0; s < acts_.size(); ++s) {
      const std::vector<float> x = acts_.get(s);
      const int64_t t = static_cast<int64_t>(x.size()) / hidden;
      normed.resize(x.size());
      norm.apply(x.data(), t, normed.data());
      acc.set_sequence(mine_.first + static_cast<int64_t>(s));
      acc.add("lm_head", normed.data(), t, hidden);
    }
    h = std::move(reduce_hessians(acc).at("lm_head")).finalize();
  }
  SolveJob job;
  job.layer = &l;
  job.hessian = h.empty() ? nullptr : &h;
  job.weight = &w;
  solve_layers({job});
}

// The solution of one layer (packed tensors and its record), as bytes that can go to other
// processes. With a Hessian, `shared` holds (or receives) its factor.
dist::Bytes QuantizeRun::solve_matrix(const SolveJob& job, SharedFactor* shared) {
  Stopwatch sw;
  const QuantLayer& layer = *job.layer;
  const std::vector<float>& w = job.bf ? job.bf->weight(layer.local_name) : *job.weight;
  const std::vector<float>* hessian = job.hessian;
  const int64_t n = layer.out_features, k = layer.in_features;
  const QuantConfig lqc = dynamic_.resolve(layer.name, qc_);  // this layer's settings
  double flops = 0;
  const GptqResult r = [&] {
    const StageClock::Stage stage("solve");
    if (!hessian) return rtn_quantize(w.data(), n, k, lqc);
    if (!shared->factor) {
      shared->factor = gptq_factor(hessian->data(), k, lqc, layer.name);
      // quant/cholesky.cpp: Cholesky K^3/3 + triangular inverse K^3/3.
      flops += (2.0 / 3.0) * static_cast<double>(k) * k * k;
    }
    // Error feedback: 2NK^2 / 2 (the updates touch the columns after the current one).
    flops += static_cast<double>(n) * k * k;
    return gptq_quantize(w.data(), n, k, *shared->factor, static_cast<int64_t>(calib_.size()), lqc,
                         layer.name);
  }();
  const StageClock::Stage stage("pack");
  const PackedLinear p = [&] {
    try {
      return pack_linear(r.codes.data(), r.scales.data(), r.zeros.data(), r.g_idx.data(), n, k,
                         r.groups, lqc.bits, lqc.group_size, opt_.effective_format());
    } catch (const Error& e) {
      throw Error(fmt::format("layer {}: {}", layer.name, e.what()), e.code());  // name the layer
    }
  }();
  LayerRecord rec;
  rec.name = layer.name;
  rec.block = layer.block;
  rec.out_features = n;
  rec.in_features = k;
  rec.loss = r.loss;
  rec.damp = r.damp;
  rec.damp_retries = r.damp_retries;
  rec.dead_columns = r.dead_columns;
  rec.zero_point_0_groups = count_zero_points_0(r.zeros);
  if (job.extra.is_object() && job.extra.contains("expert")) {
    rec.expert = job.extra.at("expert").get<int64_t>();
    rec.tokens = job.extra.at("tokens").get<int64_t>();
    rec.rtn_fallback = job.extra.contains("fallback");
  }
  rec.seconds = sw.seconds();
  dist::Writer m;
  m.put(static_cast<int32_t>(p.bits));
  m.put(static_cast<int32_t>(p.group_size));
  m.put(p.in_features);
  m.put(p.out_features);
  m.put(p.groups);
  m.put(static_cast<int32_t>(p.format));
  m.put_array(p.qweight.data(), p.qweight.size());
  m.put_array(p.qzeros.data(), p.qzeros.size());
  m.put_array(p.scales.data(), p.scales.size());
  m.put_array(p.g_idx.data(), p.g_idx.size());
  m.put(flops);
  m.put_string(layer_record_json(rec).dump());
  return std::move(m.bytes);
}

// Writes a solution (the first process), puts its dequantized weight into the block, reports it.
nlohmann::json QuantizeRun::apply_solution(const SolveJob& job, const dist::Bytes& solution) {
  const QuantLayer& layer = *job.layer;
  dist::Reader m(solution);
  PackedLinear p;
  p.bits = m.get<int32_t>();
  p.group_size = m.get<int32_t>();
  p.in_features = m.get<int64_t>();
  p.out_features = m.get<int64_t>();
  p.groups = m.get<int64_t>();
  p.format = static_cast<CheckpointFormat>(m.get<int32_t>());
  p.qweight = m.get_array<int32_t>();
  p.qzeros = m.get_array<int32_t>();
  p.scales = m.get_array<uint16_t>();
  p.g_idx = m.get_array<int32_t>();
  flops_ += m.get<double>();
  const LayerRecord rec = layer_record_from_json(nlohmann::json::parse(m.get_string()));
  const int64_t n = layer.out_features;
  std::optional<StageClock::Stage> stage(std::in_place, "write");
  if (writer_) {
    writer_->write(layer.name + ".qweight", p.qweight.data(), p.qweight.size() * 4);
    writer_->write(layer.name + ".qzeros", p.qzeros.data(), p.qzeros.size() * 4);
    writer_->write(layer.name + ".scales", p.scales.data(), p.scales.size() * 2);
    writer_->write(layer.name + ".g_idx", p.g_idx.data(), p.g_idx.size() * 4);
    if (layer.has_bias || opt_.zero_bias) {
      std::vector<uint16_t> b16(static_cast<size_t>(n), 0);
      if (layer.has_bias) {
        require_finite(store_.get(layer.name + ".bias"));
        const std::vector<float> b = tensor_to_f32(store_.get(layer.name + ".bias"));
        f32_to_f16(b.data(), b16.data(), b16.size());
      }
      writer_->write(layer.name + ".bias", b16.data(), b16.size() * 2);
    }
  }
  if (job.bf) {
    // The next layers see what a loader will compute: fp16 scales times (code - zero).
    stage.emplace("pack");
    job.bf->set_weight(layer.local_name, dequantize_linear(p));
  }
  stage.reset();
  if (cb_.layer && !cb_.layer(rec)) cancelled();
  return layer_record_json(rec);
}

int64_t QuantizeRun::moe_min_tokens() const {
  if (opt_.moe_min_tokens >= 0) return opt_.moe_min_tokens;
  int64_t total = 0;
  for (const auto& s : calib_) total += static_cast<int64_t>(s.size());
  return std::max<int64_t>(1, (total + 999) / 1000);
}

// The experts of a sparse MoE block, a chunk at a time (their fp32 weights, Hessians and routed
// rows only for that chunk): gate/up from the rows routed to each expert (or every row with
// --moe-calibration all), then down from their mids, then the weighted outputs are accumulated into
// each sequence's MoE output. An expert with too few routed tokens is rounded to nearest.
std::vector<QuantizeRun::SequenceBatch> QuantizeRun::batch_sequences(bool one_by_one) const {
  const int64_t hidden = cfg_.hp.hidden;
  std::vector<SequenceBatch> out;
  int64_t rows = 0;
  for (size_t s = 0; s < acts_.size(); ++s) {
    const int64_t t = acts_.values(s) / hidden;
    const int64_t global = mine_.first + static_cast<int64_t>(s);
    const bool chunk_start = opt_.hessian_chunk > 0 && global % opt_.hessian_chunk == 0;
    if (out.empty() || one_by_one || chunk_start || rows + t > opt_.batch_rows) {
      out.push_back({s, 0});
      rows = 0;
    }
    ++out.back().count;
    rows += t;
  }
  return out;
}

void QuantizeRun::process_experts(BlockForward& bf, std::vector<SequenceState>& states,
                                  const std::map<std::string, const QuantLayer*>& layers) {
  if (states.size() != acts_.size())
    fail_code(ExitCode::kInternal, "MoE block: {} states for {} sequences (batched?)",
              states.size(), acts_.size());
  const MoeLayout& moe = cfg_.require_arch().moe;
  const int64_t experts = bf.num_experts(),
                chunk = std::max<int64_t>(1, opt_.moe_experts_per_chunk);
  const bool all = opt_.moe_calibration == MoeCalibration::kAll;
  std::vector<int64_t> tokens(static_cast<size_t>(experts), 0);
  for (const auto& st : states)
    for (int64_t e = 0; e < experts; ++e)
      tokens[e] += static_cast<int64_t>(st.moe->routing.rows[e].size());
  if (comm_.size() > 1) {  // every process's routed tokens
    const std::vector<dist::Bytes> counts = comm_.allgather(
        {reinterpret_cast<const char*>(tokens.data()), tokens.size() * sizeof(int64_t)});
    std::fill(tokens.begin(), tokens.end(), 0);
    for (const auto& b : counts)
      for (int64_t e = 0; e < experts; ++e) {
        int64_t t = 0;
        std::memcpy(&t, b.data() + e * sizeof(int64_t), sizeof t);
        tokens[e] += t;
      }
  }
  const int64_t min_tokens = moe_min_tokens();
  auto layer_of = [&](const std::string& tmpl, int64_t e) -> const QuantLayer* {
    const auto it = layers.find(expert_name(tmpl, e));
    return it == layers.end() ? nullptr : it->second;
  };
  for (int64_t e0 = 0; e0 < experts; e0 += chunk) {
    const int64_t e1 = std::min(experts, e0 + chunk);
    bf.load_experts(e0, e1);
    std::set<std::string> wanted;  // capture keys of the experts solved with GPTQ
    for (int64_t e = e0; e < e1; ++e)
      if (all || tokens[e] >= min_tokens) wanted.insert("expert." + std::to_string(e));
    dist::ChunkedHessians chunks(opt_.hessian_chunk);
    std::map<std::string, HessianAccumulator> acc;
    const CaptureSink sink = [&](const std::string& key, const float* rows, int64_t n,
                                 int64_t width) {
      if (!wanted.count(key.substr(0, key.rfind('.')))) return;
      chunks.add(key, rows, n, width);
      flops_ += static_cast<double>(n) * width * width;
    };
    std::map<std::string, std::vector<float>> hessians;
    std::vector<SolveJob> jobs;
    auto solve = [&](const std::string& tmpl, const char* kind) {
      for (int64_t e = e0; e < e1; ++e) {
        const QuantLayer* l = layer_of(tmpl, e);
        if (!l) continue;
        const std::string key = "expert." + std::to_string(e) + kind;
        SolveJob job;
        job.layer = l;
        job.bf = &bf;
        job.extra = {{"expert", e}, {"tokens", tokens[e]}};
        if (acc.count(key)) {
          if (!hessians.count(key)) hessians[key] = acc.at(key).finalize();
          job.hessian = &hessians.at(key);
        } else {
          job.extra["fallback"] = "rtn";
        }
        jobs.push_back(std::move(job));
      }
    };
    for (size_t s = 0; s < states.size(); ++s) {
      chunks.set_sequence(mine_.first + static_cast<int64_t>(s));
      bf.expert_inputs(states[s], e0, e1, sink);
    }
    acc = reduce_hessians(chunks);
    solve(moe.expert_gate, ".in");
    solve(moe.expert_up, ".in");
    solve_layers(jobs);
    jobs.clear();
    hessians.clear();
    acc.clear();
    for (size_t s = 0; s < states.size(); ++s) {
      chunks.set_sequence(mine_.first + static_cast<int64_t>(s));
      bf.expert_mids(states[s], e0, e1, sink);
    }
    acc = reduce_hessians(chunks);
    solve(moe.expert_down, ".mid");
    solve_layers(jobs);
    for (auto& st : states) bf.accumulate_experts(st, e0, e1);
    bf.release_experts(e0, e1);
  }
  for (auto& st : states) st.moe->experts_accumulated = true;
}

void QuantizeRun::quantize_block(int64_t b) {
  BlockOptions bo;
  bo.lazy_experts = true;  // MoE experts: loaded a chunk at a time
  bo.moe_capture_all = opt_.moe_calibration == MoeCalibration::kAll;
  BlockForward bf(cfg_, store_, b, bo);
  std::map<std::string, const QuantLayer*> layers;
  for (const QuantLayer* l : plan_.block_layers(b))
    if (l->quantize) layers[l->local_name] = l;
  auto stage_of = [&](const std::string& local) { return static_cast<int>(bf.group_of(local)); };
  auto is_expert = [&](const std::string& local) {
    return bf.capture_key(local).starts_with("expert.");
  };

  if (opt_.method == QuantMethod::kRtn || calib_.empty()) {
    std::vector<SolveJob> jobs;
    for (const QuantLayer* l : plan_.block_layers(b))
      if (l->quantize && !is_expert(l->local_name))
        jobs.push_back({l, nullptr, nullptr, &bf, nullptr});
    solve_layers(jobs);
    const int64_t chunk = std::max<int64_t>(1, opt_.moe_experts_per_chunk);
    for (int64_t e0 = 0; e0 < bf.num_experts(); e0 += chunk) {
      const int64_t e1 = std::min(bf.num_experts(), e0 + chunk);
      bf.load_experts(e0, e1);
      std::vector<SolveJob> expert_jobs;
      for (const QuantLayer* l : plan_.block_layers(b))
        if (l->quantize && is_expert(l->local_name)) {
          const std::string& key = bf.capture_key(l->local_name);
          const int64_t e = std::stoll(key.substr(7, key.rfind('.') - 7));
          if (e >= e0 && e < e1) expert_jobs.push_back({l, nullptr, nullptr, &bf, nullptr});
        }
      solve_layers(expert_jobs);
      bf.release_experts(e0, e1);
    }
    return;
  }

  // Sequential groups restricted to this block's quantized layers (suffix match, Optimum).
  std::vector<std::vector<std::string>> groups;
  std::set<std::string> grouped;
  for (const auto& g : plan_.sequential_groups) {
    std::vector<std::string> members;
    for (const QuantLayer* l : plan_.block_layers(b))
      if (l->quantize && !grouped.count(l->local_name) && !is_expert(l->local_name))
        for (const auto& suffix : g)
          if (l->name.ends_with(suffix)) {
            members.push_back(l->local_name);
            grouped.insert(l->local_name);
            break;
          }
    if (!members.empty()) groups.push_back(std::move(members));
  }
  if (bf.is_moe()) {
    // A MoE block runs stage by stage (the experts between kMlpIn and kMlpMid): groups that span
    // stages are split by stage. Groups of one stage are ordered by stage, which does not change
    // any Hessian (a layer only affects the inputs of later stages).
    std::vector<std::vector<std::string>> split;
    for (const auto& g : groups) {
      std::map<int, std::vector<std::string>> by_stage;
      for (const auto& l : g) by_stage[stage_of(l)].push_back(l);
      for (auto& [st, members] : by_stage) split.push_back(std::move(members));
    }
    std::stable_sort(split.begin(), split.end(),
                     [&](const auto& x, const auto& y) { return stage_of(x[0]) < stage_of(y[0]); });
    groups = std::move(split);
  }
  const std::vector<QuantPass> passes = plan_passes(groups, stage_of);
  bool experts_done = !bf.is_moe();

  const int64_t hidden = cfg_.hp.hidden;
  // This process's sequences in batches (batch_sequences), one state each.
  const std::vector<SequenceBatch> batches = batch_sequences(bf.is_moe());
  std::vector<SequenceState> states(batches.size());
  // The usual plan (every pass one stage, the stages in order) reads the block input once: the
  // sequences are then moved out of acts_ rather than copied (one [T, hidden] copy each less).
  bool read_once = true;
  for (int next = 0; const auto& pass : passes) {
    if (!pass.single_stage_groups || pass.first_stage < next) read_once = false;
    next = pass.last_stage + 1;
  }
  // One task per state: its buffer is allocated, zeroed and filled (fresh pages faulted in) on
  // the thread that runs the task, from its own slots of acts_.
  auto reset_states = [&] {
    parallel_for(static_cast<int64_t>(states.size()), [&](int64_t i) {
      const SequenceBatch& batch = batches[static_cast<size_t>(i)];
      SequenceState& st = states[static_cast<size_t>(i)];
      st.segments.clear();
      if (batch.count == 1) {
        st.tokens = acts_.values(batch.first) / hidden;
        st.resid = read_once ? acts_.take(batch.first) : acts_.get(batch.first);
        return;
      }
      st.tokens = 0;
      for (size_t s = batch.first; s < batch.first + batch.count; ++s) {
        st.segments.push_back(acts_.values(s) / hidden);
        st.tokens += st.segments.back();
      }
      st.resid.resize(static_cast<size_t>(st.tokens * hidden));
      float* dst = st.resid.data();
      for (size_t s = batch.first; s < batch.first + batch.count; ++s) {
        const auto n = static_cast<size_t>(acts_.values(s));
        if (read_once)
          std::copy_n(acts_.take(s).data(), n, dst);
        else
          acts_.get(s, dst);
        dst += n;
      }
    });
  };
  reset_states();
  int next_stage = 0;
  bool stale = false;
  // FLOPs of running stage s over a state: the linears of group s-1 (+ attention in stage 1).
  auto stage_flops = [&](int s, const SequenceState& st) {
    double f = 0;
    if (s >= 1)
      for (const auto& name : bf.group_linears(static_cast<LinearGroup>(s - 1))) {
        const auto [n, k] = bf.linear_dims(name);
        f += 2.0 * static_cast<double>(st.tokens) * static_cast<double>(n) * static_cast<double>(k);
      }
    if (s == 1)
      for_each_segment(st, [&](int64_t, int64_t len) {
        f += 2.0 * static_cast<double>(len) * static_cast<double>(len) * cfg_.hp.heads *
             cfg_.hp.head_dim;
      });
    return f;
  };
  for (const auto& pass : passes) {
    if (stale || pass.first_stage < next_stage) {
      reset_states();
      next_stage = 0;
    }
    // One Hessian per capture key (the linears reading the same rows share it), from the rows the
    // block reports to the sink.
    std::map<std::string, std::vector<float>> hessian_of_key;
    auto hessian_of = [&](const std::string& layer) -> const std::vector<float>* {
      return &hessian_of_key.at(bf.capture_key(layer));
    };
    while (next_stage <= pass.last_stage) {
      const int s = next_stage++;
      bool need = false;
      for (const auto& g : pass.groups)
        for (int st : g.stages) need |= st == s;
      dist::ChunkedHessians acc(opt_.hessian_chunk);
      std::set<std::string> wanted;  // the capture keys of this pass's layers
      for (const auto& g : pass.groups)
        for (const auto& name : g.layers) wanted.insert(bf.capture_key(name));
      CaptureSink sink;
      if (need)
        sink = [&](const std::string& key, const float* rows, int64_t n, int64_t width) {
          if (!wanted.count(key)) return;
          acc.add(key, rows, n, width);
          flops_ += static_cast<double>(n) * width * width;  // syrk: T K^2 (symmetric half)
        };
      for (size_t i = 0; i < states.size(); ++i) {
        acc.set_sequence(mine_.first + static_cast<int64_t>(batches[i].first),
                         static_cast<int64_t>(batches[i].count));
        bf.run_stage(static_cast<LinearGroup>(s), states[i], sink);
        flops_ += stage_flops(s, states[i]);
      }
      BlockForward::release_scratch();  // before the Hessians and the solves
      // Stage s applied group s-1's linears to every sequence for the last time in this block
      // (their solutions are written): their fp32 weights leave memory before the larger solves.
      if (read_once && s >= 1) bf.release_group(static_cast<LinearGroup>(s - 1));
      if (need)
        for (auto& [key, a] : reduce_hessians(acc)) hessian_of_key[key] = std::move(a).finalize();
      if (pass.single_stage_groups) {
        std::vector<SolveJob> jobs;
        for (const auto& g : pass.groups)
          if (g.stages[0] == s)
            for (const auto& name : g.layers)
              jobs.push_back({layers.at(name), hessian_of(name), nullptr, &bf, nullptr});
        solve_layers(jobs);
        // Solved: their Hessians (up to K^2 floats each) are not needed any more.
        for (const auto& job : jobs) hessian_of_key.erase(bf.capture_key(job.layer->local_name));
      }
      if (!experts_done && s == static_cast<int>(LinearGroup::kMlpIn)) {
        process_experts(bf, states, layers);
        experts_done = true;
      }
    }
    if (!pass.single_stage_groups) {
      std::vector<SolveJob> jobs;
      for (const auto& g : pass.groups)
        for (const auto& name : g.layers)
          jobs.push_back({layers.at(name), hessian_of(name), nullptr, &bf, nullptr});
      solve_layers(jobs);
      stale = true;
    }
  }
  // Block outputs with every layer quantized: the inputs of the next block.
  if (stale) {
    reset_states();
    next_stage = 0;
  }
  for (int s = next_stage; s < kNumLinearGroups; ++s) {
    if (!experts_done && s == static_cast<int>(LinearGroup::kMlpMid)) {
      process_experts(bf, states, layers);
      experts_done = true;
    }
    for (auto& st : states) {
      bf.run_stage(static_cast<LinearGroup>(s), st);
      flops_ += stage_flops(s, st);
    }
  }
  if (!experts_done) process_experts(bf, states, layers);
  // Each sequence's block output (the next block's input): its batch state and rows there.
  struct Output {
    SequenceState* st;
    size_t seq;
    int64_t r0, len;
  };
  std::vector<Output> outputs;
  std::vector<size_t> outputs_end;  // state i's outputs: [outputs_end[i - 1], outputs_end[i])
  for (size_t i = 0; i < states.size(); ++i) {
    size_t seq = batches[i].first;
    for_each_segment(states[i], [&](int64_t r0, int64_t len) {
      outputs.push_back({&states[i], seq++, r0, len});
    });
    outputs_end.push_back(outputs.size());
  }
  // They also go to the resume state's file of the next block's inputs as each batch finishes:
  // the disk writes them while the next batches compute, and the block's end
  // (save_block_activations) waits for the last batch only. Several processes gather theirs there.
  std::unique_ptr<ActivationFileWrite> next_inputs;
  if (comm_.size() == 1) {
    std::vector<int64_t> sizes;
    for (const Output& out : outputs) sizes.push_back(out.len * hidden);
    next_inputs = std::make_unique<ActivationFileWrite>(staging_, hidden, sizes, b + 1);
  }
  for (size_t i = 0; i < states.size(); ++i) {
    bf.finish(states[i]);
    flops_ += stage_flops(kNumLinearGroups, states[i]);
    if (!next_inputs) continue;
    const size_t begin = i == 0 ? 0 : outputs_end[i - 1];
    parallel_for(static_cast<int64_t>(outputs_end[i] - begin), [&](int64_t j) {
      const Output& out = outputs[begin + static_cast<size_t>(j)];
      next_inputs->write_sequence(out.seq, out.st->resid.data() + out.r0 * hidden);
    });
  }
  BlockForward::release_scratch();
  // The outputs into the store. One task per sequence: the checks, copies (fresh pages, faulted in
  // by the thread that writes them) and encodings run in parallel, each into its own slot.
  parallel_for(static_cast<int64_t>(outputs.size()), [&](int64_t o) {
    const Output& out = outputs[static_cast<size_t>(o)];
    const float* first = out.st->resid.data() + out.r0 * hidden;
    const float* last = first + out.len * hidden;
    if (!std::all_of(first, last, [](float v) { return std::isfinite(v); }))
      fail_code(ExitCode::kNumerical,
                "block {} produced a non-finite activation for calibration sequence {}: the "
                "model weights or the calibration data hold NaN/Inf",
                b, mine_.first + static_cast<int64_t>(out.seq));
    if (out.st->segments.empty())
      acts_.set(out.seq, std::move(out.st->resid));
    else
      acts_.set(out.seq, std::vector<float>(first, last));
  });
  for (auto& st : states) st.resid = {};
  next_inputs_ = std::move(next_inputs);
}

// acts-<blocks_done>.bin (run_state.h): every process's sequences, written by the first process.
void QuantizeRun::save_block_activations(int64_t blocks_done) {
  if (next_inputs_) {  // one process: written by quantize_block as the batches finished
    next_inputs_->commit();
    next_inputs_.reset();
    return;
  }
  const int64_t hidden = cfg_.hp.hidden;
  dist::Writer w;  // this process's sequences as stored (fp32, or 16 bits)
  for (size_t s = 0; s < acts_.size(); ++s) w.put_string(acts_.encode(s));
  if (!root()) moved_acts_ += w.bytes.size();
  const std::vector<dist::Bytes> all = comm_.gather(w.bytes, 0);
  dist::Bytes().swap(w.bytes);
  if (!root()) return;
  // Every sequence's bytes, in global order (the processes hold consecutive ranges).
  std::vector<std::pair<const char*, size_t>> seqs;
  for (const auto& b : all) {
    size_t pos = 0;
    while (pos < b.size()) {
      uint64_t n = 0;
      std::memcpy(&n, b.data() + pos, sizeof n);
      seqs.emplace_back(b.data() + pos + sizeof n, n);
      pos += sizeof n + n;
    }
  }
  if (seqs.size() != calib_.size())
    fail_code(ExitCode::kInternal, "gathered {} sequences' activations, expected {}", seqs.size(),
              calib_.size());
  const size_t bpv = acts_.bytes_per_value();
  std::vector<int64_t> sizes;
  for (const auto& [p, n] : seqs) sizes.push_back(static_cast<int64_t>(n / bpv));
  save_activations(
      staging_, hidden, sizes,
      [&](size_t s, std::vector<float>& scratch) {
        ActivationStore one(acts_.dtype());  // one per call: the calls run concurrently
        one.resize(1);
        one.decode(0, seqs[s].first, seqs[s].second);
        scratch.resize(static_cast<size_t>(one.values(0)));
        one.get(0, scratch.data());
        return static_cast<const float*>(scratch.data());
      },
      blocks_done);
}

// The inputs of block blocks_done of this process's sequences, from the first process's run state.
void QuantizeRun::load_block_activations() {
  if (comm_.size() == 1) {
    Activations all =
        load_activations(staging_, state_.blocks_done, cfg_.hp.hidden, calib_lengths());
    acts_.resize(all.seqs.size());
    for (size_t s = 0; s < all.seqs.size(); ++s) acts_.set(s, std::move(all.seqs[s]));
    return;
  }
  std::vector<dist::Bytes> parts;
  if (root()) {
    Activations all =
        load_activations(staging_, state_.blocks_done, cfg_.hp.hidden, calib_lengths());
    ActivationStore one(acts_.dtype());
    one.resize(1);
    for (int r = 0; r < comm_.size(); ++r) {
      const dist::Range range = dist::chunk_range(static_cast<int64_t>(calib_.size()),
                                                  opt_.hessian_chunk, r, comm_.size());
      dist::Writer w;
      for (int64_t s = range.first; s < range.last; ++s) {
        one.set(0, std::move(all.seqs[s]));
        w.put_string(one.encode(0));
      }
      parts.push_back(std::move(w.bytes));
    }
  }
  const dist::Bytes mine = comm_.scatter(parts, 0);
  parts.clear();
  dist::Reader rd(mine);
  acts_.resize(static_cast<size_t>(mine_.last - mine_.first));
  for (size_t s = 0; s < acts_.size(); ++s) {
    const std::vector<char> b = rd.get_array<char>();
    acts_.decode(s, b.data(), b.size());
  }
}

nlohmann::json QuantizeRun::quantization_config_json() const {
  QuantizationConfig q;
  q.bits = qc_.bits;
  q.group_size = qc_.group_size;
  q.desc_act = qc_.desc_act;
  q.sym = qc_.sym;
  q.static_groups = qc_.static_groups;
  q.true_sequential = opt_.true_sequential;
  q.act_group_aware = qc_.act_group_aware;
  q.damp_percent = qc_.damp_percent;
  q.format = opt_.effective_format();
  q.block_name_to_quantize = plan_.block_name;
  q.model_seqlen = seqlen_;
  q.dynamic = opt_.dynamic;
  q.lm_head = opt_.lm_head;
  // modules_in_block_to_quantize: the user's groups, or, when some layers stay float, exactly the
  // quantized ones (one per group, registration order), so loaders replace only those.
  // Over every block: MoE models mix dense and sparse blocks, and keep their routers float.
  bool all_quantized = true;
  std::vector<std::vector<std::string>> quantized;
  std::set<std::string> listed;
  for (const QuantLayer& l : plan_.layers) {
    if (l.block >= plan_.num_blocks) continue;  // the head: lm_head below
    all_quantized &= l.quantize;
    if (l.quantize && listed.insert(l.local_name).second) quantized.push_back({l.local_name});
  }
  if (!opt_.modules_in_block.empty())
    q.modules_in_block_to_quantize = opt_.modules_in_block;
  else if (!all_quantized)
    q.modules_in_block_to_quantize = quantized;
  q.meta = {{"quantizer", {"gptq.cpp:" GPTQ_VERSION}},
            {"method", opt_.method == QuantMethod::kGptq ? "gptq" : "rtn"},
            {"damp_auto_increment", qc_.damp_auto_increment},
            {"mse", qc_.mse_norm},
            {"calibration",
             {{"nsamples", calib_.size()}, {"seqlen", seqlen_}, {"seed", opt_.calib.seed}}}};
  if (!cfg_.hp.layer_moe.empty())
    q.meta["moe"] = {
        {"calibration", opt_.moe_calibration == MoeCalibration::kAll ? "all" : "routed"},
        {"min_tokens", moe_min_tokens()},
        {"fallback", "rtn"}};
  return q.to_json();
}

void QuantizeRun::finalize() {
  writer_->finish();
  nlohmann::json config = cfg_.raw;
  const nlohmann::json qcfg = quantization_config_json();
  config["quantization_config"] = qcfg;
  write_file_atomic(staging_ / "config.json", config.dump(2) + "\n");
  write_file_atomic(staging_ / "quantize_config.json", qcfg.dump(2) + "\n");
  copy_aux_files(model_dir_, staging_);
  RunState::remove_files(staging_);  // the owner marker stays until OUT is in place
  sync_directory(staging_);
  std::error_code ec;
  rename_no_replace(staging_, out_, ec);
  if (ec)
    fail_code(ExitCode::kIo,
              "cannot rename {} to {}: {}; {} (the finished output is in {}: run again with "
              "--resume, or rename it by hand)",
              staging_.string(), out_.string(), ec.message(), write_error_hint(ec.value()),
              staging_.string());
  run_staging_->finished(out_);
  sync_directory(out_.parent_path().empty() ? fs::path(".") : out_.parent_path());
}

void QuantizeRun::report_progress(int64_t blocks_done) {
  Progress p;
  p.stage = "quantize";
  p.done = blocks_done;
  p.total = plan_.num_blocks;
  p.note = blocks_done < plan_.num_blocks
               ? fmt::format("block {}/{}", blocks_done + 1, plan_.num_blocks)
               : "saving";
  if (cb_.progress && !cb_.progress(p)) cancelled();
}

void QuantizeRun::cancelled() const {
  fail_code(ExitCode::kInterrupted,
            "cancelled after {} of {} blocks; they are kept in {}: continue with --resume "
            "(resume=True), or delete "
            "it to start again",
            state_.blocks_done, plan_.num_blocks, staging_.string());
}

QuantizeSummary QuantizeRun::run() {
  const ComputeThreadsScope threads(opt_.threads);
  try {
    const StageClock::Stage load("load");
    setup();
    const StageClock::Stage copy("copy");
    copy_float_tensors();
  } catch (...) {
    discard_staging();
    throw;
  }
  {
    const StageClock::Stage forward("forward");
    if (!calib_.empty() && (!resume_ || state_.blocks_done == 0)) {
      // Block 0's inputs of this process's sequences (also when resuming a run stopped inside block
      // 0).
      const std::vector<TokenSequence> mine(calib_.begin() + mine_.first,
                                            calib_.begin() + mine_.last);
      std::vector<std::vector<float>> e = embed_sequences(cfg_, store_, mine);
      acts_.resize(e.size());
      for (size_t s = 0; s < e.size(); ++s) acts_.set(s, std::move(e[s]));
    }
  }
  for (int64_t b = state_.blocks_done; b < plan_.num_blocks; ++b) {
    report_progress(b);
    const Stopwatch block_clock;
    const uint64_t h0 = moved_hessians_, a0 = moved_acts_, s0 = moved_solutions_;
    {
      const StageClock::Stage forward("forward");
      quantize_block(b);
    }
    const StageClock::Stage write("write");
    if (writer_) writer_->sync();
#if defined(__GLIBC__)
    // The block's buffers are freed; glibc keeps freed heap memory for reuse unless asked: give it
    // back, so that the resident set between blocks is what the next block holds.
    malloc_trim(0);
#endif
    if (!calib_.empty()) save_block_activations(b + 1);
    state_.blocks_done = b + 1;
    if (root()) {
      state_.written = writer_->checksums();
      state_.save(staging_);
      if (!calib_.empty()) remove_activations_except(staging_, b + 1);
    }
    if (comm_.size() > 1) {
      // The block is durable before any process goes on; the bytes every process sent, in total.
      const uint64_t mine[3] = {moved_hessians_ - h0, moved_acts_ - a0, moved_solutions_ - s0};
      uint64_t total[3] = {0, 0, 0};
      for (const auto& m : comm_.allgather({reinterpret_cast<const char*>(mine), sizeof mine}))
        for (int i = 0; i < 3; ++i) {
          uint64_t v = 0;
          std::memcpy(&v, m.data() + i * sizeof v, sizeof v);
          total[i] += v;
        }
      log(fmt::format(
          "block {}: {:.2f} s on {} processes; sent between them: Hessians {:.2f} MB, activations "
          "{:.2f} "
          "MB, solutions {:.2f} MB",
          b, block_clock.seconds(), comm_.size(), total[0] / 1e6, total[1] / 1e6, total[2] / 1e6));
    }
  }
  report_progress(plan_.num_blocks);
  if (opt_.lm_head) quantize_lm_head();
  if (root()) {
    const StageClock::Stage write("write");
    finalize();
  }

  QuantizeResult& r = summary_.result;
  r.model = model_dir_.string();
  r.output = out_.string();
  r.block_name = plan_.block_name;
  r.num_blocks = plan_.num_blocks;
  for (const auto& l : state_.layers) r.layers.push_back(layer_record_from_json(l));
  for (const auto& l : plan_.layers) r.layers_quantized += l.quantize;
  r.calibration_sequences = static_cast<int64_t>(calib_.size());
  r.calibration_seqlen = seqlen_;
  if (writer_) r.output_files = writer_->file_names();
  r.threads = compute_threads();
  r.seconds = clock_.seconds();
  r.peak_rss_bytes = peak_rss_bytes();
  r.gflop = flops_ / 1e9;
  r.gflops_per_second = flops_ / 1e9 / std::max(r.seconds, 1e-9);
  for (const auto& t : stages_.totals())
    r.stages.push_back({t.name, t.wall_seconds, t.cpu_seconds});
  r.options_json = json_output(options_json(opt_));
  r.quantization_config_json = json_output(quantization_config_json());
  add_loader_report(r, opt_, plan_);
  summary_.report = quantize_report_json(r);
  return std::move(summary_);
}

}  // namespace

ConvertOptions convert_options(const QuantizeOptions& o, const DynamicOverrides* dynamic) {
  ConvertOptions co;
  co.bits = o.quant.bits;
  co.group_size = o.quant.group_size;
  co.block_name = o.block_name;
  co.modules_in_block = o.modules_in_block;
  co.allow_unaligned = o.allow_unaligned;
  co.true_sequential = o.true_sequential;
  co.dynamic = dynamic;
  co.lm_head = o.lm_head;
  co.zero_bias = o.zero_bias;
  return co;
}

QuantizeSummary quantize_model(const fs::path& model_dir, const fs::path& out_dir,
                               const QuantizeOptions& options, const Callbacks& callbacks) {
  QuantizeRun run(model_dir, out_dir, options, callbacks);
  return run.run();
}

QuantizeSummary quantize_model(const fs::path& model_dir, const fs::path& out_dir,
                               const QuantizeOptions& options,
                               const std::function<void(const std::string&)>& log) {
  Callbacks cb;
  cb.log = log;
  return quantize_model(model_dir, out_dir, options, cb);
}

}  // namespace gptq
