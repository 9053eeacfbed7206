// Filter: one step of a stream's filter chain.
//
// Ownership and order: a FilterFactory (built once from config, immutable, shared
// by every stream and worker) creates one Filter per stream; the stream owns its
// filters and destroys them after onStreamDone. Request hooks run in chain order
// (headers, then each message, then end); response hooks in reverse order
// (headers, messages, trailers). Events reach a filter strictly in order: when a
// filter returns StopIteration, that event and every later one in the same
// direction wait until it calls ctx.continueRequest() / continueResponse().
// Every hook passes through by default, so a filter overrides only what it needs.
// A filter may end the call from any hook with ctx.sendLocalReply(); the chain
// then stops and onStreamDone still runs, exactly once, on every filter, before
// sendLocalReply returns (and likewise inside continueRequest() when a later
// filter refuses the call). Gateway-generated replies (sendLocalReply) do not
// pass through response hooks, and neither does a trailers-only backend reply
// through onResponseHeaders: only onResponseTrailers sees it.
//
// A hook that throws ends its call with INTERNAL (local reply filter_error);
// the exception is logged, and other calls never notice (core/user_code.h).
//
// Hooks run on the call's worker thread. A filter working on threads of its
// own comes back to the call through ctx.handle() (core/call_handle.h).
#pragma once

#include <memory>

namespace sluice {

class StreamContext;
struct Message;

// What a hook lets happen next. Continue: the event goes on to the next
// filter. StopIteration: it waits here (with every later event of its
// direction) until ctx.continueRequest() / continueResponse(). DropMessage,
// from onRequestMessage or onResponseMessage only: the message goes no
// further (no later filter, nor the backend or the client, sees it) and the
// next event follows; its bytes count as delivered for flow control. Any
// other hook returning it ends the call with INTERNAL, as a throw does.
enum class FilterStatus { Continue, StopIteration, DropMessage };

class Filter {
 public:
  virtual ~Filter() = default;

  // Request direction, in chain order.
  virtual FilterStatus onRequestHeaders(StreamContext&) { return FilterStatus::Continue; }
  virtual FilterStatus onRequestMessage(StreamContext&, Message&) { return FilterStatus::Continue; }
  // The client half-closed.
  virtual FilterStatus onRequestEnd(StreamContext&) { return FilterStatus::Continue; }

  // Response direction, in reverse chain order.
  virtual FilterStatus onResponseHeaders(StreamContext&) { return FilterStatus::Continue; }
  virtual FilterStatus onResponseMessage(StreamContext&, Message&) { return FilterStatus::Continue; }
  // grpc-status is in ctx.responseTrailers() and ctx.status().
  virtual FilterStatus onResponseTrailers(StreamContext&) { return FilterStatus::Continue; }

  // Exactly once per stream, success or not; the context holds the final status.
  virtual void onStreamDone(StreamContext&) {}

  // Bytes of messages this filter holds for the call (queued, partly
  // received, kept for a retry): how overload.reset_calls_percent finds the
  // calls holding the most. A filter that keeps messages should say so.
  // Asked on the call's worker at each overload check, also after
  // onStreamDone (free what you hold there, and say 0); keep it cheap. One
  // that throws is logged and counts as 0.
  virtual size_t heldMessageBytes() const { return 0; }
};
using FilterPtr = std::unique_ptr<Filter>;

// Built once per configured filter entry. Shared (const) across streams and
// workers: per-stream state belongs in the Filter, never here.
class FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  // nullptr: this entry sits the call out (a filter for some methods only);
  // the terminal must always make one. Throwing ends the call with INTERNAL.
  virtual FilterPtr createFilter(StreamContext& ctx) const = 0;
  // Whether this entry also sees calls the gateway refuses before the chain
  // runs (not a POST, not gRPC, a malformed path or grpc-timeout, headers over
  // the limit, a draining gateway). Its filter for such a call gets
  // onStreamDone and no other hook; ctx.status(), ctx.statusMessage() and
  // ctx.httpStatus() say why. For observers (logs, metrics): off by default,
  // so a filter that pairs onStreamDone with work done in an earlier hook
  // never sees an end without a start.
  virtual bool observesRefusedCalls() const { return false; }
  // The gateway is stopping: release what the factory holds (files, sockets),
  // finishing what is pending (buffered lines). Called once, on the thread
  // that ran Gateway::run(), after every worker has stopped: no filter of it
  // runs any more. A factory a reload retired is not closed but destroyed,
  // after its config's last call, on that call's worker thread: release in
  // the destructor too, without blocking.
  virtual void close() const {}
  // SIGUSR1 (log rotation): reopen the files the factory writes, by path, so
  // that a file renamed away stops growing and a fresh one takes its place.
  // Called on the main loop's thread while streams may be writing.
  virtual void reopenLogs() const {}
};
using FilterFactorySharedPtr = std::shared_ptr<const FilterFactory>;

}  // namespace sluice
