// What a gptq::Model holds (shared by the API's model, evaluate and generate files).
#pragma once

#include <memory>
#include <mutex>

#include "calib/tokenizer.h"
#include "gptq/model.h"
#include "infer/load_model.h"

namespace gptq {

struct Model::Impl {
  std::unique_ptr<LoadedModel> loaded;
  ModelInfo info;
  int threads = 0;

  const ModelForward& forward() const { return *loaded->model; }
  // The checkpoint's tokenizer, read on first use: logits and evaluation of token ids need none.
  const Tokenizer& tokenizer() const {
    std::call_once(tokenizer_once_, [&] { tokenizer_ = Tokenizer::from_model_dir(loaded->dir); });
    return *tokenizer_;
  }

 private:
  mutable std::once_flag tokenizer_once_;
  mutable std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace gptq
