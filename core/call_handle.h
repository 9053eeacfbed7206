// CallHandle: the way back to one call from a thread of the filter's own.
//
// A filter that hands work to another thread (a lookup in a remote service,
// a slow check) resumes or ends its call when the answer comes. That thread
// must not touch the call: the call may have ended meanwhile (the client
// cancelled, a deadline passed) and its filters been deleted. It posts the
// rest of the work through the call's handle instead:
//
//   CallHandle handle = ctx.handle();            // on the worker, in a hook
//   pool.submit([handle, this, &ctx] {           // on the filter's own thread
//     bool allowed = askTheService();
//     handle.post([this, &ctx, allowed] {        // back on the worker
//       if (allowed) ctx.continueRequest(*this);
//       else ctx.sendLocalReply(StatusCode::PermissionDenied, "denied");
//     });
//   });
//
// post() runs the work on the call's worker thread if the call is still going
// when it gets there, and drops it otherwise (the work is then destroyed
// unrun, on the worker): captures of the filter and its StreamContext are
// safe to use inside. A handle is a few words, copyable, and valid on any
// thread for as long as the gateway runs: threads of a filter's own must be
// stopped by its factory's close() or destructor.
//
// CallSlots is what a handle checks: per worker (its Dispatcher owns one),
// loop thread only, one slot per call that asked for a handle, reused with a
// new generation once the call ends. No allocation once the table has grown
// to the most such calls open at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace sluice {

class Dispatcher;

class CallSlots {
 public:
  struct Id {
    uint32_t slot = 0;
    uint32_t generation = 0;
  };
  Id open();
  void close(Id id);
  bool live(Id id) const { return id.slot < generations_.size() && generations_[id.slot] == id.generation; }
  size_t openCount() const { return generations_.size() - free_.size(); }

 private:
  // Odd while the slot's call is going, even once it ended.
  std::vector<uint32_t> generations_;
  std::vector<uint32_t> free_;
};

class CallHandle {
 public:
  // An empty handle (a call that had already ended): post() drops the work.
  CallHandle() = default;
  CallHandle(Dispatcher& dispatcher, CallSlots& slots, CallSlots::Id id)
      : dispatcher_(&dispatcher), slots_(&slots), id_(id) {}

  // Thread-safe. Runs `work` on the call's worker if the call has not ended
  // by then. Work that throws is logged, as any work posted to a worker.
  void post(std::function<void()> work) const;
  bool empty() const { return dispatcher_ == nullptr; }

 private:
  Dispatcher* dispatcher_ = nullptr;
  CallSlots* slots_ = nullptr;
  CallSlots::Id id_;
};

}  // namespace sluice
