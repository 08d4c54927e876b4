#include "cli/report_path.h"

#include "util/error.h"
#include "util/path_inside.h"

namespace gptq::cli {

namespace fs = std::filesystem;

namespace {

// Follows the symbolic links of the last component (dangling ones too: their target is written).
fs::path follow_links(fs::path p, const std::string& report) {
  std::error_code ec;
  for (int hops = 0; fs::is_symlink(fs::symlink_status(p, ec)); ++hops) {
    if (hops == 40)
      fail_code(ExitCode::kUsage, "--report {}: too many levels of symbolic links", report);
    const fs::path target = fs::read_symlink(p, ec);
    if (ec)
      fail_code(ExitCode::kIo, "--report {}: cannot read the symbolic link {}: {}", report,
                p.string(), ec.message());
    p = target.is_absolute() ? target : p.parent_path() / target;
  }
  return p;
}

}  // namespace

fs::path checked_report_path(const std::string& report, const fs::path& model_dir,
                             const fs::path& out) {
  const fs::path target = follow_links(fs::path(report), report);
  const fs::path t = fs::weakly_canonical(target);
  if (fs::is_directory(t))
    fail_code(ExitCode::kUsage, "--report {} is a directory: give a file name", report);
  auto refuse = [&](const fs::path& dir, const char* what) {
    if (!dir.empty() && path_inside(t, fs::weakly_canonical(dir)))
      fail_code(ExitCode::kUsage, "--report {} is inside {} {}{}: choose a path outside it", report,
                what, dir.string(),
                target != fs::path(report) ? fmt::format(" (through a link to {})", target.string())
                                           : "");
  };
  refuse(model_dir, "the model directory");
  refuse(out, "the output directory");
  refuse(out.string() + ".partial", "the output's working directory");
  return target;
}

}  // namespace gptq::cli
