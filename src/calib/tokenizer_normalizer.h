// tokenizer.json "normalizer": Sequence, Prepend, Replace, Strip and NFC (NFC passes text that
// is NFC by construction and rejects characters it cannot vouch for, naming them). Other types
// are a gptq::Error naming the type.
#pragma once

#include <memory>
#include <string>

#include "calib/tokenizer_json_util.h"

namespace gptq::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// j is the (non-null) normalizer object at `path`.
std::unique_ptr<Normalizer> make_normalizer(const JsonFile& f, const json& j,
                                            const std::string& path);

// Throws unless text is NFC for sure (only characters that are NFC-stable and never combine);
// returns normally when NFC normalization would leave text unchanged.
void check_nfc_stable(std::string_view text);

}  // namespace gptq::tok
