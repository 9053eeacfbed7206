// Dispatcher: one worker's event loop (libuv) and the end-of-event work that
// keeps callbacks safe.
//
// Owns the uv_loop_t. Two kinds of work run after every batch of events (in the
// loop's prepare and check phases), never inside a C callback:
//  - flushes: connections that have output pending (nghttp2 frames to write)
//    ask for one flush; many events on one connection coalesce into one write;
//  - deferred deletion: objects reachable from a running callback are handed
//    over with deferredDelete() and destroyed after the flushes.
// Everything here is used from the loop's own thread only, except post(),
// which any thread may call to run work on this loop.
//
// Idle spin (worker_spin_polls): when a batch of events did some work, the
// loop does not go to sleep at once. It polls again, up to N times, handing the
// core to any other runnable thread between polls (sched_yield). On a machine
// where the gateway shares cores with its clients or backends, the answer it
// waits for is then usually there at the next poll: no sleep, no wake-up, and
// no preempting a neighbour in the middle of its work, which is what a woken
// thread does. When a yield finds no other thread wanting the core, nothing
// can produce the next event sooner, so the loop sleeps: an idle or lightly
// loaded gateway pays one extra poll per wake-up, not N.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/call_handle.h"

struct uv_loop_s;
struct uv_prepare_s;
struct uv_check_s;
struct uv_async_s;

namespace sluice {

class DeferredDeletable {
 public:
  virtual ~DeferredDeletable() = default;
};
using DeferredDeletablePtr = std::unique_ptr<DeferredDeletable>;

class Dispatcher;
struct LoopStats;

// Something with buffered output to push once the current events are handled.
class Flushable {
 public:
  explicit Flushable(Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  virtual ~Flushable();
  // Queues one flush() for the end of the current event batch (idempotent).
  void scheduleFlush();
  virtual void flush() = 0;

 private:
  friend class Dispatcher;
  Dispatcher& dispatcher_;
  bool flush_scheduled_ = false;
};

class Dispatcher {
 public:
  Dispatcher();
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  uv_loop_s* loop() { return loop_; }
  std::chrono::steady_clock::time_point now() const { return std::chrono::steady_clock::now(); }

  void deferredDelete(DeferredDeletablePtr object);
  // Runs `fn` on this dispatcher's loop thread soon. Thread-safe; work posted
  // after the loop has stopped for good is dropped.
  void post(std::function<void()> fn);
  // The same for work of one call (CallHandle::post): it runs only if the
  // call is still going, and ends the call if it throws (CallSlots::run).
  void postToCall(CallSlots::Id call, std::function<void()> fn, std::string_view filter = {});
  void runPosted();  // libuv bridge only
  // Runs until stop() or until no handle is active.
  void run();
  void stop();
  // From now on run() also returns once nothing but timers keeps the loop
  // alive (no other handle active, closing or referenced, no request in
  // flight). A stopping worker calls it: a timer a filter's factory keeps
  // re-arming (a cache refresh), or a long one-shot one, would otherwise hold
  // the worker, and so the process, forever after its drain.
  void endWhenOnlyTimersLeft() { end_when_only_timers_ = true; }
  // Polls before sleeping (see the top of this file); 0 sleeps as soon as the
  // loop has nothing to do. `stats` (may be null) counts the polls.
  void setIdleSpin(uint32_t polls, LoopStats* stats);

  // Runs pending flushes and deletions now (also called by the loop hooks).
  void drainPostedWork();
  // Which of this loop's calls are still going, for CallHandles.
  CallSlots& callSlots() { return call_slots_; }

 private:
  friend class Flushable;
  void addFlush(Flushable* f) { flush_queue_.push_back(f); }
  void cancelFlush(Flushable* f);
  bool onlyTimersLeft() const;
  bool closingHandlesOrRequests() const;

  uv_loop_s* loop_;
  uv_prepare_s* prepare_;
  uv_check_s* check_;
  uv_async_s* async_;
  std::mutex posted_mutex_;
  struct PostedWork {
    std::function<void()> fn;
    std::optional<CallSlots::Id> call;  // postToCall's
    std::string_view filter;            // ... and the filter it is of, if known
  };
  std::vector<PostedWork> posted_;
  CallSlots call_slots_;
  std::vector<Flushable*> flush_queue_;
  std::vector<DeferredDeletablePtr> delete_queue_;
  std::vector<Flushable*> flushing_;
  std::vector<DeferredDeletablePtr> deleting_;
  bool draining_ = false;
  bool stop_requested_ = false;
  bool end_when_only_timers_ = false;
  uint64_t flush_batches_ = 0;  // batches of events that had output to write
  uint32_t spin_polls_ = 0;
  LoopStats* loop_stats_ = nullptr;
  // Every socket of this loop reads into this buffer and consumes it at once.
  std::string read_buffer_;
};

}  // namespace sluice
