// The {"String": "..."} / {"Regex": "..."} pattern objects of tokenizer.json (Split
// pre-tokenizer, Replace normalizer and decoder), compiled to one PCRE2 regex.
#pragma once

#include <memory>
#include <string>

#include "calib/tokenizer_json_util.h"
#include "calib/tokenizer_regex.h"

namespace gptq::tok {

std::unique_ptr<Regex> parse_pattern(const JsonFile& f, const json& j, const std::string& path);

// Replaces every match of re in text by content.
std::string regex_replace_all(const Regex& re, std::string_view text, std::string_view content);

}  // namespace gptq::tok
