// Durable, atomic small-file writes: write "<path>.tmp", fsync, rename over <path>, fsync the
// directory. A reader sees the old or the new content, never a mix.
#pragma once

#include <filesystem>
#include <string_view>
#include <system_error>

namespace gptq {

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);
// rename(2) that fails (EEXIST) instead of replacing an existing `to` (an empty directory that
// appeared meanwhile, say); plain rename where the file system cannot do that.
void rename_no_replace(const std::filesystem::path& from, const std::filesystem::path& to, std::error_code& ec);
// fsync of a directory (makes renames inside it durable).
void sync_directory(const std::filesystem::path& dir);

}  // namespace gptq
