// JSON parsing that detects duplicate object keys (nlohmann::json silently keeps one of them).
// Used for safetensors headers and index files, where a repeated key hides a tensor.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gptq {

struct JsonParseResult {
  nlohmann::json value;
  std::string syntax_error;  // non-empty: not valid JSON (nlohmann's message, with position)
  // The first repeated key: the keys of the enclosing objects (outermost first) and the key.
  struct Duplicate {
    std::vector<std::string> parents;
    std::string key;
  };
  std::optional<Duplicate> duplicate;
  bool ok() const { return syntax_error.empty() && !duplicate; }
};

// Deeper nesting is reported as a syntax error (it also keeps nlohmann's recursive functions, such
// as dump(), away from stack overflows on hostile input).
inline constexpr int kMaxJsonDepth = 64;

JsonParseResult parse_json_unique_keys(std::string_view text);

}  // namespace gptq
