// FilterChain: runs one stream's filters over its request and response events.
//
// Owned by the stream, together with the filters it runs. Events are queued per
// direction and delivered strictly in order; a StopIteration holds the event at
// the filter after the one that paused, and every later event of that direction
// waits behind it until continueRequest()/continueResponse(). Response events
// that pass the first filter go to the ResponseSink (the downstream codec).
#pragma once

#include <cstddef>
#include <vector>

#include "core/filter.h"
#include "core/message.h"
#include "core/ring_queue.h"

namespace sluice {

class StreamContext;

class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  virtual void sendHeaders() = 0;
  virtual void sendMessage(Message&& message) = 0;
  virtual void sendTrailers() = 0;
};

class FilterChain {
 public:
  FilterChain(StreamContext& ctx, ResponseSink& sink) : ctx_(ctx), sink_(sink) {}

  void reserve(size_t filters) { filters_.reserve(filters); }
  void addFilter(FilterPtr filter) { filters_.push_back(std::move(filter)); }
  size_t size() const { return filters_.size(); }

  void requestHeaders() { pushRequest({EventKind::Headers, {}, 0}); }
  void requestMessage(Message&& m) { pushRequest({EventKind::Message, std::move(m), 0}); }
  void requestEnd() { pushRequest({EventKind::End, {}, 0}); }
  void continueRequest();

  void responseHeaders() { pushResponse({EventKind::Headers, {}, filters_.size()}); }
  void responseMessage(Message&& m) { pushResponse({EventKind::Message, std::move(m), filters_.size()}); }
  void responseTrailers() { pushResponse({EventKind::End, {}, filters_.size()}); }
  void continueResponse();

  // onStreamDone on every filter, once.
  void streamDone();

  // True once the request headers reached the last (terminal) filter: every
  // filter before it let them through (routing, auth, rate limits)...
  bool requestHeadersAtTerminal() const { return request_headers_at_terminal_; }
  // ... and once they went through it too (it forwarded the call).
  bool requestHeadersPassed() const { return request_headers_passed_; }
  // Bytes of request messages waiting behind a paused filter.
  size_t queuedRequestBytes() const { return queued_request_bytes_; }
  // Bytes of response messages not yet through every filter (waiting behind
  // a paused one): the terminal must stop reading when these pile up.
  size_t queuedResponseBytes() const { return queued_response_bytes_; }

 private:
  enum class EventKind { Headers, Message, End };
  struct Event {
    EventKind kind = EventKind::Headers;
    Message message;
    size_t next = 0;  // request: index of the next filter; response: one past it
    size_t bytes = 0;  // wire size when queued (a filter may move the payload out)
  };
  struct Direction {
    // Keeps its capacity: steady streaming does not allocate.
    RingQueue<Event> queue;
    // The event being delivered, moved out of the queue so that the Message&
    // a hook holds stays valid even if the hook queues more events.
    Event active;
    bool has_active = false;
    bool paused = false;
    bool iterating = false;
    bool resume_requested = false;
  };

  void pushRequest(Event e);
  void pushResponse(Event e);
  // Moves the next queued event into d.active (if none is there yet).
  bool takeNext(Direction& d);
  void runRequest();
  void runResponse();
  FilterStatus invokeRequest(Filter& f, Event& e);
  FilterStatus invokeResponse(Filter& f, Event& e);
  void resume(Direction& d, void (FilterChain::*run)());

  StreamContext& ctx_;
  ResponseSink& sink_;
  std::vector<FilterPtr> filters_;
  Direction request_;
  Direction response_;
  size_t queued_request_bytes_ = 0;
  size_t queued_response_bytes_ = 0;
  bool done_ = false;
  bool request_headers_at_terminal_ = false;
  bool request_headers_passed_ = false;
};

}  // namespace sluice
