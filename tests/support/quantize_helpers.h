// Shared set-up of the tests that quantize a fixture model.
#pragma once

#include <string>

#include "pipeline/quantize.h"
#include "support/fixtures.h"

namespace gptq::testing {

// A log sink for quantize_model that prints nothing.
inline const auto kSilent = [](const std::string&) {};

// Quiet options on the fixtures' calibration text (nsamples x 256 tokens, damp 0.01).
inline QuantizeOptions fixture_quantize_options(int bits, int group_size, bool sym, bool act_order,
                                                int nsamples, QuantMethod method = QuantMethod::kGptq) {
  QuantizeOptions o;
  o.quant.bits = bits;
  o.quant.group_size = group_size;
  o.quant.sym = sym;
  o.quant.desc_act = act_order;
  o.quant.damp_percent = 0.01;
  o.method = method;
  o.calib.file = fixture_data("calib.txt");
  o.calib.nsamples = nsamples;
  o.calib.seqlen = 256;
  return o;
}

}  // namespace gptq::testing
