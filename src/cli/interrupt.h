// Ctrl-C (SIGINT) and SIGTERM during a long command: the first one asks the running library call
// to stop at its next safe point (its callbacks return false; a quantization keeps its finished
// blocks for --resume and the command exits with code 6); a second one ends the process at once.
#pragma once

namespace gptq::cli {

// Installs the handlers (once).
void catch_interrupts();
// Whether an interrupt arrived since catch_interrupts().
bool interrupted();

}  // namespace gptq::cli
