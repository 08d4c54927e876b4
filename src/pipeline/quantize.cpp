#include "pipeline/quantize.h"

#include <fmt/core.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "calib/tokenizer.h"
#include "io/json_reader.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/convert.h"
#include "model/dynamic_overrides.h"
#include "model/loader_compat.h"
#include "model/quantization_config.h"
#include "nn/block_forward.h"
#include "model/model_config.h"
#include "nn/norm.h"
#include "nn/weight_loader.h"
#include "pipeline/calibration_inputs.h"
#include "pipeline/output_layout.h"
#include "pipeline/run_staging.h"
#include "pipeline/run_state.h"
#include "pipeline/run_state_check.h"
#include "pipeline/sequential_plan.h"
#include "quant/gptq.h"
#include "quant/pack.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/system_error.h"
#include "util/fp16.h"
#include "util/hash.h"
#include "pipeline/quantize_report.h"
#include "util/progress.h"
#include "util/stage_clock.h"
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
          {"lm_head", o.lm_head}};
}

// Totals of the layers' zero points of 0, and what a loader makes of the output.
void add_loader_report(QuantizeResult& r, const QuantizeOptions& o, const ModelPlan& plan) {
  for (const auto& l : r.layers) {
    r.zero_point_0_groups += l.zero_point_0_groups;
    r.layers_with_zero_point_0 += l.zero_point_0_groups > 0;
  }
  r.loader_warnings = plan.loader_warnings;
  if (o.effective_format() == CheckpointFormat::kGptqV2) r.loader_warnings.push_back(gptq_v2_readers_note());
  if (o.effective_format() == CheckpointFormat::kGptq && r.zero_point_0_groups > 0)
    r.loader_warnings.push_back(fmt::format("{} zero points of 0 in {} layers: {}", r.zero_point_0_groups,
                                            r.layers_with_zero_point_0, v1_zero_point_0_note()));
}

std::string fingerprint_of(const ModelConfig& cfg, const TensorStore& store, const nlohmann::json& options,
                           const std::vector<TokenSequence>& calib) {
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
    if (e.is_regular_file() && p.extension() == ".safetensors" && !fs::exists(p.string() + ".partial"))
      fs::rename(p, p.string() + ".partial", ec);
    if (ec)
      fail_code(ExitCode::kIo, "cannot rename {} back to {}.partial to resume: {}", p.string(), p.string(),
                ec.message());
  }
}

