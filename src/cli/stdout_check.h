// Writes to standard output that fail (a full disk behind `> file`, /dev/full, a closed
// descriptor) are an I/O error (exit code 4, one line on stderr), never a silent exit 0 with the
// output lost: the commands' output is flushed and checked before they report success.
#pragma once

namespace gptq::cli {

// Flushes stdout; throws gptq::Error (ExitCode::kIo) when that or an earlier write failed.
void check_stdout();
// Same, after an exception from a write (fmt's std::system_error): rethrows it as the I/O error
// when stdout has failed; returns otherwise.
void check_stdout_after(int err);

}  // namespace gptq::cli
