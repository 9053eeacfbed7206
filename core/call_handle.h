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
//     bool allowed = askTheService();            // (`this`, `ctx`: not here)
//     handle.post([this, &ctx, allowed] {        // back on the worker
//       if (allowed) ctx.continueRequest(*this);
//       else ctx.sendLocalReply(StatusCode::PermissionDenied, "denied");
//     });
//   });
//
// post() runs the work on the call's worker thread if the call is still going
// when it gets there, and drops it unrun otherwise: captures of the filter and
// its StreamContext are safe to use inside. Work that throws is logged and
// ends the call with INTERNAL, as a hook that throws does (else the call
// would wait, paused, for its deadline). A handle is two words and an id,
// copyable, usable from any thread while the gateway runs. A factory's threads
// must not post once the gateway is gone: its close() (or, for a factory a
// reload retired, its destructor, which runs on a worker and must not block)
// stops them, cancelling what they wait on, or hands the joining to
// runOffLoop() (core/off_loop_work.h).
//
// CallSlots is what the worker checks: per worker (its Dispatcher owns one),
// loop thread only, one slot per call that asked for a handle (or a
// ctx.timer), reused with a
// new generation once the call ends. No allocation once the table has grown
// to the most such calls open at once; a post allocates what std::function
// needs for the work, as Dispatcher::post does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

namespace sluice {

class Dispatcher;
class StreamContext;

class CallSlots {
 public:
  struct Id {
    uint32_t slot = 0;
    uint64_t generation = 0;
  };
  Id open(StreamContext& call);
  void close(Id id);
  // The call if `id`'s is still going, else nullptr.
  StreamContext* find(Id id) const {
    return id.slot < slots_.size() && slots_[id.slot].generation == id.generation ? slots_[id.slot].call : nullptr;
  }
  size_t openCount() const { return slots_.size() - free_.size(); }
  // Runs work for `id`'s call (posted with Dispatcher::postToCall, or a
  // timer's), if it is still going; work that throws is logged and ends the
  // call with INTERNAL "`what` failed" (or "filter \"NAME\" failed").
  // `filter`, when known, is the filter the work is of: the log line and the
  // reply name it ("filter \"NAME\" failed"), as for a hook that throws.
  void run(Id id, const std::function<void()>& work, std::string_view what, std::string_view filter = {});

 private:
  struct Slot {
    uint64_t generation = 0;  // odd while its call is going
    StreamContext* call = nullptr;
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
};

class CallHandle {
 public:
  // An empty handle (the call had already ended): post() drops the work.
  CallHandle() = default;
  // `filter`: the filter that asked for it, when it was asked from a hook
  // (its name lives as long as the call's config, which outlives the call).
  CallHandle(Dispatcher& dispatcher, CallSlots::Id id, std::string_view filter = {})
      : dispatcher_(&dispatcher), id_(id), filter_(filter) {}

  // Thread-safe. Runs `work` on the call's worker if the call has not ended
  // by then; otherwise it is destroyed unrun.
  void post(std::function<void()> work) const;
  bool empty() const { return dispatcher_ == nullptr; }

 private:
  friend class StreamContext;
  // On the call's worker thread only (StreamContext::timer's callbacks): runs
  // `work` now if the call is still going, a throw handled as post()'s is.
  // `what` names the work in the log and the reply.
  void run(const std::function<void()>& work, std::string_view what) const;

  Dispatcher* dispatcher_ = nullptr;
  CallSlots::Id id_;
  std::string_view filter_;
};

}  // namespace sluice
