// gptq export-gguf MODEL OUT.gguf: a GPTQ checkpoint (or, with --from-float, a float one) as a GGUF
// file for llama.cpp (src/gguf/gguf_export.h).
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "gguf/gguf_export.h"
#include "io/json_reader.h"
#include "model/model_config.h"
#include "util/error.h"
#include "util/progress.h"

namespace gptq::cli {

Command add_export_gguf(CLI::App& root) {
  struct Opts {
    std::string model, out, type = "auto", outtype = "f16", pre;
    bool from_float = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = root.add_subcommand(
      "export-gguf", "Write a GPTQ checkpoint (or a float model) as GGUF for llama.cpp");
  app->add_option("model", o->model, "GPTQ checkpoint directory (with --from-float: a float model)")
      ->required();
  app->add_option("out", o->out, "Output .gguf file (written atomically)")->required();
  app->add_option(
         "--type", o->type,
         "Type of the block linears: auto (the type holding the GPTQ solution exactly, "
         "else a re-fit: the smallest error among the types of the same or up to one fewer "
         "bits per weight than q4_0/q4_1/q8_0), q4_0, q4_1, q8_0, the k-quants q2_k, q3_k, q4_k, "
         "q5_k, q6_k (super-blocks "
         "of 256; rows of other lengths fall back to q4_0/q4_1/q8_0 as llama-quantize "
         "does), f16, bf16, f32")
      ->capture_default_str();
  app->add_flag("--from-float", o->from_float,
                "MODEL is a float checkpoint: quantize the block linears with ggml's reference "
                "quantizer (llama.cpp's round-to-nearest; k-quants: a least-squares search at "
                "least as good as ggml's; needs --type)");
  app->add_option("--outtype", o->outtype,
                  "Type of embeddings, head and float 2-D weights: f16 or f32")
      ->check(CLI::IsMember({"f16", "f32"}))
      ->capture_default_str();
  app->add_option(
      "--tokenizer-pre", o->pre,
      "llama.cpp pre-tokenizer name (tokenizer.ggml.pre) when tokenizer.json's is not recognised");
  app->add_flag("--json", o->json, "Print the report as JSON");
  return {
      app, [o]() {
        gguf::ExportOptions eo;
        eo.type = o->type;
        eo.from_float = o->from_float;
        eo.tokenizer_pre = o->pre;
        gguf::parse_type(o->outtype, &eo.float_type);
        const gguf::ExportReport r = gguf::export_gguf(resolve_model_path(o->model), o->out, eo);
        if (o->json) {
          nlohmann::json j;
          j["out"] = r.out.string();
          j["architecture"] = r.architecture;
          j["bytes"] = r.bytes;
          j["tensors"] = r.tensors;
          nlohmann::json layers = nlohmann::json::array();
          for (const auto& l : r.layers)
            layers.push_back({{"name", l.hf_name},
                              {"gguf", l.gguf_name},
                              {"type", gguf::type_name(l.type)},
                              {"mode", gguf::mode_name(l.mode)},
                              {"bits", l.bits},
                              {"rel_error", l.rel_error},
                              {"max_abs_error", l.max_abs_error},
                              {"why", l.why}});
          j["layers"] = layers;
          fmt::print("{}\n", json_output(j, 2));
          return 0;
        }
        fmt::print("{:<40} {:<6} {:<7} {:>11} {:>11}  {}\n", "layer", "type", "mode", "rel.error",
                   "max|err|", "why");
        int64_t exact = 0;
        double worst = 0;
        for (const auto& l : r.layers) {
          fmt::print("{:<40} {:<6} {:<7} {:>11.3e} {:>11.3e}  {}\n", l.gguf_name,
                     gguf::type_name(l.type), gguf::mode_name(l.mode), l.rel_error, l.max_abs_error,
                     l.why);
          exact += l.mode == gguf::LayerMode::kExact;
          worst = std::max(worst, l.rel_error);
        }
        fmt::print(
            "\nwrote {} ({}, {} tensors, {}): {} of {} layers exact, worst relative error {:.3e}\n",
            r.out.string(), r.architecture, r.tensors, human_bytes(static_cast<double>(r.bytes)),
            exact, r.layers.size(), worst);
        return 0;
      }};
}

}  // namespace gptq::cli
