#include "core/off_loop_work.h"

#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace sluice {
namespace {

std::mutex& threadsMutex() {
  static std::mutex m;
  return m;
}

// Never destroyed: a thread still running at exit must not meet a destroyed
// vector (static destructors run while it may still be pushing).
std::vector<std::thread>& threads() {
  static auto* t = new std::vector<std::thread>();
  return *t;
}

}  // namespace

void runOffLoop(std::function<void()> work) {
  std::thread t(std::move(work));
  std::lock_guard lock(threadsMutex());
  threads().push_back(std::move(t));
}

void waitForOffLoopWork() {
  std::vector<std::thread> running;
  {
    std::lock_guard lock(threadsMutex());
    running.swap(threads());
  }
  for (auto& t : running) t.join();
}

}  // namespace sluice
