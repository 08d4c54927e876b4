// Quantize a model with GPTQ, then load, evaluate and run the result (README "C++ API").
#include <gptq/gptq.h>

#include <cstdio>
#include <fstream>
#include <sstream>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL OUT TEXT_FILE\n", argv[0]);
    return 2;
  }
  try {
    gptq::QuantizeParams params;  // Optimum's defaults: 4 bits, group size 128, damp 0.1, ...
    params.dataset.path = argv[3];
    params.nsamples = 32;
    params.model_seqlen = 256;
    gptq::Callbacks callbacks;
    callbacks.layer = [](const gptq::LayerRecord& l) {
      std::printf("%-36s loss %.3e\n", l.name.c_str(), l.loss);
      return true;  // false would stop here, resumable with params.resume
    };
    const gptq::QuantizeResult result = gptq::quantize(argv[1], argv[2], params, callbacks);
    std::printf("%lld layers quantized in %.1f s\n",
                static_cast<long long>(result.layers_quantized), result.seconds);

    const gptq::Model base = gptq::load(argv[1]), model = gptq::load(argv[2]);
    std::stringstream text;
    text << std::ifstream(argv[3]).rdbuf();
    gptq::EvalParams eval;
    eval.max_windows = 8;
    const gptq::EvalResult r = gptq::evaluate(model, text.str(), eval, &base);
    std::printf("%s: perplexity %.2f (float %.2f), KL divergence %.4f\n",
                model.info().description.c_str(), r.ppl, r.base_ppl, r.kld);

    gptq::GenerateParams gen;
    gen.max_new_tokens = 16;
    gen.temperature = 0;  // greedy
    std::printf("%s\n", gptq::generate(model, "And God said,", gen).text.c_str());
  } catch (const gptq::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return static_cast<int>(e.code());
  }
  return 0;
}
