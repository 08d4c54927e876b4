#include "calib/tokenizer.h"

#include "calib/tokenizer_hf.h"
#include "calib/tokenizer_sentencepiece.h"
#include "util/error.h"

namespace gptq {

namespace fs = std::filesystem;

std::unique_ptr<Tokenizer> Tokenizer::from_model_dir(const fs::path& dir) {
  if (fs::exists(dir / "tokenizer.json")) return from_tokenizer_json(dir / "tokenizer.json");
  if (fs::exists(dir / "tokenizer.model")) return from_sentencepiece(dir / "tokenizer.model");
  fail_code(ExitCode::kIo,
            "no tokenizer.json or tokenizer.model in {}: copy the tokenizer files of the base "
            "model there",
            dir.string());
}

std::unique_ptr<Tokenizer> Tokenizer::from_tokenizer_json(const fs::path& file) {
  return tok::load_hf_tokenizer(file);
}

std::unique_ptr<Tokenizer> Tokenizer::from_sentencepiece(const fs::path& file) {
  return tok::load_sentencepiece_tokenizer(file);
}

}  // namespace gptq
