// FilterChain: runs one stream's filters over its request and response events.
//
// Owned by the stream, together with the filters it runs. Events are queued per
// direction and delivered strictly in order; a StopIteration holds the event at
// the filter after the one that paused, and every later event of that direction
// waits behind it until continueRequest()/continueResponse(). Response events
// that pass the first filter go to the ResponseSink (the downstream codec).
//
// A hook that throws ends the call with INTERNAL (reason filter_error) and is
// logged; an onStreamDone that throws is logged and the other filters still
// get theirs. Exceptions never reach the C callbacks below (core/user_code.h).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
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
  // `name` (the config's, for logs and replies) must outlive the chain.
  void addFilter(FilterPtr filter, std::string_view name = {}) {
    filters_.push_back({std::move(filter), name});
  }
  size_t size() const { return filters_.size(); }

  void requestHeaders() { pushRequest({EventKind::Headers, {}, 0}); }
  void requestMessage(Message&& m) { pushRequest({EventKind::Message, std::move(m), 0}); }
  void requestEnd() { pushRequest({EventKind::End, {}, 0}); }
  // Resumes the request direction. With `from`, only if that filter is the
  // one that paused it (or is pausing it now): a late or second resume from
  // a filter already passed must not release a later filter's pause.
  void continueRequest(const Filter* from = nullptr);
  // After work of `filter_name`'s outside its hooks (StreamContext::filterWorkDone):
  // what it changed is checked as its doing; the call ends if that is invalid.
  void checkWorkOf(std::string_view filter_name);

  // A reply goes through the response hooks of the filter that made it and
  // of those before it, in reverse chain order: the terminal's passes them
  // all; one a filter makes itself before the request reached the terminal
  // skips the filters after it, which never saw the call (responseStart).
  // One a filter encodes from its own response hook (a message added to a
  // stream, one split in two) goes on from that filter, not through it
  // again, and ahead of the event the hook is handling: a message injected
  // from onResponseTrailers reaches the client before the trailers.
  void responseHeaders() { pushResponse({EventKind::Headers, {}, responseStart()}); }
  void responseMessage(Message&& m) { pushResponse({EventKind::Message, std::move(m), responseStart()}); }
  void responseTrailers() { pushResponse({EventKind::End, {}, responseStart()}); }
  void continueResponse(const Filter* from = nullptr);

  // onStreamDone on every filter, once.
  void streamDone();
  // Logs that the factory of filter `name` threw while creating a filter
  // (currentExceptionText() says what), for the stream to end the call.
  static void logCreateFailure(std::string_view name);

  // True once the request headers reached the last (terminal) filter: every
  // filter before it let them through (routing, auth, rate limits)...
  bool requestHeadersAtTerminal() const { return request_headers_at_terminal_; }
  // ... and once they went through it too (it forwarded the call).
  bool requestHeadersPassed() const { return request_headers_passed_; }
  // Bytes of request messages waiting behind a paused filter: what they
  // hold, each its wire size plus queuedMessageOverhead().
  size_t queuedRequestBytes() const { return queued_request_bytes_; }
  static size_t queuedMessageOverhead();
  // Bytes of response messages not yet through every filter (waiting behind
  // a paused one): the terminal must stop reading when these pile up.
  size_t queuedResponseBytes() const { return queued_response_bytes_; }
  // The filter whose hook last changed the response trailers ("" if none):
  // who to name when what they end the call with is no valid end.
  std::string_view trailersChangedBy() const { return trailers_changed_by_; }
  // Everything the chain holds: the queues above and what each filter says
  // it keeps (Filter::heldMessageBytes).
  size_t heldMessageBytes() const;

 private:
  struct Entry {
    FilterPtr filter;
    std::string_view name;
  };
  enum class EventKind { Headers, Message, End };
  struct Event {
    EventKind kind = EventKind::Headers;
    Message message;
    size_t next = 0;  // request: index of the next filter; response: one past it
    size_t bytes = 0;  // held when queued: wire size and queue slot (a filter may move the payload out)
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
    const Filter* current = nullptr;  // whose hook runs (iterating) or paused (paused)
    // Events the running hook's filter injected (response only): they go on
    // from that filter, ahead of the event the hook is handling.
    std::vector<Event> injected;
  };

  void pushRequest(Event e);
  void pushResponse(Event e);
  // Drops d's queued events (not the active one), taking their bytes off.
  static void discardQueued(Direction& d, size_t& queued_bytes);
  // Moves the next queued event into d.active (if none is there yet).
  bool takeNext(Direction& d);
  void runRequest();
  void runResponse();
  FilterStatus invokeRequest(Filter& f, Event& e);
  FilterStatus invokeResponse(Filter& f, Event& e);
  // Runs `entry`'s hook for `e` in direction `d`; nullopt when it threw (the
  // call has then ended, failHook).
  std::optional<FilterStatus> invoke(Direction& d, const Entry& entry, Event& e);
  // The hook of `entry` for `e` threw: log it and end the call.
  void failHook(const Entry& entry, const Event& e, bool request);
  // How often the request headers, response headers and trailers changed,
  // and how often they had when last checked: a field a filter sets goes on
  // the wire as it is, so what filters changed is checked (once per change,
  // and only then) after their hooks and when they resume.
  struct HeaderChanges {
    uint32_t request = 0;
    uint32_t response = 0;
    uint32_t trailers = 0;
    bool operator==(const HeaderChanges&) const = default;
  };
  HeaderChanges headerChanges() const;
  // False when `filter_name` left a field HTTP/2 cannot carry in a map it
  // changed: the call has then ended with INTERNAL, as if the filter threw.
  bool checkChangedHeaders(std::string_view filter_name, std::string_view where);
  void resume(Direction& d, void (FilterChain::*run)(), const Filter* from);
  // A hook returned DropMessage for `d`'s active (message) event: it goes no further.
  void drop(Direction& d);

  StreamContext& ctx_;
  ResponseSink& sink_;
  std::vector<Entry> filters_;
  Direction request_;
  Direction response_;
  // Where the reply's events start (see responseHeaders), fixed by its first.
  // Puts the events the hook just returned injected in the queue, around the
  // event it handled (d.active); true when that event went back into the
  // queue behind them (to be taken again), false when it goes on now.
  bool placeInjected(Direction& d, bool dropped);
  // Where a response event starts, asked for each: a filter answering
  // before the request reached the terminal (its hook running, or it
  // paused the call) starts after itself; anything else at the terminal.
  size_t responseStart() const;
  // The index of `filter` in the chain (size() when it is none of them).
  size_t indexOf(const Filter* filter) const;

  HeaderChanges checked_changes_;
  std::string_view trailers_changed_by_;  // an entry's name: lives with the config
  size_t queued_request_bytes_ = 0;
  size_t queued_response_bytes_ = 0;
  bool done_ = false;
  bool request_headers_at_terminal_ = false;
  bool request_headers_passed_ = false;
};

}  // namespace sluice
