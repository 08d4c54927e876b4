// A model file truncated (or its storage failing) while the CLI reads it through its mapping
// raises SIGBUS: instead of dying with signal 7, the process prints one error line naming the
// file ("changed or truncated while being read") and exits with code 4. An interrupted
// quantization stays resumable (its last durable block), once the file is restored.
#pragma once

namespace gptq::cli {

// Installs the SIGBUS handler (the CLI only: a library must not own the host's signals).
void guard_mapped_reads();

}  // namespace gptq::cli
