// The one reader of JSON inputs (config.json, generation_config.json, tokenizer.json,
// tokenizer_config.json, quantize_config.json, calibration .json/.jsonl, --dynamic): a size limit
// checked before reading, a nesting limit checked while parsing (before the tree is built, so a
// hostile file cannot exhaust the stack or the memory), repeated keys refused, and every error
// naming the source. Safetensors headers and index files use the same parser
// (parse_json_unique_keys) with their own messages.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace gptq {

// Largest JSON input read (tokenizer.json of large vocabularies is tens of MB).
inline constexpr uint64_t kMaxJsonInputBytes = uint64_t{1} << 30;

// Parses `text` read from `source` (a file name, or an option such as "--dynamic"). Errors
// (ExitCode::kBadInput): "<source> is not valid JSON (<detail>): <advice>"; a repeated key:
// "<source>: key 'a.b' appears twice in one object; <advice>".
nlohmann::json parse_json_input(std::string_view text, const std::string& source,
                                std::string_view advice = "the file is damaged; download it again");

// Reads and parses a file: a missing or unreadable file is ExitCode::kIo, a file larger than
// `max_bytes` is refused before reading.
nlohmann::json read_json_input(const std::filesystem::path& path,
                               std::string_view advice = "the file is damaged; download it again",
                               uint64_t max_bytes = kMaxJsonInputBytes);

// JSON text for output (--json, reports): invalid UTF-8 (a path given on the command line) is
// replaced by U+FFFD instead of throwing.
std::string json_output(const nlohmann::json& j, int indent = -1);

}  // namespace gptq