// NaN/Inf in a checkpoint tensor (F32/F16/BF16 bit patterns): the input is damaged.
void require_finite(const TensorInfo& t) {
  auto bad = [&](size_t i) {
    fail("tensor '{}' holds a non-finite value (NaN or Inf) at element {}: the checkpoint is damaged or was "
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
  static const std::set<std::string> skip{"config.json", "model.safetensors.index.json", "README.md",
                                          "quantize_config.json", "quant_config.json"};
  for (const auto& e : fs::directory_iterator(model_dir)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    const std::string ext = e.path().extension().string();
    if (skip.count(name) || ext == ".safetensors" || ext == ".bin" || ext == ".pt" || ext == ".pth" ||
        ext == ".gguf" || ext == ".partial" || name.ends_with(".index.json"))
      continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_file_atomic(staging / name, bytes);
  }
}

class QuantizeRun {
 public:
  QuantizeRun(const fs::path& model_dir, const fs::path& out, const QuantizeOptions& opt, const Callbacks& cb)
      : model_dir_(model_dir), out_(out), staging_(out.string() + ".partial"), opt_(opt), cb_(cb) {}

  QuantizeSummary run();

 private:
  void discard_staging();
  void validate_blocks() const;
  void setup();
  void copy_float_tensors();
  void quantize_block(int64_t b);
  nlohmann::json quantize_layer(const QuantLayer& layer, BlockForward& bf, const std::vector<float>* hessian,
                                const nlohmann::json& extra = nullptr);
  nlohmann::json quantize_matrix(const QuantLayer& layer, const std::vector<float>& w, const std::vector<float>* hessian,
                                 const nlohmann::json& extra, std::vector<float>* dequantized);
  void quantize_lm_head();
  void process_experts(BlockForward& bf, std::vector<SequenceState>& states,
                       const std::map<std::string, const QuantLayer*>& layers);
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
  Activations acts_;
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
    fail("{}: num_hidden_layers is {} but the checkpoint has {} blocks in '{}': config.json and the weights do not "
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
      nn::check_linear_weight(store_, bf.prefix() + local + ".weight", arch.linear_kind(local), n, k);
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
  // Early, before any expensive work: an existing output, a foreign or busy OUT.partial, a
  // read-only or full output location fail here.
  run_staging_ = std::make_unique<RunStaging>(model_dir_, out_, opt_.resume, cb_.log);
  resume_ = run_staging_->resuming();
  durable_ = resume_;
  cfg_ = ModelConfig::load(model_dir_);
  cfg_.require_arch();
  if (cfg_.is_quantized())
    fail("{} is already a quantized checkpoint (config.json has quantization_config); quantize the float model",
         model_dir_.string());
  store_ = TensorStore::open(model_dir_);
  ConvertOptions co;
  co.bits = qc_.bits;
  co.group_size = qc_.group_size;
  co.block_name = opt_.block_name;
  co.modules_in_block = opt_.modules_in_block;
  co.allow_unaligned = opt_.allow_unaligned;
  co.true_sequential = opt_.true_sequential;
  dynamic_ = DynamicOverrides(opt_.dynamic, "--dynamic");
  co.dynamic = &dynamic_;
  co.lm_head = opt_.lm_head;
  co.zero_bias = opt_.zero_bias;
  plan_ = convert_model(cfg_, store_, co);
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
      fail_code(ExitCode::kUsage, "--calib FILE is required for GPTQ (a text file, .jsonl or pre-tokenized .json; "
                "the API's dataset: such a file, texts or token-id lists)");
    CalibOptions c = opt_.calib;
    c.seqlen = seqlen_;
    c.max_positions = cfg_.hp.max_positions;
    c.hidden_size = cfg_.hp.hidden;
    std::unique_ptr<Tokenizer> tok;
    if (c.sequences.empty() && c.file.extension() != ".json") tok = Tokenizer::from_model_dir(model_dir_);
    calib_ = load_calibration(c, tok.get(), cfg_.hp.vocab);
  }
  layout_ = make_output_layout(store_, plan_, opt_.zero_bias);
  const std::string fp = fingerprint_of(cfg_, store_, options_json(opt_), calib_);
  const nlohmann::json inputs = input_file_hashes(store_);  // the content, not just names and shapes
  std::vector<std::string> done_tensors;                    // in the shards already (resume)
  if (resume_) {
    state_ = *RunState::load(staging_);
    check_input_files(state_, inputs, model_dir_, staging_);
    if (state_.fingerprint != fp)
      fail_code(ExitCode::kUsage, "--resume: the interrupted run in {} was made with another model, calibration or "
                "options (fingerprint {} != {}); rerun with the same arguments, or delete it to start again",
                staging_.string(), state_.fingerprint, fp);
    if (state_.copied) done_tensors = layout_.copied;
    for (const auto& l : plan_.layers)
      if (l.quantize && l.block < state_.blocks_done) {
        for (const char* s : {".qweight", ".qzeros", ".scales", ".g_idx"}) done_tensors.push_back(l.name + s);
        if (l.has_bias || opt_.zero_bias) done_tensors.push_back(l.name + ".bias");
      }
    check_run_state(state_, plan_, done_tensors, staging_);
    if (!calib_.empty() && state_.blocks_done > 0 && (state_.blocks_done < plan_.num_blocks || opt_.lm_head)) {
      std::vector<int64_t> tokens;
      for (const auto& c : calib_) tokens.push_back(static_cast<int64_t>(c.size()));
      acts_ = load_activations(staging_, state_.blocks_done, cfg_.hp.hidden, tokens);
    }
    unfinish_shards(staging_);
  } else {
    state_.fingerprint = fp;
    state_.inputs = inputs;
  }
  SafetensorsWriter::Options wo;
  wo.max_shard_bytes = opt_.max_shard_bytes;
  wo.metadata = {{"format", "pt"}, {"quantizer", "gptq.cpp " GPTQ_VERSION}};
  wo.keep_partial = true;
  wo.resume = resume_;
  writer_ = std::make_unique<SafetensorsWriter>(staging_, layout_.specs, wo);
  // What the interrupted run wrote is checked against its checksums (a truncated or modified
  // shard is refused, naming it).
  for (const auto& n : done_tensors) writer_->adopt_written(n, state_.written.at(n).get<std::string>());
  if (resume_) log(fmt::format("resuming: {} of {} blocks already done", state_.blocks_done, plan_.num_blocks));
}

void QuantizeRun::copy_float_tensors() {
  if (state_.copied) return;
  for (const auto& n : layout_.copied) {
    const auto& t = store_.get(n);
    require_finite(t);
    writer_->write(n, t.data, t.nbytes);
  }
  writer_->sync();
  state_.copied = true;
  state_.written = writer_->checksums();
  state_.save(staging_);
  durable_ = true;
}

nlohmann::json QuantizeRun::quantize_layer(const QuantLayer& layer, BlockForward& bf,
                                           const std::vector<float>* hessian, const nlohmann::json& extra) {
  std::vector<float> deq;
  nlohmann::json rec = quantize_matrix(layer, bf.weight(layer.local_name), hessian, extra, &deq);
  // The next layers see what a loader will compute: fp16 scales times (code - zero).
  bf.set_weight(layer.local_name, std::move(deq));
  return rec;
}

// The output head from the final-norm activations of the calibration sequences (the outputs of
// the last block), as GPTQModel's lm_head=True.
void QuantizeRun::quantize_lm_head() {
  const QuantLayer& l = plan_.layers.back();
  const ArchSpec& arch = cfg_.require_arch();
  const ModelLayout names = model_layout(cfg_, [&](const std::string& n) { return store_.find(n) != nullptr; });
  const int64_t hidden = cfg_.hp.hidden;
  const nn::Norm norm = nn::load_norm(store_, names.final_norm, arch.norm, hidden, static_cast<float>(cfg_.hp.norm_eps));
  const std::vector<float> w = nn::load_linear_weight(store_, l.name + ".weight", LinearKind::kLinear,
                                                      l.out_features, l.in_features);
  std::vector<float> h;
  if (opt_.method == QuantMethod::kGptq && !calib_.empty()) {
    HessianAccumulator acc(hidden);
    std::vector<float> normed;
    for (const auto& x : acts_.seqs) {
      const int64_t t = static_cast<int64_t>(x.size()) / hidden;
      normed.resize(x.size());
      norm.apply(x.data(), t, normed.data());
      acc.add(normed.data(), t, 1);
    }
    h = acc.finalize();
  }
  state_.layers.push_back(quantize_matrix(l, w, h.empty() ? nullptr : &h, nullptr, nullptr));
}

nlohmann::json QuantizeRun::quantize_matrix(const QuantLayer& layer, const std::vector<float>& w,
                                            const std::vector<float>* hessian, const nlohmann::json& extra,
                                            std::vector<float>* dequantized) {
  Stopwatch sw;
  const int64_t n = layer.out_features, k = layer.in_features;
  const QuantConfig lqc = dynamic_.resolve(layer.name, qc_);  // this layer's settings
  const GptqResult r = [&] {
    const StageClock::Stage stage("solve");
    return hessian ? gptq_quantize(w.data(), n, k, hessian->data(), static_cast<int64_t>(calib_.size()), lqc,
                                   layer.name)
                   : rtn_quantize(w.data(), n, k, lqc);
  }();
  // Cholesky K^3/3, inverse (trsm + syrk) 2K^3, Cholesky K^3/3; error feedback 2NK^2 / 2.
  if (hessian) flops_ += (8.0 / 3.0) * static_cast<double>(k) * k * k + static_cast<double>(n) * k * k;
  std::optional<StageClock::Stage> stage(std::in_place, "pack");
  const PackedLinear p = [&] {
    try {
      return pack_linear(r.codes.data(), r.scales.data(), r.zeros.data(), r.g_idx.data(), n, k, r.groups, lqc.bits,
                         lqc.group_size, opt_.effective_format());
    } catch (const Error& e) {
      throw Error(fmt::format("layer {}: {}", layer.name, e.what()), e.code());  // name the layer
    }
  }();
  stage.emplace("write");
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
  if (dequantized) {
    // The next layers see what a loader will compute: fp16 scales times (code - zero).
    stage.emplace("pack");
    *dequantized = dequantize_linear(p);
  }
  stage.reset();
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
  if (extra.is_object() && extra.contains("expert")) {
    rec.expert = extra.at("expert").get<int64_t>();
    rec.tokens = extra.at("tokens").get<int64_t>();
    rec.rtn_fallback = extra.contains("fallback");
  }
  rec.seconds = sw.seconds();
  if (cb_.layer && !cb_.layer(rec)) cancelled();
  return layer_record_json(rec);
}

int64_t QuantizeRun::moe_min_tokens() const {
  if (opt_.moe_min_tokens >= 0) return opt_.moe_min_tokens;
  int64_t total = 0;
  for (const auto& s : calib_) total += static_cast<int64_t>(s.size());
  return std::max<int64_t>(1, (total + 999) / 1000);
}

// The experts of a sparse MoE block, a chunk at a time (their fp32 weights, Hessians and routed rows
// only for that chunk): gate/up from the rows routed to each expert (or every row with
// --moe-calibration all), then down from their mids, then the weighted outputs are accumulated into
// each sequence's MoE output. An expert with too few routed tokens is rounded to nearest.
void QuantizeRun::process_experts(BlockForward& bf, std::vector<SequenceState>& states,
                                  const std::map<std::string, const QuantLayer*>& layers) {
  const MoeLayout& moe = cfg_.require_arch().moe;
  const int64_t experts = bf.num_experts(), chunk = std::max<int64_t>(1, opt_.moe_experts_per_chunk);
  const bool all = opt_.moe_calibration == MoeCalibration::kAll;
  std::vector<int64_t> tokens(static_cast<size_t>(experts), 0);
  for (const auto& st : states)
    for (int64_t e = 0; e < experts; ++e) tokens[e] += static_cast<int64_t>(st.moe->routing.rows[e].size());
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
    std::map<std::string, std::unique_ptr<HessianAccumulator>> acc;
    const CaptureSink sink = [&](const std::string& key, const float* rows, int64_t n, int64_t width) {
      if (!wanted.count(key.substr(0, key.rfind('.')))) return;
      auto& a = acc[key];
      if (!a) a = std::make_unique<HessianAccumulator>(width);
      a->add(rows, n, 1);
      flops_ += static_cast<double>(n) * width * width;
    };
    auto solve = [&](const std::string& tmpl, const char* kind) {
      for (int64_t e = e0; e < e1; ++e) {
        const QuantLayer* l = layer_of(tmpl, e);
        if (!l) continue;
        const std::string key = "expert." + std::to_string(e) + kind;
        nlohmann::json extra = {{"expert", e}, {"tokens", tokens[e]}};
        std::vector<float> h;
        if (acc.count(key)) h = acc.at(key)->finalize();
        else extra["fallback"] = "rtn";
        state_.layers.push_back(quantize_layer(*l, bf, h.empty() ? nullptr : &h, extra));
      }
    };
    for (const auto& st : states) bf.expert_inputs(st, e0, e1, sink);
    solve(moe.expert_gate, ".in");
    solve(moe.expert_up, ".in");
    acc.clear();
    for (auto& st : states) bf.expert_mids(st, e0, e1, sink);
    solve(moe.expert_down, ".mid");
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
  auto is_expert = [&](const std::string& local) { return bf.capture_key(local).starts_with("expert."); };

  if (opt_.method == QuantMethod::kRtn || calib_.empty()) {
    for (const QuantLayer* l : plan_.block_layers(b))
      if (l->quantize && !is_expert(l->local_name)) state_.layers.push_back(quantize_layer(*l, bf, nullptr));
    const int64_t chunk = std::max<int64_t>(1, opt_.moe_experts_per_chunk);
    for (int64_t e0 = 0; e0 < bf.num_experts(); e0 += chunk) {
      const int64_t e1 = std::min(bf.num_experts(), e0 + chunk);
      bf.load_experts(e0, e1);
      for (const QuantLayer* l : plan_.block_layers(b))
        if (l->quantize && is_expert(l->local_name)) {
          const std::string& key = bf.capture_key(l->local_name);
          const int64_t e = std::stoll(key.substr(7, key.rfind('.') - 7));
          if (e >= e0 && e < e1) state_.layers.push_back(quantize_layer(*l, bf, nullptr));
        }
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
  std::vector<SequenceState> states(calib_.size());
  auto reset_states = [&] {
    for (size_t s = 0; s < states.size(); ++s) {
      states[s].tokens = static_cast<int64_t>(acts_.seqs[s].size()) / hidden;
      states[s].resid = acts_.seqs[s];
    }
  };
  reset_states();
  int next_stage = 0;
  bool stale = false;
  // FLOPs of running stage s over T tokens: the linears of group s-1 (+ attention in stage 1).
  auto stage_flops = [&](int s, int64_t T) {
    double f = 0;
    if (s >= 1)
      for (const auto& name : bf.group_linears(static_cast<LinearGroup>(s - 1))) {
        const auto [n, k] = bf.linear_dims(name);
        f += 2.0 * static_cast<double>(T) * static_cast<double>(n) * static_cast<double>(k);
      }
    if (s == 1) f += 2.0 * static_cast<double>(T) * static_cast<double>(T) * cfg_.hp.heads * cfg_.hp.head_dim;
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
      std::map<std::string, std::unique_ptr<HessianAccumulator>> acc;
      std::set<std::string> wanted;  // the capture keys of this pass's layers
      for (const auto& g : pass.groups)
        for (const auto& name : g.layers) wanted.insert(bf.capture_key(name));
      CaptureSink sink;
      if (need)
        sink = [&](const std::string& key, const float* rows, int64_t n, int64_t width) {
          if (!wanted.count(key)) return;
          auto& a = acc[key];
          if (!a) a = std::make_unique<HessianAccumulator>(width);
          a->add(rows, n, 1);
          flops_ += static_cast<double>(n) * width * width;  // syrk: T K^2 (symmetric half)
        };
      for (auto& st : states) {
        bf.run_stage(static_cast<LinearGroup>(s), st, sink);
        flops_ += stage_flops(s, st.tokens);
      }
      for (auto& [key, a] : acc) hessian_of_key[key] = a->finalize();
      if (pass.single_stage_groups) {
        for (const auto& g : pass.groups)
          if (g.stages[0] == s)
            for (const auto& name : g.layers) state_.layers.push_back(quantize_layer(*layers.at(name), bf, hessian_of(name)));
      }
      if (!experts_done && s == static_cast<int>(LinearGroup::kMlpIn)) {
        process_experts(bf, states, layers);
        experts_done = true;
      }
    }
    if (!pass.single_stage_groups) {
      for (const auto& g : pass.groups)
        for (const auto& name : g.layers) state_.layers.push_back(quantize_layer(*layers.at(name), bf, hessian_of(name)));
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
      flops_ += stage_flops(s, st.tokens);
    }
  }
  if (!experts_done) process_experts(bf, states, layers);
  for (auto& st : states) {
    bf.finish(st);
    flops_ += stage_flops(kNumLinearGroups, st.tokens);
  }
  for (size_t s = 0; s < states.size(); ++s) {
    for (float v : states[s].resid)
      if (!std::isfinite(v))
        fail_code(ExitCode::kNumerical, "block {} produced a non-finite activation for calibration sequence {}: the "
                  "model weights or the calibration data hold NaN/Inf",
                  b, s);
    acts_.seqs[s] = std::move(states[s].resid);
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
  if (!opt_.modules_in_block.empty()) q.modules_in_block_to_quantize = opt_.modules_in_block;
  else if (!all_quantized) q.modules_in_block_to_quantize = quantized;
  q.meta = {{"quantizer", {"gptq.cpp:" GPTQ_VERSION}},
            {"method", opt_.method == QuantMethod::kGptq ? "gptq" : "rtn"},
            {"damp_auto_increment", qc_.damp_auto_increment},
            {"mse", qc_.mse_norm},
            {"calibration", {{"nsamples", calib_.size()}, {"seqlen", seqlen_}, {"seed", opt_.calib.seed}}}};
  if (!cfg_.hp.layer_moe.empty())
    q.meta["moe"] = {{"calibration", opt_.moe_calibration == MoeCalibration::kAll ? "all" : "routed"},
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
    fail_code(ExitCode::kIo, "cannot rename {} to {}: {}; {} (the finished output is in {}: run again with --resume, or rename it by hand)",
              staging_.string(), out_.string(), ec.message(), write_error_hint(ec.value()), staging_.string());
  run_staging_->finished(out_);
  sync_directory(out_.parent_path().empty() ? fs::path(".") : out_.parent_path());
}

void QuantizeRun::report_progress(int64_t blocks_done) {
  Progress p;
  p.stage = "quantize";
  p.done = blocks_done;
  p.total = plan_.num_blocks;
  p.note = blocks_done < plan_.num_blocks ? fmt::format("block {}/{}", blocks_done + 1, plan_.num_blocks) : "saving";
  if (cb_.progress && !cb_.progress(p)) cancelled();
}

void QuantizeRun::cancelled() const {
  fail_code(ExitCode::kInterrupted,
            "cancelled after {} of {} blocks; they are kept in {}: continue with --resume (resume=True), or delete "
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
      // Block 0's inputs (also when resuming a run stopped inside block 0).
      acts_.hidden = cfg_.hp.hidden;
      acts_.seqs = embed_sequences(cfg_, store_, calib_);
    } else if (calib_.empty()) {
      acts_.hidden = cfg_.hp.hidden;
    }
  }
  for (int64_t b = state_.blocks_done; b < plan_.num_blocks; ++b) {
    report_progress(b);
    {
      const StageClock::Stage forward("forward");
      quantize_block(b);
    }
    const StageClock::Stage write("write");
    writer_->sync();
    if (!calib_.empty()) save_activations(staging_, acts_, b + 1);
    state_.blocks_done = b + 1;
    state_.written = writer_->checksums();
    state_.save(staging_);
    if (!calib_.empty()) remove_activations_except(staging_, b + 1);
  }
  report_progress(plan_.num_blocks);
  if (opt_.lm_head) quantize_lm_head();
  {
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
  r.output_files = writer_->file_names();
  r.threads = compute_threads();
  r.seconds = clock_.seconds();
  r.peak_rss_bytes = peak_rss_bytes();
  r.gflop = flops_ / 1e9;
  r.gflops_per_second = flops_ / 1e9 / std::max(r.seconds, 1e-9);
  for (const auto& t : stages_.totals()) r.stages.push_back({t.name, t.wall_seconds, t.cpu_seconds});
  r.options_json = json_output(options_json(opt_));
  r.quantization_config_json = json_output(quantization_config_json());
  add_loader_report(r, opt_, plan_);
  summary_.report = quantize_report_json(r);
  return std::move(summary_);
}

}  // namespace

QuantizeSummary quantize_model(const fs::path& model_dir, const fs::path& out_dir, const QuantizeOptions& options,
                               const Callbacks& callbacks) {
  QuantizeRun run(model_dir, out_dir, options, callbacks);
  return run.run();
}

QuantizeSummary quantize_model(const fs::path& model_dir, const fs::path& out_dir, const QuantizeOptions& options,
                               const std::function<void(const std::string&)>& log) {
  Callbacks cb;
  cb.log = log;
  return quantize_model(model_dir, out_dir, options, cb);
}

}  // namespace gptq
