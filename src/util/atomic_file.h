// Durable, atomic small-file writes: write "<path>.tmp", fsync, rename over <path>, fsync the
// directory. A reader sees the old or the new content, never a mix.
#pragma once

#include <filesystem>
#include <string_view>

namespace gptq {

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);
// fsync of a directory (makes renames inside it durable).
void sync_directory(const std::filesystem::path& dir);

}  // namespace gptq
