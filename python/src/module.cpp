// gptqcpp._core: the public C++ API (include/gptq/) for Python. The GIL is released during every
// long call; callbacks take it back, and also poll Python's signal handlers, so Ctrl-C cancels a
// call at its next callback (gptq::Error kInterrupted, raised as gptqcpp.Interrupted, a
// KeyboardInterrupt). A Python exception raised by a callback cancels the call and is re-raised.
// gptq::Error becomes the gptqcpp exception of its exit-code class, with the same message.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gptq/gptq.h"

namespace py = pybind11;

namespace {

// Runs Python callbacks for a C++ call that released the GIL: the first Python exception (from a
// callback or from Python's signal handlers) is kept, the call is cancelled (the callback returns
// false), and rethrow() raises it once the call has unwound.
class PyCallbacks {
 public:
  // fn() with the GIL held; false if it raised or a signal handler did.
  template <class F>
  bool call(F&& fn) {
    py::gil_scoped_acquire gil;
    if (error_) return false;
    try {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      return fn();
    } catch (py::error_already_set& e) {
      error_ = std::make_unique<py::error_already_set>(std::move(e));
      return false;
    } catch (const std::exception& e) {  // e.g. a callback's value that does not convert
      PyErr_SetString(PyExc_RuntimeError, e.what());
      error_ = std::make_unique<py::error_already_set>();
      return false;
    }
  }
  void rethrow() {
    if (error_) {
      py::error_already_set e = std::move(*error_);
      error_.reset();
      throw e;
    }
  }

