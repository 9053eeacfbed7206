// CallSlots and CallHandle: what the worker checks before running work a
// filter posted for its call from another thread. A slot reused by a later
// call must not let an earlier call's handle through; work that throws ends
// its call.
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <thread>

#include "core/call_handle.h"
#include "core/dispatcher.h"
#include "core/stats.h"
#include "test/unit/fake_context.h"

namespace sluice {
using test::FakeContext;

TEST_CASE("a call slot is live from open to close, and a reused slot does not revive old handles",
          "[call_handle]") {
  FakeContext a, b, c;
  CallSlots slots;
  auto first = slots.open(a);
  CHECK(slots.find(first) == &a);
  CHECK(slots.openCount() == 1);
  slots.close(first);
  CHECK(slots.find(first) == nullptr);
  slots.close(first);  // twice: a no-op
  auto second = slots.open(b);
  CHECK(second.slot == first.slot);  // reused...
  CHECK(slots.find(second) == &b);
  CHECK(slots.find(first) == nullptr);  // ...under a new generation
  auto third = slots.open(c);
  CHECK(third.slot != second.slot);
  CHECK(slots.openCount() == 2);
  slots.close(second);
  CHECK(slots.find(third) == &c);
  CHECK(slots.find(CallSlots::Id{99, 1}) == nullptr);  // never opened
}

TEST_CASE("work posted through a handle runs only while its call's slot is open", "[call_handle]") {
  Dispatcher dispatcher;
  FakeContext call;
  auto id = dispatcher.callSlots().open(call);
  CallHandle handle(dispatcher, id);
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

TEST_CASE("work posted through a handle that throws ends its call with INTERNAL", "[call_handle]") {
  Dispatcher dispatcher;
  FakeContext call;
  CallHandle handle(dispatcher, dispatcher.callSlots().open(call));
  handle.post([] { throw std::runtime_error("lookup failed"); });
  dispatcher.runPosted();
  CHECK(call.ended());
  CHECK(call.status() == StatusCode::Internal);
  CHECK(call.local_reply_reason == LocalReplyReason::FilterError);
}

}  // namespace sluice
