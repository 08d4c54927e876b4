// tokenizer.json "decoder": Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse and
// Strip, each working on the list of token strings like the tokenizers crate's decode_chain.
// Other types are a gptq::Error naming the type.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "calib/tokenizer_json_util.h"

namespace gptq::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// j is the (non-null) decoder object at `path`.
std::unique_ptr<Decoder> make_decoder(const JsonFile& f, const json& j, const std::string& path);

// Runs the decoder (null: tokens joined by spaces, as the tokenizers crate does without one)
// and concatenates the result.
std::string run_decoder(const Decoder* decoder, std::vector<std::string> tokens);

}  // namespace gptq::tok
