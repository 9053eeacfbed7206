// CallSlots: what a CallHandle checks, on the worker, before running work
// posted for its call. A slot reused by a later call must not let an earlier
// call's handle through.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "core/call_handle.h"
#include "core/dispatcher.h"

namespace sluice {

TEST_CASE("a call slot is live from open to close, and a reused slot does not revive old handles",
          "[call_handle]") {
  CallSlots slots;
  auto first = slots.open();
  CHECK(slots.live(first));
  CHECK(slots.openCount() == 1);
  slots.close(first);
  CHECK_FALSE(slots.live(first));
  slots.close(first);  // twice: a no-op
  auto second = slots.open();
  CHECK(second.slot == first.slot);  // reused...
  CHECK(slots.live(second));
  CHECK_FALSE(slots.live(first));  // ...under a new generation
  auto third = slots.open();
  CHECK(third.slot != second.slot);
  CHECK(slots.openCount() == 2);
  slots.close(second);
  CHECK(slots.live(third));
  CHECK_FALSE(slots.live(CallSlots::Id{99, 1}));  // never opened
}

TEST_CASE("work posted through a handle runs only while its call's slot is open", "[call_handle]") {
  Dispatcher dispatcher;
  auto id = dispatcher.callSlots().open();
  CallHandle handle(dispatcher, dispatcher.callSlots(), id);
  std::atomic<int> ran{0};
  std::thread other([&] { handle.post([&] { ran++; }); });
  other.join();
  dispatcher.runPosted();
  CHECK(ran == 1);
  dispatcher.callSlots().close(id);
  std::thread later([&] { handle.post([&] { ran++; }); });
  later.join();
  dispatcher.runPosted();
  CHECK(ran == 1);
  CallHandle empty;
  CHECK(empty.empty());
  empty.post([&] { ran++; });  // dropped at once
  dispatcher.runPosted();
  CHECK(ran == 1);
}

}  // namespace sluice
