// 64-bit content hashes (XXH3, libxxhash) of byte ranges and whole files: the resume fingerprint
// of the input checkpoint and the checksums of the shards a run has written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace gptq {

// XXH3-64 of `n` bytes, as 16 lowercase hex digits.
std::string content_hash(const void* data, size_t n);

// XXH3-64 of bytes [offset, offset + n) of an open file, read with pread in 1 MiB chunks (never
// through a mapping: a file truncated meanwhile gives a short read, not SIGBUS). Returns false
// when the file ends before offset + n.
bool content_hash_of_range(int fd, uint64_t offset, uint64_t n, std::string* hex);

// XXH3-64 of a whole file (streamed). Throws gptq::Error (I/O) naming the file.
std::string content_hash_of_file(const std::filesystem::path& path, uint64_t* size = nullptr);

}  // namespace gptq
