// A sentencepiece tokenizer.model (Llama-2, Mistral) run through libsentencepiece, encoding
// like transformers' LlamaTokenizer: control / unknown piece strings in the text ("<s>") map
// to their ids, each text run is encoded by sentencepiece, and BOS / EOS are added per
// tokenizer_config.json beside the model (add_bos_token default true, add_eos_token false).
#pragma once

#include <filesystem>
#include <memory>

#include "calib/tokenizer.h"

namespace gptq::tok {

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& file);

}  // namespace gptq::tok
