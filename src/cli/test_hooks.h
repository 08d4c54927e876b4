// Fault injection for the end-to-end tests (tests/e2e/kill_resume.sh), kept in the CLI:
// GPTQ_TEST_KILL_AFTER_BLOCK=N kills the process with SIGKILL as soon as N blocks of a
// `gptq quantize` run are durable (N = the number of blocks: before the output is finalized).
#pragma once

#include <cstdint>

namespace gptq::cli {

// Called with the number of durable blocks at each block boundary.
void kill_hook_after_block(int64_t blocks_done);

}  // namespace gptq::cli