 private:
  std::unique_ptr<py::error_already_set> error_;
};

// A callback's answer: None or a true value continues, a false one cancels.
bool continues(const py::object& r) {
  if (r.is_none()) return true;
  const int truth = PyObject_IsTrue(r.ptr());
  if (truth < 0) throw py::error_already_set();
  return truth == 1;
}

// Runs `body` without the GIL; a cancellation caused by a Python exception re-raises it.
template <class F>
auto without_gil(PyCallbacks& cbs, F&& body) -> decltype(body()) {
  try {
    py::gil_scoped_release release;
    return body();
  } catch (const gptq::Error& e) {
    cbs.rethrow();
    throw;
  }
}

gptq::Callbacks make_callbacks(PyCallbacks& cbs, const py::object& on_progress,
                               const py::object& on_layer, const py::object& on_log) {
  gptq::Callbacks cb;
  cb.progress = [&cbs, on_progress](const gptq::Progress& p) {
    return cbs.call([&] {
      if (on_progress.is_none()) return true;
      const py::object r = on_progress(p.stage, p.done, p.total, p.note);
      return continues(r);
    });
  };
  cb.layer = [&cbs, on_layer](const gptq::LayerRecord& l) {
    return cbs.call([&] {
      if (on_layer.is_none()) return true;
      const py::object r = on_layer(l);
      return continues(r);
    });
  };
  cb.log = [&cbs, on_log](const std::string& line) {
    cbs.call([&] {
      if (!on_log.is_none()) on_log(line);
      return true;
    });
  };
  return cb;
}

// A value of the params dict, converted; a wrong type is a usage error naming the key.
template <class T>
void take(py::dict& d, const char* key, T& out) {
  if (!d.contains(key)) return;
  const py::object v = d[key];
  PyDict_DelItemString(d.ptr(), key);
  if (v.is_none()) return;
  try {
    out = v.cast<T>();
  } catch (const py::cast_error&) {
    throw gptq::Error(std::string(key) + ": unexpected value " + py::repr(v).cast<std::string>(),
                      gptq::ExitCode::kUsage);
  }
}

gptq::QuantizeParams to_params(py::dict d) {
  gptq::QuantizeParams p;
  take(d, "bits", p.bits);
  take(d, "group_size", p.group_size);
  take(d, "damp_percent", p.damp_percent);
  take(d, "desc_act", p.desc_act);
  take(d, "sym", p.sym);
  take(d, "true_sequential", p.true_sequential);
  take(d, "static_groups", p.static_groups);
  int64_t seqlen = 0;
  take(d, "model_seqlen", seqlen);
  if (seqlen != 0) p.model_seqlen = seqlen;
  take(d, "block_name_to_quantize", p.block_name_to_quantize);
  take(d, "modules_in_block_to_quantize", p.modules_in_block_to_quantize);
  take(d, "dataset_path", p.dataset.path);
  take(d, "dataset_texts", p.dataset.texts);
  take(d, "dataset_token_ids", p.dataset.token_ids);
  take(d, "nsamples", p.nsamples);
  take(d, "seed", p.seed);
  take(d, "checkpoint_format", p.checkpoint_format);
  take(d, "threads", p.threads);
  take(d, "method", p.method);
  take(d, "damp_auto_increment", p.damp_auto_increment);
  take(d, "act_group_aware", p.act_group_aware);
  take(d, "mse", p.mse);
  take(d, "allow_unaligned", p.allow_unaligned);
  take(d, "zero_bias", p.zero_bias);
  take(d, "max_shard_size", p.max_shard_size);
  take(d, "batch_size", p.batch_size);
  take(d, "resume", p.resume);
  take(d, "lm_head", p.lm_head);
  take(d, "moe_calibration", p.moe_calibration);
  take(d, "moe_min_tokens", p.moe_min_tokens);
  take(d, "moe_experts_per_chunk", p.moe_experts_per_chunk);
  take(d, "hessian_chunk", p.hessian_chunk);
  take(d, "batch_rows", p.batch_rows);
  take(d, "activation_dtype", p.activation_dtype);
  if (d.contains("dynamic")) {  // a dict (GPTQModel's form) or its JSON text
    const py::object v = d["dynamic"];
    p.dynamic = py::isinstance<py::str>(v) ? v.cast<std::string>()
                                           : py::module_::import("json").attr("dumps")(v).cast<std::string>();
    PyDict_DelItemString(d.ptr(), "dynamic");
  }
  for (const auto& item : d)
    throw gptq::Error("unknown quantization option '" + item.first.cast<std::string>() + "'",
                      gptq::ExitCode::kUsage);
  return p;
}

// Token ids from a Python sequence (list, tuple, numpy array) of ints.
std::vector<int32_t> to_ids(const py::object& ids) {
  try {
    return ids.cast<std::vector<int32_t>>();
  } catch (const py::cast_error&) {
    throw gptq::Error(
        "token ids: expected a sequence of integers, got " + py::repr(ids).cast<std::string>(),
        gptq::ExitCode::kUsage);
  }
}

void translate(const gptq::Error& e) {
  const py::object cls =
      py::module_::import("gptqcpp._errors").attr("error_class")(static_cast<int>(e.code()));
  const py::object exc = cls(e.what(), static_cast<int>(e.code()));
  PyErr_SetObject(cls.ptr(), exc.ptr());
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "gptq.cpp's C++ API (include/gptq/); use the gptqcpp package";
  m.attr("__version__") = GPTQ_VERSION;
  m.def("version", &gptq::version);

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const gptq::Error& e) {
      translate(e);
    }
  });
  // Raises the exception of an exit code (the tests compare with the CLI's).
  m.def("_raise", [](int code, const std::string& message) {
    throw gptq::Error(message, static_cast<gptq::ExitCode>(code));
  });
  m.def("parse_byte_size", &gptq::parse_byte_size, py::arg("size"));

  py::class_<gptq::LayerRecord>(m, "LayerRecord")
      .def_readonly("name", &gptq::LayerRecord::name)
      .def_readonly("block", &gptq::LayerRecord::block)
      .def_readonly("out_features", &gptq::LayerRecord::out_features)
      .def_readonly("in_features", &gptq::LayerRecord::in_features)
      .def_readonly("loss", &gptq::LayerRecord::loss)
      .def_readonly("damp", &gptq::LayerRecord::damp)
      .def_readonly("damp_retries", &gptq::LayerRecord::damp_retries)
      .def_readonly("dead_columns", &gptq::LayerRecord::dead_columns)
      .def_readonly("zero_point_0_groups", &gptq::LayerRecord::zero_point_0_groups)
      .def_readonly("expert", &gptq::LayerRecord::expert)
      .def_readonly("tokens", &gptq::LayerRecord::tokens)
      .def_readonly("rtn_fallback", &gptq::LayerRecord::rtn_fallback)
      .def_readonly("seconds", &gptq::LayerRecord::seconds)
      .def("__repr__", [](const gptq::LayerRecord& l) {
        return "<LayerRecord " + l.name + " loss=" + std::to_string(l.loss) + ">";
      });
  py::class_<gptq::StageTime>(m, "StageTime")
      .def_readonly("name", &gptq::StageTime::name)
      .def_readonly("wall_seconds", &gptq::StageTime::wall_seconds)
      .def_readonly("cpu_seconds", &gptq::StageTime::cpu_seconds);
  py::class_<gptq::QuantizeResult>(m, "QuantizeResult")
      .def_readonly("model", &gptq::QuantizeResult::model)
      .def_readonly("output", &gptq::QuantizeResult::output)
      .def_readonly("block_name", &gptq::QuantizeResult::block_name)
      .def_readonly("num_blocks", &gptq::QuantizeResult::num_blocks)
      .def_readonly("layers", &gptq::QuantizeResult::layers)
      .def_readonly("layers_quantized", &gptq::QuantizeResult::layers_quantized)
      .def_readonly("calibration_sequences", &gptq::QuantizeResult::calibration_sequences)
      .def_readonly("calibration_seqlen", &gptq::QuantizeResult::calibration_seqlen)
      .def_readonly("output_files", &gptq::QuantizeResult::output_files)
      .def_readonly("threads", &gptq::QuantizeResult::threads)
      .def_readonly("seconds", &gptq::QuantizeResult::seconds)
      .def_readonly("peak_rss_bytes", &gptq::QuantizeResult::peak_rss_bytes)
      .def_readonly("gflop", &gptq::QuantizeResult::gflop)
      .def_readonly("gflops_per_second", &gptq::QuantizeResult::gflops_per_second)
      .def_readonly("stages", &gptq::QuantizeResult::stages)
      .def_readonly("options_json", &gptq::QuantizeResult::options_json)
      .def_readonly("quantization_config_json", &gptq::QuantizeResult::quantization_config_json)
      .def_readonly("zero_point_0_groups", &gptq::QuantizeResult::zero_point_0_groups)
      .def_readonly("layers_with_zero_point_0", &gptq::QuantizeResult::layers_with_zero_point_0)
      .def_readonly("loader_warnings", &gptq::QuantizeResult::loader_warnings)
      .def("to_json", &gptq::QuantizeResult::to_json);

  m.def(
      "quantize",
      [](const std::string& model, const std::string& out, const py::dict& params,
         const py::object& on_progress, const py::object& on_layer, const py::object& on_log) {
        const gptq::QuantizeParams p =
            to_params(params.attr("copy")());  // to_params consumes its dict
        PyCallbacks cbs;
        const gptq::Callbacks cb = make_callbacks(cbs, on_progress, on_layer, on_log);
        return without_gil(cbs, [&] { return gptq::quantize(model, out, p, cb); });
      },
      py::arg("model"), py::arg("out"), py::arg("params"), py::arg("on_progress") = py::none(),
      py::arg("on_layer") = py::none(), py::arg("on_log") = py::none());

  py::class_<gptq::ModelInfo>(m, "ModelInfo")
      .def_readonly("path", &gptq::ModelInfo::path)
      .def_readonly("model_type", &gptq::ModelInfo::model_type)
      .def_readonly("description", &gptq::ModelInfo::description)
      .def_readonly("quantized", &gptq::ModelInfo::quantized)
      .def_readonly("bits", &gptq::ModelInfo::bits)
      .def_readonly("group_size", &gptq::ModelInfo::group_size)
      .def_readonly("desc_act", &gptq::ModelInfo::desc_act)
      .def_readonly("sym", &gptq::ModelInfo::sym)
      .def_readonly("checkpoint_format", &gptq::ModelInfo::checkpoint_format)
      .def_readonly("quantized_layers", &gptq::ModelInfo::quantized_layers)
      .def_readonly("float_layers", &gptq::ModelInfo::float_layers)
      .def_readonly("vocab_size", &gptq::ModelInfo::vocab_size)
      .def_readonly("hidden_size", &gptq::ModelInfo::hidden_size)
      .def_readonly("num_blocks", &gptq::ModelInfo::num_blocks)
      .def_readonly("context_length", &gptq::ModelInfo::context_length);

  py::class_<gptq::EvalResult>(m, "EvalResult")
      .def_readonly("tokens", &gptq::EvalResult::tokens)
      .def_readonly("windows", &gptq::EvalResult::windows)
      .def_readonly("predictions", &gptq::EvalResult::predictions)
      .def_readonly("ppl", &gptq::EvalResult::ppl)
      .def_readonly("mean_nll", &gptq::EvalResult::mean_nll)
      .def_readonly("window_nll", &gptq::EvalResult::window_nll)
      .def_readonly("compared", &gptq::EvalResult::compared)
      .def_readonly("base_ppl", &gptq::EvalResult::base_ppl)
      .def_readonly("kld", &gptq::EvalResult::kld)
      .def_readonly("top1_agreement", &gptq::EvalResult::top1_agreement);

  py::class_<gptq::GenerateResult>(m, "GenerateResult")
      .def_readonly("text", &gptq::GenerateResult::text)
      .def_readonly("prompt_ids", &gptq::GenerateResult::prompt_ids)
      .def_readonly("tokens", &gptq::GenerateResult::tokens)
      .def_readonly("stopped_at_eos", &gptq::GenerateResult::stopped_at_eos)
      .def_readonly("prefill_seconds", &gptq::GenerateResult::prefill_seconds)
      .def_readonly("decode_steps", &gptq::GenerateResult::decode_steps)
      .def_readonly("decode_seconds", &gptq::GenerateResult::decode_seconds)
      .def_readonly("prefill_tokens_per_second", &gptq::GenerateResult::prefill_tokens_per_second)
      .def_readonly("decode_tokens_per_second", &gptq::GenerateResult::decode_tokens_per_second);

  py::class_<gptq::Model>(m, "Model")
      .def_property_readonly("info", &gptq::Model::info)
      .def_property_readonly("threads", &gptq::Model::threads)
      .def("tokenize", &gptq::Model::tokenize, py::arg("text"),
           py::arg("add_special_tokens") = true)
      .def("detokenize", &gptq::Model::detokenize, py::arg("ids"),
           py::arg("skip_special_tokens") = true)
      .def(
          "logits",
          [](const gptq::Model& model, const py::object& ids) {
            const std::vector<int32_t> v = to_ids(ids);
            PyCallbacks cbs;
            auto logits = std::make_unique<std::vector<float>>(
                without_gil(cbs, [&] { return model.logits(v); }));
            const auto rows = static_cast<py::ssize_t>(v.size());
            const auto vocab = static_cast<py::ssize_t>(model.info().vocab_size);
            float* data = logits->data();
            py::capsule owner(logits.release(),
                              [](void* p) { delete static_cast<std::vector<float>*>(p); });
            return py::array_t<float>({rows, vocab}, data, owner);
          },
          py::arg("ids"))
      .def(
          "evaluate",
          [](const gptq::Model& model, const py::object& text_or_ids, int64_t seqlen,
             int64_t max_windows, const gptq::Model* base, const py::object& on_progress) {
            gptq::EvalParams p;
            p.seqlen = seqlen;
            p.max_windows = max_windows;
            PyCallbacks cbs;
            const gptq::Callbacks cb = make_callbacks(cbs, on_progress, py::none(), py::none());
            if (py::isinstance<py::str>(text_or_ids)) {
              const std::string text = text_or_ids.cast<std::string>();
              return without_gil(cbs, [&] { return gptq::evaluate(model, text, p, base, cb); });
            }
            const std::vector<int32_t> ids = to_ids(text_or_ids);
            return without_gil(cbs, [&] { return gptq::evaluate(model, ids, p, base, cb); });
          },
          py::arg("text_or_ids"), py::arg("seqlen") = 256, py::arg("max_windows") = 0,
          py::arg("base") = nullptr, py::arg("on_progress") = py::none())
      .def(
          "generate",
          [](const gptq::Model& model, const std::string& prompt, int64_t max_new_tokens,
             double temperature, int64_t top_k, double top_p, uint64_t seed,
             const py::object& on_text) {
            gptq::GenerateParams p;
            p.max_new_tokens = max_new_tokens;
            p.temperature = temperature;
            p.top_k = top_k;
            p.top_p = top_p;
            p.seed = seed;
            PyCallbacks cbs;
            // Built (and its Python reference counted) here, with the GIL held.
            const std::function<bool(const std::string&)> text =
                [&cbs, on_text](const std::string& piece) {
                  return cbs.call([&] {
                    if (on_text.is_none()) return true;
                    const py::object r = on_text(piece);
                    return continues(r);
                  });
                };
            return without_gil(cbs, [&] { return gptq::generate(model, prompt, p, text); });
          },
          py::arg("prompt"), py::arg("max_new_tokens") = 64, py::arg("temperature") = 0.8,
          py::arg("top_k") = 40, py::arg("top_p") = 1.0, py::arg("seed") = 0,
          py::arg("on_text") = py::none());

  m.def(
      "load",
      [](const std::string& model, bool dequantized, int threads, bool int8_activations) {
        gptq::LoadParams p;
        p.dequantized = dequantized;
        p.threads = threads;
        p.int8_activations = int8_activations;
        PyCallbacks cbs;
        return without_gil(cbs, [&] { return gptq::load(model, p); });
      },
      py::arg("model"), py::arg("dequantized") = false, py::arg("threads") = 0,
      py::arg("int8_activations") = false);
}
