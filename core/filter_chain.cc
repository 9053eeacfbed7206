#include "core/filter_chain.h"

#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "core/stats.h"
#include "core/stream_context.h"
#include "core/user_code.h"

namespace sluice {

// What a queued message holds: its bytes and its place in the queue. Flow
// control and the connection's limits count this, not the wire size alone:
// an empty message is 5 bytes on the wire and some 80 held, so a client
// streaming empty messages at a paused filter would otherwise make a
// connection hold 16 times what max_incomplete_request_bytes says.
size_t FilterChain::queuedMessageOverhead() { return sizeof(Event); }

namespace {

template <class Event>
size_t heldBytes(const Event& e) {
  return e.message.wireSize() + FilterChain::queuedMessageOverhead();
}

}  // namespace

void FilterChain::pushRequest(Event e) {
  if (ctx_.ended()) return;
  if (e.kind == EventKind::Headers) checked_changes_.request = ctx_.requestHeaders().changes();
  e.bytes = e.kind == EventKind::Message ? heldBytes(e) : 0;
  queued_request_bytes_ += e.bytes;
  request_.queue.push_back(std::move(e));
  if (!request_.iterating) runRequest();
}

void FilterChain::pushResponse(Event e) {
  if (ctx_.ended()) return;
  e.bytes = e.kind == EventKind::Message ? heldBytes(e) : 0;
  queued_response_bytes_ += e.bytes;
  if (response_.iterating) {
    // Encoded by the filter whose response hook runs: it goes on from there
    // once the hook returns (runResponse). Its header fields are that
    // filter's, checked after the hook.
    e.next = indexOf(response_.current);
    response_.injected.push_back(std::move(e));
    return;
  }
  // What the gateway itself put in (the backend's fields) is valid.
  if (e.kind == EventKind::Headers) checked_changes_.response = ctx_.responseHeaders().changes();
  if (e.kind == EventKind::End) checked_changes_.trailers = ctx_.responseTrailers().changes();
  response_.queue.push_back(std::move(e));
  runResponse();
}

void FilterChain::resume(Direction& d, void (FilterChain::*run)(), const Filter* from) {
  // A filter's late resume (a timer it did not cancel) must not run hooks
  // after the call ended.
  if (ctx_.ended()) return;
  if (from != nullptr && from != d.current) return;
  if (d.iterating) {
    // Called from inside the hook that is about to return StopIteration.
    d.resume_requested = true;
    return;
  }
  if (!d.paused) return;
  if (headerChanges() != checked_changes_) {
    // Changed while paused (from a timer, say): the paused filter's doing.
    for (const auto& entry : filters_) {
      if (entry.filter.get() == d.current && !checkChangedHeaders(entry.name, "while paused")) return;
    }
  }
  d.paused = false;
  (this->*run)();
}

size_t FilterChain::responseStart() const {
  // Before the request headers reached the terminal, only the filter whose
  // hook runs, or which paused the call, can be answering it. Asked per
  // event, not once: a filter that answered early and let the request go
  // on must not make the backend's answer skip the filters after it.
  if (!request_headers_at_terminal_ && request_.current != nullptr && (request_.iterating || request_.paused)) {
    const size_t i = indexOf(request_.current);
    if (i < filters_.size()) return i + 1;
  }
  return filters_.size();
}

size_t FilterChain::indexOf(const Filter* filter) const {
  for (size_t i = 0; i < filters_.size(); ++i) {
    if (filters_[i].filter.get() == filter) return i;
  }
  return filters_.size();
}

void FilterChain::continueRequest(const Filter* from) { resume(request_, &FilterChain::runRequest, from); }

void FilterChain::continueResponse(const Filter* from) { resume(response_, &FilterChain::runResponse, from); }

namespace {

std::string_view hookName(bool request, int kind) {
  static constexpr std::string_view kRequest[] = {"onRequestHeaders", "onRequestMessage", "onRequestEnd"};
  static constexpr std::string_view kResponse[] = {"onResponseHeaders", "onResponseMessage", "onResponseTrailers"};
  return request ? kRequest[kind] : kResponse[kind];
}

}  // namespace

void FilterChain::failHook(const Entry& entry, const Event& e, bool request) {
  logUserCodeFailure(fmt::format("filter \"{}\" in {}", entry.name, hookName(request, static_cast<int>(e.kind))),
                     currentExceptionText());
  // The filter may have ended the call before throwing.
  if (!ctx_.ended()) {
    ctx_.sendLocalReply(LocalReplyReason::FilterError, StatusCode::Internal,
                        fmt::format("filter \"{}\" failed", entry.name));
  }
}

void FilterChain::logCreateFailure(std::string_view name) {
  logUserCodeFailure(fmt::format("filter \"{}\" creating its filter for a call", name), currentExceptionText());
}

FilterStatus FilterChain::invokeRequest(Filter& f, Event& e) {
  switch (e.kind) {
    case EventKind::Headers: return f.onRequestHeaders(ctx_);
    case EventKind::Message: return f.onRequestMessage(ctx_, e.message);
    case EventKind::End: return f.onRequestEnd(ctx_);
  }
  return FilterStatus::Continue;
}

FilterStatus FilterChain::invokeResponse(Filter& f, Event& e) {
  switch (e.kind) {
    case EventKind::Headers: return f.onResponseHeaders(ctx_);
    case EventKind::Message: return f.onResponseMessage(ctx_, e.message);
    case EventKind::End: return f.onResponseTrailers(ctx_);
  }
  return FilterStatus::Continue;
}

FilterChain::HeaderChanges FilterChain::headerChanges() const {
  return {ctx_.requestHeaders().changes(), ctx_.responseHeaders().changes(), ctx_.responseTrailers().changes()};
}

void FilterChain::checkWorkOf(std::string_view filter_name) {
  if (headerChanges() == checked_changes_) return;
  checkChangedHeaders(filter_name, "in work it ran for the call (a timer, CallHandle)");
}

bool FilterChain::checkChangedHeaders(std::string_view filter_name, std::string_view where) {
  const HeaderChanges now = headerChanges();
  std::string why;
  if (now.request != checked_changes_.request) why = invalidHeaderField(ctx_.requestHeaders());
  if (why.empty() && now.response != checked_changes_.response) why = invalidHeaderField(ctx_.responseHeaders());
  if (now.trailers != checked_changes_.trailers) {
    trailers_changed_by_ = filter_name;
    if (why.empty()) why = invalidHeaderField(ctx_.responseTrailers());
  }
  checked_changes_ = now;
  if (why.empty()) return true;
  logUserCodeFailure(fmt::format("filter \"{}\" {}", filter_name, where),
                     "it left a header field HTTP/2 cannot carry: " + why, "failed");
  ctx_.sendLocalReply(LocalReplyReason::FilterError, StatusCode::Internal,
                      fmt::format("filter \"{}\" failed", filter_name));
  return false;
}

std::optional<FilterStatus> FilterChain::invoke(Direction& d, const Entry& entry, Event& e) {
  const bool request = &d == &request_;
  d.iterating = true;
  d.current = entry.filter.get();
  // Timers and handles the hook asks for are its filter's. Restored after:
  // a hook may run another filter's (encodeResponse* from a request hook).
  struct RunningFilter {
    std::string_view& slot;
    std::string_view saved;
    ~RunningFilter() { slot = saved; }
  } running{ctx_.running_filter_, std::exchange(ctx_.running_filter_, entry.name)};
  try {
    FilterStatus status = request ? invokeRequest(*entry.filter, e) : invokeResponse(*entry.filter, e);
    if (status == FilterStatus::DropMessage && e.kind != EventKind::Message) {
      throw std::logic_error("returned DropMessage, which only onRequestMessage and onResponseMessage may");
    }
    d.iterating = false;
    if (!ctx_.ended() && headerChanges() != checked_changes_ &&
        !checkChangedHeaders(entry.name, fmt::format("in {}", hookName(request, static_cast<int>(e.kind))))) {
      return std::nullopt;
    }
    return status;
  } catch (...) {
    d.iterating = false;
    failHook(entry, e, request);
  }
  return std::nullopt;
}

bool FilterChain::takeNext(Direction& d) {
  if (d.has_active) return true;
  if (d.queue.empty()) return false;
  d.active = std::move(d.queue.front());
  d.queue.pop_front();
  d.has_active = true;
  return true;
}

void FilterChain::runRequest() {
  Direction& d = request_;
  while (!d.paused && takeNext(d)) {
    Event& e = d.active;
    while (e.next < filters_.size()) {
      if (e.kind == EventKind::Headers && e.next + 1 == filters_.size()) request_headers_at_terminal_ = true;
      std::optional<FilterStatus> status = invoke(d, filters_[e.next++], e);
      if (!status || ctx_.ended()) return;
      if (*status == FilterStatus::DropMessage) {
        drop(d);
        break;
      }
      if (*status == FilterStatus::StopIteration && !d.resume_requested) {
        d.paused = true;
        return;
      }
      d.resume_requested = false;
    }
    queued_request_bytes_ -= e.bytes;
    if (e.kind == EventKind::Headers) request_headers_passed_ = true;
    d.has_active = false;
  }
}

void FilterChain::runResponse() {
  Direction& d = response_;
  while (!d.paused && takeNext(d)) {
    Event& e = d.active;
    bool dropped = false;
    bool deferred = false;
    while (e.next > 0) {
      std::optional<FilterStatus> status = invoke(d, filters_[--e.next], e);
      if (!status || ctx_.ended()) return;
      if (*status == FilterStatus::DropMessage) {
        drop(d);
        dropped = true;
      }
      if (!d.injected.empty()) deferred = placeInjected(d, dropped);
      if (dropped) break;
      if (*status == FilterStatus::StopIteration && !d.resume_requested) {
        d.paused = true;
        return;
      }
      d.resume_requested = false;
      if (deferred) break;
    }
    if (deferred) continue;
    queued_response_bytes_ -= e.bytes;
    d.has_active = false;
    if (dropped) continue;
    // The sink may end the stream (trailers); nothing of `d` is used after.
    switch (e.kind) {
      case EventKind::Headers:
        sink_.sendHeaders();
        checked_changes_.response = ctx_.responseHeaders().changes();  // the gateway's own :status
        break;
      case EventKind::Message: sink_.sendMessage(std::move(e.message)); break;
      case EventKind::End: sink_.sendTrailers(); break;
    }
    if (ctx_.ended()) return;
  }
}

bool FilterChain::placeInjected(Direction& d, bool dropped) {
  // Messages injected while a message or the trailers are handled go ahead
  // of it (a message split in two, a summary before the trailers); those
  // injected while the headers are handled, and injected headers or
  // trailers, go after it: the headers come first, and a filter ending the
  // stream from a message hook ends it after that message.
  const bool handling_headers = d.active.kind == EventKind::Headers;
  const auto ahead = [&](const Event& e) { return e.kind == EventKind::Message && !handling_headers; };
  bool any_ahead = false;
  for (auto it = d.injected.rbegin(); it != d.injected.rend(); ++it) {
    if (ahead(*it)) {
      any_ahead = true;
    } else {
      d.queue.push_front(std::move(*it));
    }
  }
  bool deferred = false;
  if (any_ahead) {
    if (!dropped) {
      // It waits at its next filter (moved: no hook holds its message now).
      d.queue.push_front(std::move(d.active));
      d.has_active = false;
      deferred = true;
    }
    for (auto it = d.injected.rbegin(); it != d.injected.rend(); ++it) {
      if (ahead(*it)) d.queue.push_front(std::move(*it));
    }
  }
  d.injected.clear();
  return deferred;
}

void FilterChain::drop(Direction& d) {
  // A resume the dropping hook asked for (ctx.continue*() inside it) is spent.
  d.resume_requested = false;
  d.active.message = Message{};  // its buffer goes back now, not when the next event arrives
}

void FilterChain::streamDone() {
  if (done_) return;
  done_ = true;
  for (auto& entry : filters_) {
    const uint32_t trailers_before = ctx_.responseTrailers().changes();
    try {
      entry.filter->onStreamDone(ctx_);
    } catch (...) {
      logUserCodeFailure(fmt::format("filter \"{}\" in onStreamDone", entry.name), currentExceptionText());
    }
    if (ctx_.responseTrailers().changes() != trailers_before) {
      // They may still be on their way to the client (the stream checks
      // that they remain a valid end of a call), but the call was counted
      // and logged by what they said before.
      logUserCodeFailure(fmt::format("filter \"{}\" in onStreamDone", entry.name),
                         "it changed the response trailers after the call ended (change them in onResponseTrailers)",
                         "failed");
    }
  }
  // Events still queued behind a paused filter will never be delivered: their
  // messages go now, not when the stream is deleted (after its RST_STREAM
  // reaches a client that may not read). The active event stays: a hook may
  // be holding its message.
  discardQueued(request_, queued_request_bytes_);
  discardQueued(response_, queued_response_bytes_);
}

void FilterChain::discardQueued(Direction& d, size_t& queued_bytes) {
  while (!d.queue.empty()) {
    queued_bytes -= d.queue.front().bytes;
    d.queue.pop_front();
  }
  for (const Event& e : d.injected) queued_bytes -= e.bytes;
  d.injected.clear();
}

size_t FilterChain::heldMessageBytes() const {
  size_t held = queued_request_bytes_ + queued_response_bytes_;
  for (const Entry& e : filters_) {
    if (!e.filter) continue;
    // Asked at overload checks, outside any hook: a filter that throws here
    // counts as holding nothing, and the check goes on.
    try {
      held += e.filter->heldMessageBytes();
    } catch (...) {
      logUserCodeFailure(fmt::format("filter \"{}\" in heldMessageBytes", e.name), currentExceptionText());
    }
  }
  return held;
}

}  // namespace sluice
