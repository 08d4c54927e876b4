// Validation of a sentencepiece model's precompiled normalization map (NormalizerSpec
// precompiled_charsmap: a darts-clone double-array trie and the replacement strings) before the
// sentencepiece library uses it: the library trusts the trie and reads wherever its offsets point,
// so a damaged or hostile tokenizer.model crashes it on the first encode.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gptq::tok {

// Byte ranges [offset, size) of the precompiled_charsmap fields of normalizer_spec and
// denormalizer_spec in a serialized ModelProto. A malformed message ends the scan (the library's
// own parser reports it).
std::vector<std::pair<size_t, size_t>> precompiled_charsmaps(std::string_view model);

// Throws gptq::Error naming `where` if the trie can be walked outside its array, or a replacement
// offset leaves the string blob or is not NUL-terminated.
void check_precompiled_charsmap(std::string_view blob, const std::string& where);

// Every precompiled_charsmap of the model file's bytes.
void check_sentencepiece_model(std::string_view model, const std::string& name);

}  // namespace gptq::tok
