#include "util/system_error.h"

#include <cerrno>
#include <system_error>

namespace gptq {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

const char* write_error_hint(int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return "the disk is full: free some space or choose another output directory";
    case EFBIG:
      return "the file exceeds the maximum file size (ulimit -f or the file system's limit): "
             "raise the limit, use a smaller maximum shard size or choose another output "
             "directory";
    case EROFS:
      return "the file system is read-only: choose another output directory";
    case EACCES:
    case EPERM:
      return "permission denied: choose a writable output directory";
    default:
      return "check the output directory and the disk";
  }
}

}  // namespace gptq
