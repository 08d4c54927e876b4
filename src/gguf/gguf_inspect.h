// `gptq inspect FILE.gguf`: the metadata (long arrays summarised) and the tensor table of a GGUF
// file, read back with gguf_reader.
#pragma once

#include <filesystem>
#include <string>

namespace gptq::gguf {

// The text inspect prints; `json`: one JSON object (metadata with arrays cut to their length,
// tensors).
std::string describe_gguf(const std::filesystem::path& path, bool json);

}  // namespace gptq::gguf
