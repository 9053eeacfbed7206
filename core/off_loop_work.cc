#include "core/off_loop_work.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/user_code.h"

namespace sluice {
namespace {

struct OffLoopThread {
  std::thread thread;
  std::shared_ptr<std::atomic<bool>> done;
};

std::mutex& threadsMutex() {
  static std::mutex m;
  return m;
}

// Never destroyed: a thread still running at exit must not meet a destroyed
// vector (static destructors run while it may still be pushing).
std::vector<OffLoopThread>& threads() {
  static auto* t = new std::vector<OffLoopThread>();
  return *t;
}

// Runs `job`, logging what it throws (a thread's uncaught exception would end
// the process), then destroys it: its captures may be what is slow to go.
void runAndDestroy(std::unique_ptr<std::function<void()>> job) {
  try {
    (*job)();
  } catch (...) {
    spdlog::error("work run off the event loop failed: {}", currentExceptionText());
  }
  job.reset();
}

}  // namespace

void runOffLoop(std::function<void()> work) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  auto job = std::make_unique<std::function<void()>>(std::move(work));
  std::thread t;
  try {
    // The thread owns the job from its start; `done` only once the job and
    // its captures are gone, so that joining it never waits on them.
    t = std::thread([raw = job.get(), done] {
      runAndDestroy(std::unique_ptr<std::function<void()>>(raw));
      done->store(true, std::memory_order_release);
    });
    (void)job.release();
  } catch (const std::system_error& e) {
    // No thread to be had (a process at its limit): better late on this
    // thread than never.
    spdlog::warn("cannot start a thread for work off the event loop ({}): running it here", e.what());
    runAndDestroy(std::move(job));
    return;
  }
  std::lock_guard lock(threadsMutex());
  // Threads that have finished are joined here, so that a gateway reloading
  // for months keeps no more of them than are still working.
  auto& all = threads();
  for (auto it = all.begin(); it != all.end();) {
    if (it->done->load(std::memory_order_acquire)) {
      it->thread.join();
      it = all.erase(it);
    } else {
      ++it;
    }
  }
  all.push_back({std::move(t), std::move(done)});
}

size_t offLoopThreadsKept() {
  std::lock_guard lock(threadsMutex());
  return threads().size();
}

void waitForOffLoopWork() {
  std::vector<OffLoopThread> running;
  {
    std::lock_guard lock(threadsMutex());
    running.swap(threads());
  }
  for (auto& t : running) t.thread.join();
}

}  // namespace sluice
