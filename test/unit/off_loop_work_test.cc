// runOffLoop(): work runs on its own thread, finished threads do not pile up
// (a gateway reloading for months), and waitForOffLoopWork() waits for all.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>

#include "core/off_loop_work.h"

namespace sluice {

TEST_CASE("off-loop work: finished threads are joined by the next start, the wait waits", "[off_loop]") {
  waitForOffLoopWork();
  std::atomic<int> done{0};
  for (int i = 0; i < 50; ++i) {
    runOffLoop([&done] { done++; });
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (done.load() <= i && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  }
  REQUIRE(done.load() == 50);
  // Each start joined the ones before it that had finished: at most the last
  // one (and any that had not quite returned) is kept.
  CHECK(offLoopThreadsKept() <= 2);

  std::atomic<bool> slow_done{false};
  runOffLoop([&slow_done] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    slow_done = true;
  });
  waitForOffLoopWork();
  CHECK(slow_done.load());
  CHECK(offLoopThreadsKept() == 0);
}

// Work that throws is logged, not the end of the process (a thread's uncaught
// exception calls std::terminate); and its captures are gone by the time the
// wait returns, since they may be what is slow to destroy.
TEST_CASE("off-loop work: a throw is caught, the work's captures go before it counts as done", "[off_loop]") {
  waitForOffLoopWork();
  runOffLoop([] { throw std::runtime_error("off-loop work failed on purpose"); });
  struct Slow {
    std::atomic<bool>* destroyed;
    ~Slow() {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (destroyed != nullptr) destroyed->store(true);
    }
  };
  std::atomic<bool> destroyed{false};
  auto slow = std::make_shared<Slow>(Slow{nullptr});
  slow->destroyed = &destroyed;
  runOffLoop([slow = std::move(slow)] {});
  waitForOffLoopWork();
  CHECK(destroyed.load());
}

}  // namespace sluice
