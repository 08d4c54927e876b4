// What a gptq::Model holds (shared by the API's model, evaluate and generate files).
#pragma once

#include <memory>

#include "calib/tokenizer.h"
#include "gptq/model.h"
#include "infer/load_model.h"

namespace gptq {

struct Model::Impl {
  std::unique_ptr<LoadedModel> loaded;
  std::unique_ptr<Tokenizer> tokenizer;
  ModelInfo info;
  int threads = 0;

  const ModelForward& forward() const { return *loaded->model; }
};

}  // namespace gptq
