// What a long library call reports while it runs, and how a caller stops it. Every callback is
// optional and is called on the thread that made the call. A callback returning false cancels the
// call: it stops at the next safe point and throws gptq::Error with ExitCode::kInterrupted (a
// quantization keeps its finished blocks in OUT.partial/, to be continued with `resume`).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace gptq {

struct LayerRecord;

struct Progress {
  std::string stage;  // "quantize" (unit: blocks), "evaluate" (windows), "generate" (tokens)
  int64_t done = 0;   // units finished so far
  int64_t total = 0;  // units in all
  std::string note;   // e.g. "block 3/32"
};

struct Callbacks {
  // Warnings and notes, one line each (e.g. "warning: ..." from the model plan, "resuming: ...").
  std::function<void(const std::string& line)> log;
  // Before each unit of work and once at the end (done == total).
  std::function<bool(const Progress& progress)> progress;
  // quantize: each layer's record as soon as it is quantized.
  std::function<bool(const LayerRecord& layer)> layer;
};

}  // namespace gptq
