// Wording for failed system calls: the errno text and what the user can do about it.
#pragma once

#include <string>

namespace gptq {

// strerror-like text of an errno value ("No space left on device").
std::string errno_text(int err);
// What to do about a failed write or create, by errno (full disk, file size limit, read-only...).
const char* write_error_hint(int err);

}  // namespace gptq
