// Fault injection for the end-to-end tests (tests/e2e/kill_resume.sh), kept in the CLI:
// GPTQ_TEST_KILL_AFTER_BLOCK=N kills the process with SIGKILL as soon as N blocks of a
// `gptq quantize` run are durable (N = the number of blocks: before the output is finalized).
// GPTQ_TEST_TRUNCATE_AFTER_BLOCK=N:FILE: see truncate_hook_after_block.
#pragma once

#include <cstdint>

namespace gptq::cli {

// Called with the number of durable blocks at each block boundary.
void kill_hook_after_block(int64_t blocks_done);
// GPTQ_TEST_TRUNCATE_AFTER_BLOCK=N:FILE truncates FILE to half its size when N blocks are
// durable (a model file shrinking under the run's mapping: tests/e2e/signals_and_outputs.sh).
void truncate_hook_after_block(int64_t blocks_done);

}  // namespace gptq::cli
