// tokenizer.json "post_processor" reduced to what single-sequence encoding needs: the special
// ids put before and after the text. TemplateProcessing, RobertaProcessing, BertProcessing,
// ByteLevel (adds nothing) and Sequence are supported; other types are a gptq::Error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "calib/tokenizer_json_util.h"

namespace gptq::tok {

struct SpecialWrap {
  std::vector<int32_t> prefix, suffix;
};

// j is the (non-null) post_processor object at `path`.
SpecialWrap parse_post_processor(const JsonFile& f, const json& j, const std::string& path);

}  // namespace gptq::tok
