// SIGUSR1 handling for log rotation, shared by every file-writing access log.
//
// The gateway binary handles SIGINT/SIGTERM on its loop (uv_signal), but a
// factory has no loop of its own and is shared by all workers, so SIGUSR1 is
// taken with a plain sigaction handler that only bumps an atomic counter;
// writers compare it with the generation they opened at. A handler installed
// before ours (an embedding application's) is still called.
#pragma once

#include <cstdint>

namespace sluice::filters::access_log {

// Installs the handler once per process; later calls do nothing.
void installReopenSignalHandler();
// How many SIGUSR1 were received so far.
uint64_t reopenGeneration();
// What the handler does, for tests that cannot send signals.
void requestReopen();

}  // namespace sluice::filters::access_log
