// Work that must not run on a worker's event loop (it may block: joining a
// thread that writes to a stuck pipe) but must be done before the process
// exits (it may still write lines out).
//
// A filter factory that a reload retired is destroyed on whichever worker ran
// its config's last call; its destructor hands anything slow to runOffLoop().
// Gateway::run() waits for all of it after the workers have stopped and the
// current factories are closed.
#pragma once

#include <cstddef>
#include <functional>

namespace sluice {

// Runs `work` on a thread of its own, now.
void runOffLoop(std::function<void()> work);
// Waits until everything handed to runOffLoop() so far has finished.
void waitForOffLoopWork();
// Threads started by runOffLoop() and not joined yet (finished ones are
// joined by the next runOffLoop()).
size_t offLoopThreadsKept();

}  // namespace sluice
