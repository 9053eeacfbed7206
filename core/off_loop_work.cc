#include "core/off_loop_work.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

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

}  // namespace

void runOffLoop(std::function<void()> work) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread t([work = std::move(work), done]() {
    work();
    done->store(true, std::memory_order_release);
  });
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
