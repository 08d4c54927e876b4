#include "pipeline/run_staging.h"

#include <fmt/format.h>

#include <system_error>

#include "pipeline/run_state.h"
#include "util/error.h"
#include "util/path_inside.h"

namespace gptq {

namespace fs = std::filesystem;

namespace {

// OUT: absent, not even a dangling symbolic link (the final rename would fail after the run).
void check_out(const fs::path& out) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(out, ec);
  if (fs::is_symlink(st))
    fail_code(ExitCode::kUsage,
              "output {} is a symbolic link (to {}): the output must be a new path; give the "
              "link's target or "
              "another path",
              out.string(), fs::read_symlink(out, ec).string());
  if (fs::exists(st))
    fail_code(ExitCode::kUsage,
              "output directory {} already exists: choose a new path or delete it first",
              out.string());
}

// An OUT.partial stopped while being created (before its marker was in place) holds nothing but
// an empty .gptq-run/ and perhaps the marker's temporary file: nothing there can be lost.
bool being_created(const fs::path& staging) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(staging, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path rel = fs::relative(it->path(), staging, ec);
    const std::string name = it->path().filename().string();
    const bool run_dir = rel == ".gptq-run" && it->is_directory() && !it->is_symlink();
    const bool marker_tmp = rel.parent_path() == ".gptq-run" && name.starts_with("owner.tmp") &&
                            it->is_regular_file() && !it->is_symlink();
    if (!run_dir && !marker_tmp) return false;
  }
  return !ec;
}

// Removes OUT.partial with its marker last, so that a kill midway leaves a directory still
// recognisably gptq's (marked, or empty).
void remove_run_dir(const fs::path& staging, std::error_code& ec) {
  const fs::path run = RunState::dir(staging);
  for (const auto& e : fs::directory_iterator(staging, ec))
    if (e.path() != run) fs::remove_all(e.path(), ec);
  for (const auto& e : fs::directory_iterator(run, ec))
    if (e.path().filename() != "owner") fs::remove_all(e.path(), ec);
  ec.clear();
  fs::remove_all(staging, ec);
}

}  // namespace

fs::path RunStaging::owner_file(const fs::path& staging) {
  return RunState::dir(staging) / "owner";
}

RunStaging::RunStaging(const fs::path& model_dir, const fs::path& out, bool resume,
                       const std::function<void(const std::string&)>& log)
    : out_(out), staging_(out.string() + ".partial") {
  const fs::path m = fs::weakly_canonical(model_dir), o = fs::weakly_canonical(out);
  if (path_inside(o, m) || path_inside(m, o))
    fail_code(ExitCode::kUsage,
              "output {} is inside the model directory {} (or contains it): choose an output "
              "outside the input",
              out.string(), model_dir.string());
  check_out(out);
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(staging_, ec);
  if (!fs::exists(st)) {
    if (resume)
      fail_code(ExitCode::kUsage,
                "--resume: no interrupted run found in {}; start without --resume",
                staging_.string());
    create();
    return;
  }
  if (fs::is_symlink(st) || !fs::is_directory(st))
    fail_code(ExitCode::kUsage,
              "{} exists and is not a directory made by gptq quantize (it is a {}): refusing to "
              "use or delete it; "
              "move or delete it yourself, or choose another output",
              staging_.string(), fs::is_symlink(st) ? "symbolic link" : "file");
  const fs::path owner = owner_file(staging_);
  if (!fs::exists(fs::symlink_status(owner, ec)) && being_created(staging_)) {
    fs::create_directories(RunState::dir(staging_), ec);
    lock_ = FileLock::create(owner);  // adopted: it is gptq's, and empty
  }
  if (!fs::is_regular_file(fs::symlink_status(owner, ec)))
    fail_code(ExitCode::kUsage,
              "{} exists but was not made by gptq quantize (no {} marker): refusing to use or "
              "delete it; move or "
              "delete it yourself, or choose another output",
              staging_.string(), owner.string());
  if (!lock_.held()) {
    long holder = 0;
    auto lock = FileLock::try_lock(owner, &holder);
    if (!lock)
      fail_code(ExitCode::kUsage,
                "{} is in use by another run (pid {}): wait for it to finish or stop it first",
                staging_.string(), holder);
    lock_ = std::move(*lock);
  }
  if (!resume)
    fail_code(
        ExitCode::kUsage,
        "{} holds an interrupted run: add --resume to continue it, or delete it to start again",
        staging_.string());
  if (!fs::exists(RunState::dir(staging_) / "state.json")) {
    if (log)
      log(
          fmt::format("{} holds no durable state yet (the run stopped before its first "
                      "checkpoint): starting over",
                      staging_.string()));
    remove_run_dir(staging_, ec);
    if (ec)
      fail_code(ExitCode::kIo, "cannot remove {}: {}; delete it by hand and start without --resume",
                staging_.string(), ec.message());
    lock_ = FileLock();
    create();
    return;
  }
  lock_.record_pid();
  resuming_ = true;
}

void RunStaging::create() {
  std::error_code ec;
  for (fs::path p = staging_.parent_path(); !p.empty() && !fs::exists(fs::symlink_status(p, ec));
       p = p.parent_path()) {
    created_parents_.push_back(p);
    if (p == p.parent_path()) break;
  }
  fs::create_directories(RunState::dir(staging_), ec);
  if (ec) {
    discard();
    fail_code(ExitCode::kIo, "cannot create {}: {} (is the output location writable?)",
              staging_.string(), ec.message());
  }
  created_ = true;
  try {
    lock_ = FileLock::create(owner_file(staging_));  // also proves the location writable
  } catch (...) {
    discard();
    throw;
  }
}

void RunStaging::discard() {
  std::error_code ec;
  if (created_) remove_run_dir(staging_, ec);
  created_ = false;
  for (const fs::path& p : created_parents_) fs::remove(p, ec);  // only when empty
  created_parents_.clear();
}

void RunStaging::finished(const fs::path& out) {
  std::error_code ec;
  fs::remove_all(RunState::dir(out), ec);
  created_parents_.clear();
}

}  // namespace gptq
