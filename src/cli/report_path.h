// Where `gptq quantize --report FILE` writes, checked before the run: never inside the input
// model directory (it would overwrite the model's config.json, say) nor inside the output or its
// OUT.partial; a symbolic link is written through to its target (the link stays a link).
#pragma once

#include <filesystem>
#include <string>

namespace gptq::cli {

// The file to write the report to (FILE, or the final target of FILE's symbolic links).
// Throws gptq::Error (usage) for a path inside `model_dir`, `out` or `out.partial`, or a directory.
std::filesystem::path checked_report_path(const std::string& report,
                                          const std::filesystem::path& model_dir,
                                          const std::filesystem::path& out);

}  // namespace gptq::cli
