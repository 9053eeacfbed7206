// Timer: enable(t) never fires before t has passed since the call, however
// long the loop iteration that armed it had already run (libuv counts from a
// time it reads once per iteration, in whole milliseconds). A fault's delay
// and the deadline tests rely on that lower bound.
#include <catch2/catch.hpp>

#include <chrono>

#include "core/dispatcher.h"
#include "core/timer.h"

namespace sluice {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

void busyFor(std::chrono::milliseconds how_long) {
  const auto until = Clock::now() + how_long;
  while (Clock::now() < until) {
  }
}

}  // namespace

TEST_CASE("a timer armed late in a busy loop iteration still waits its whole timeout", "[timer]") {
  Dispatcher dispatcher;
  Clock::time_point armed_at;
  Clock::time_point fired_at;
  Timer later(dispatcher, [&] {
    fired_at = Clock::now();
    dispatcher.stop();
  });
  // Wakes the loop soon after: in a gateway some socket always does, and
  // the loop then judges `later` by its clock, not by the time it slept.
  Timer waker(dispatcher, [] {});
  Timer busy(dispatcher, [&] {
    busyFor(60ms);  // the loop's idea of "now" is this old by the end
    armed_at = Clock::now();
    later.enable(100ms);
    waker.enable(10ms);
  });
  busy.enable(0ms);
  dispatcher.run();
  CHECK(fired_at - armed_at >= 100ms);
}

TEST_CASE("a timer re-armed from its own callback waits its whole timeout every time", "[timer]") {
  // Armed at a random point within a millisecond each time: without rounding
  // up, libuv's whole-millisecond clock lets some of these fire up to 1 ms early.
  Dispatcher dispatcher;
  int fired = 0;
  Clock::duration shortest = 1h;
  Clock::time_point armed_at;
  TimerPtr timer;
  timer = std::make_unique<Timer>(dispatcher, [&] {
    shortest = std::min(shortest, Clock::now() - armed_at);
    if (++fired == 40) {
      dispatcher.stop();
      return;
    }
    busyFor(std::chrono::milliseconds(fired % 3));
    armed_at = Clock::now();
    timer->enable(3ms);
  });
  armed_at = Clock::now();
  timer->enable(3ms);
  dispatcher.run();
  CHECK(fired == 40);
  CHECK(shortest >= 3ms);
}

}  // namespace sluice
