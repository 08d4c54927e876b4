// The file mappings alive in the process (MappedFile registers each one), so that a SIGBUS, what
// the kernel raises when a mapped file is truncated or its storage fails while it is being read,
// can be reported naming the file (src/cli/mapped_read_guard.h installs that handler in the CLI).
#pragma once

#include <cstddef>
#include <string>

namespace gptq {

void register_mapping(const void* begin, size_t size, const std::string& path);
void unregister_mapping(const void* begin);
// The path of the mapped file holding `addr`, or nullptr. Async-signal-safe (no locks, no
// allocation): for a signal handler.
const char* mapped_file_at(const void* addr);

}  // namespace gptq
