// OUT.partial, the directory a quantize run works in, and who owns it.
//
// A run creates OUT.partial (and any missing parent directories) and, first thing inside it,
// .gptq-run/owner: the marker that gptq made the directory, holding an exclusive flock for the
// whole run (and the pid). Nothing is ever deleted or reused in an OUT.partial without that
// marker (a directory someone else made, a regular file, a symbolic link): the run refuses,
// naming the path. A second run on the same OUT.partial while the first holds the lock is
// refused ("in use by another run (pid N)").
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "util/file_lock.h"

namespace gptq {

class RunStaging {
 public:
  // Checks OUT and OUT.partial before any work: OUT must not exist (nor be a symbolic link,
  // dangling or not), OUT.partial must be absent or a directory this program made and no other
  // run holds. With `resume` and a durable state, it is taken over; with `resume` and no durable
  // state (stopped before its first checkpoint) it is removed and made anew. Creates it when
  // needed (an unwritable location fails here).
  RunStaging(const std::filesystem::path& model_dir, const std::filesystem::path& out, bool resume,
             const std::function<void(const std::string&)>& log);

  const std::filesystem::path& path() const { return staging_; }
  // Whether there is an interrupted run to continue.
  bool resuming() const { return resuming_; }
  // Removes OUT.partial (made by this run, nothing durable in it) and the parent directories
  // this run created, deepest first, when empty. For a run failing before its first checkpoint.
  void discard();
  // After OUT.partial was renamed to OUT: removes the marker from OUT.
  void finished(const std::filesystem::path& out);

  static std::filesystem::path owner_file(const std::filesystem::path& staging);

 private:
  void create();

  std::filesystem::path out_, staging_;
  bool resuming_ = false;
  bool created_ = false;
  std::vector<std::filesystem::path> created_parents_;  // deepest first
  FileLock lock_;
};

}  // namespace gptq
