// Ctrl-C (SIGINT), SIGTERM and SIGHUP during any command: the first one asks the running library
// call to stop at its next safe point (its callbacks return false; a quantization keeps its
// finished blocks for --resume) and the command exits with code 6 and a message naming the
// signal; a second one ends the process at once (the signal's default action).
#pragma once

namespace gptq::cli {

// Installs the handlers (once; main does it before running a command).
void catch_interrupts();
// Whether an interrupt arrived since catch_interrupts().
bool interrupted();
// The name of the signal that arrived ("SIGINT", "SIGTERM", "SIGHUP"), or "" when none.
const char* interrupt_name();
// Forgets an interrupt that arrived too late to stop anything (the command's work is complete).
void clear_interrupt();

}  // namespace gptq::cli
