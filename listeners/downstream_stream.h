// DownstreamStream: one gRPC call from a client, from its HEADERS to its close.
//
// Owned by its DownstreamConnection, which deletes it (deferred) once nghttp2
// closed the stream. It owns the call's filters (through its FilterChain) and
// is their StreamContext. Request bytes are decoded into messages and pushed
// through the chain; the terminal filter sends the response back through the
// encode* actions, which this class turns into HEADERS, DATA and trailers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "codecs/grpc/frame_decoder.h"
#include "codecs/grpc/health_messages.h"
#include "codecs/http2/outbound_data.h"
#include "codecs/http2/session.h"
#include "core/dispatcher.h"
#include "core/filter_chain.h"
#include "core/stats.h"
#include "core/stream_context.h"
#include "core/timer.h"
#include "listeners/generation.h"

namespace sluice {

class DownstreamConnection;
struct ListenerConfig;

// The config generation a call runs on, held by a base class declared before
// StreamContext so that it is let go of last: after the call's filters and
// its filter state (in StreamContext), which may refer to what that config
// owns (filter factories, clusters). After a reload, the last call of the
// old config frees it.
struct CallGeneration {
  GenerationPtr generation_;  // kept alive until the call ends
};

class DownstreamStream final : private CallGeneration,
                               public StreamContext,
                               public Http2StreamHandler,
                               public MessageSink,
                               public ResponseSink,
                               public DeferredDeletable {
 public:
  DownstreamStream(DownstreamConnection& connection, int32_t stream_id);
  ~DownstreamStream() override;

  // The connection closed under the stream, for `reason`: lost on the
  // client's side (it closed the socket, or a socket error), or closed by the
  // gateway (a drain's end, an unanswered keepalive, a client that stopped
  // reading).
  enum class ConnectionEnd { Lost, ClosedByGateway };
  void onConnectionClosed(ConnectionEnd end, std::string_view reason);

  // ---- Http2StreamHandler ----
  void onHeader(std::string_view name, std::string_view value) override;
  void onHeadersComplete(bool trailers, bool end_stream) override;
  void onData(const uint8_t* data, size_t len) override;
  void onEndStream() override;
  void onClose(uint32_t error_code) override;
  void onPeerReset(uint32_t) override { reset_by_client_ = true; }
  void onOutboundDrained(size_t n) override;
  OutboundData& outbound() override { return response_out_; }
  bool outboundEnded() const override { return response_end_queued_; }
  void onHeadersNotSent(std::string_view why) override;
  const HeaderMap* outboundTrailers() const override {
    return trailers_on_wire_ ? &response_trailers_ : nullptr;
  }

  // ---- MessageSink (request decoder) ----
  bool onMessage(Message&& message) override;

  // ---- ResponseSink (end of the response filter chain) ----
  void sendHeaders() override;
  void sendMessage(Message&& message) override;
  void sendTrailers() override;

  // ---- StreamContext actions ----
  Dispatcher& dispatcher() override;
  WorkerContext& worker() override;
  CallHandle handle() override;
  void setDeadline(Clock::time_point deadline) override;
  void resumeRequest(const Filter* from) override;
  bool adjustIncompleteResponseBytes(int64_t delta) override;
  size_t reserveResponseWindow(size_t wanted) override;
  void resumeResponse(const Filter* from) override;
  void filterWorkDone(std::string_view filter) override {
    if (!ended_) chain_.checkWorkOf(filter);
  }
  using StreamContext::sendLocalReply;
  void refuseCall(std::string_view message) override;
  void sendLocalReply(StatusCode code, std::string_view message, HeaderMap extra_trailers) override;
  void sendLocalReply(LocalReplyReason reason, StatusCode code, std::string_view message) override;
  bool ended() const override { return ended_; }
  bool requestHeadersFiltered() const override { return chain_.requestHeadersAtTerminal(); }

  // ---- for the connection's max_buffered_response_bytes check ----
  // Remembers how far the response has been written...
  void markResponseProgress();
  // ... true if, since then, none of it was while it is backed up, and the
  // client either took no byte of the connection (`connection_moved`
  // false) or keeps this call's window shut.
  bool responseStalled(bool connection_moved) const;
  // Response bytes queued for the client.
  size_t queuedResponseBytes() const;
  // Resets the call (RST_STREAM ENHANCE_YOUR_CALM), freeing what it queued;
  // `connection_held`: what the connection's calls held when it was judged.
  void abortSlowReader(size_t connection_held);

  // ---- for overload.reset_calls_percent ----
  // Message bytes the call holds (and its request headers, which HPACK lets
  // a client make large cheaply): a request message still arriving,
  // response bytes queued for the client, and what its filters hold (the
  // proxy's queue to the backend, a response message arriving, the copy kept
  // for retries).
  uint64_t heldMessageBytes() const {
    if (reset_for_overload_) return 0;  // reset already: what is left goes as the stream does
    return decoder_.heldBytes() + response_out_.size() + chain_.heldMessageBytes() +
           (headers_counted_ ? header_bytes_ : 0);
  }
  // Resets the call (RST_STREAM ENHANCE_YOUR_CALM, RESOURCE_EXHAUSTED to
  // the client) and frees what it held at once; false (nothing done) when it
  // is closed or no longer holds `min_bytes`.
  bool resetForOverload(uint64_t min_bytes);

  // drain_timeout_ms passed with the call still open: it ends with
  // UNAVAILABLE `why` (trailers, after what is queued), its backend's call
  // is cancelled. A call that ended already is left to finish its queue.
  void endForShutdown(std::string_view why);
  // Each ignored once the call has ended (a filter's onStreamDone, a timer
  // of its own): the status the call ended with stays the one every
  // filter, the access log, and the metrics see.
  void encodeResponseHeaders() override {
    if (ended_) return;
    admitProvenMethod();
    chain_.responseHeaders();
    // A hook may have added a message that is still held (a paused filter).
    if (chain_.queuedResponseBytes() != 0 || held_above_) updateResponseWatermark();
  }
  void encodeResponseMessage(Message&& message) override;
  void encodeResponseTrailers() override;
  void setRequestBackpressure(bool blocked) override;
  size_t* heldRequestBytes() override;
  void setWatermarkCallbacks(WatermarkCallbacks* callbacks) override { watermark_callbacks_ = callbacks; }

 private:
  void startCall();
  // Sets request_id_ and the x-request-id the filters and the backend see,
  // as the listener's request id keys say.
  void assignRequestId();
  // The client's grpc-timeout and the listener's stream idle timeout; false
  // when the call ended (a malformed grpc-timeout).
  bool armCallTimers();
  // The call's id in a response header block, when the listener says so.
  void addRequestIdTo(HeaderMap& block) const;
  // Answers a grpc.health.v1 Check or Watch (listeners/health_service.h)
  // given its request message, in place of the filters and a backend.
  void answerHealthCall(const Message& request);
  // A Watch's status now: sent when it changed; the call ends if the gateway drains.
  void watchHealth();
  // After a reload: the Watch goes on under the worker's current config;
  // false if that has no health_service (the call is ended).
  bool moveWatchToCurrentConfig();
  // `service`'s status now, as this call's config and worker see it.
  health_messages::ServingStatus healthOf(std::string_view service);
  // Answers a request that is not gRPC with a plain HTTP error.
  void sendHttpError(int status, std::string_view body);
  void releaseRequestCredit();
  // status() and statusMessage() from the grpc-status and grpc-message of
  // response_trailers_ (UNKNOWN without a valid grpc-status), and
  // status_valid_.
  void takeStatusFromTrailers();
  // response_trailers_.changes() when the status was last taken from them.
  std::optional<uint32_t> status_taken_at_;
  // response_trailers_.changes() once they were queued for the wire: a
  // filter's onStreamDone must not change them after (checked by finish()).
  uint32_t trailers_queued_at_ = 0;
  // Ends the call with INTERNAL naming `filter` (whose end of the call was
  // not a valid one; "" when unknown): `what` goes to the log.
  void failFilterEnd(std::string_view filter, std::string_view what);
  // The trailers the status was taken from end a call validly (exactly one
  // grpc-status, 0-16; only a filter can leave them otherwise).
  bool status_valid_ = false;
  // After onStreamDone: trailers a filter changed there, still to go out,
  // must still be a valid end of a gRPC call (else INTERNAL replaces them).
  void checkLateTrailers();
  // Adds the call's request headers to the connection's
  // heldRequestHeaderBytes(); false when that is over the limit and this
  // call was ended for it. Released when the call closes.
  bool countRequestHeaders();
  void releaseRequestHeaders();
  // Updates the connection's incompleteRequestBytes(); false when that is
  // over the limit and this call was ended for it.
  bool countIncompleteRequest();
  // What this stream adds to that total follows decoder_.heldBytes();
  // releasing frees the partial message (the stream is done with it).
  void recountIncompleteRequest();
  void releaseIncompleteRequest();
  // Activity on the stream: restarts the stream idle clock, also after the
  // call ended while response bytes wait for the client. While they wait,
  // only its taking some (`client_took`) counts: a backend or a client
  // still sending does not make a stream whose client reads none active.
  void touch(bool client_took = false);
  void onStreamIdle();
  void armDeadlineTimer();  // for deadline_
  void onDeadline();
  // A CANCEL reset from a client whose own deadline (grpc-timeout) has
  // passed, as far as the gateway's copy of it can tell: gRPC clients reset
  // at their deadline, a little before the gateway's timer, which counts
  // from when the headers arrived and is rounded up.
  bool resetAtClientDeadline(uint32_t error_code) const;
  // A client's reset that counts toward rst_stream_burst: one that came soon
  // after the call began, unless at the client's own deadline.
  bool prematureReset(uint32_t error_code) const;
  void finish();  // onStreamDone once, timers off, stats recorded
  void releaseCallSlot();  // this call's handles drop their work from now on
  // Tells the terminal filter whether the response side is full: the bytes
  // queued for the client, or those held behind a paused response filter.
  void updateResponseWatermark();
  // Gives a call of a path new to the metrics its own series (or proves an
  // unproven one) once every filter let it through and its backend answered
  // with headers (not a trailers-only status), so made-up method names
  // cannot use them up; finish() judges the rest by their status.
  void admitProvenMethod();
  void countMethodIn(MethodStats* stats);  // the series this call counts in, or nullptr
  bool admitsMethodSeries() const;
  // A status only a method's handler sends (not one a gRPC library answers
  // with before it dispatches: a trailers-only such answer proves nothing).
  static bool isHandlerStatus(StatusCode code);
  // The chain for a call refused before it ran: only the observers.
  // The filters of entries from `from` on that observe refused calls.
  void addRefusalObservers(size_t from = 0);
  // Creates the filter of entry `index` for this call and adds it to the
  // chain (none if its factory returns nullptr: it sits the call out). False
  // when the call cannot go on: the factory threw, or the terminal made no
  // filter; the call has then ended with INTERNAL (filter_error), seen by the
  // filters made so far and the observers of refused calls after it.
  bool addFilter(size_t index);
  // `entry`'s filter for this call: nullptr when it sits the call out, or
  // when its factory threw (then logged, and `threw` set).
  FilterPtr createFilterOf(const FilterEntryConfig& entry, bool& threw);
  // Resets the stream with REFUSED_STREAM (the client may retry it
  // elsewhere); the access log and stats record `why` as UNAVAILABLE.
  void refuse(LocalReplyReason reason, std::string_view why);
  // Ends the call with RST_STREAM(h2_error), freeing what is queued for the
  // client; the access log and stats record `status` and `why`, unless the
  // call had ended already (its status waiting behind that queue).
  void resetCall(LocalReplyReason reason, StatusCode status, std::string_view why, uint32_t h2_error);

  DownstreamConnection& connection_;
  // The call's generation's entry for its listener (a Watch moves to the
  // current one at a reload: moveWatchToCurrentConfig).
  const ListenerConfig* listener_config_;
  FilterChain chain_;
  GrpcFrameDecoder decoder_;
  OutboundData response_out_;
  TimerPtr deadline_timer_;
  std::optional<Clock::time_point> client_deadline_;  // from grpc-timeout; deadline_ may be a route's, earlier
  TimerPtr idle_timer_;  // stream_idle_timeout_ms, when configured
  size_t header_bytes_ = 0;
  bool headers_too_large_ = false;
  bool malformed_binary_header_ = false;  // a -bin value that is not base64 (isBase64Value)
  bool headers_counted_ = false;  // header_bytes_ is in the connection's heldRequestHeaderBytes()
  WatermarkCallbacks* watermark_callbacks_ = nullptr;
  bool out_above_ = false;   // response_out_ is past its high watermark
  bool held_above_ = false;  // response messages held by a paused filter are past stream_buffer_bytes
  bool told_above_ = false;  // what watermark_callbacks_ was last told
  MethodStats* method_stats_ = nullptr;
  // A grpc.health.v1 call the gateway answers itself (health_service).
  enum class HealthCall : uint8_t { None, Check, Watch };
  HealthCall health_call_ = HealthCall::None;
  std::unique_ptr<struct HealthWatch> health_watch_;  // a Watch, once its request came
  bool counts_method_ = false;  // the path is a method name: the call is counted in the method metrics
  std::optional<LocalReplyReason> reply_reason_;  // set by the gateway's own replies
  bool path_unproven_ = false;    // its path's series is one no backend answered yet (PathAdmission)
  bool backend_answered_ = false; // the terminal filter passed on response headers or a status
  uint64_t progress_mark_ = 0;  // response_out_.consumedTotal() at markResponseProgress()
  bool progress_marked_ = false;
  size_t withheld_credit_ = 0;  // request bytes not yet returned to the client's window
  size_t response_window_lent_ = 0;  // reserveResponseWindow's loans, given back at onClose
  size_t incomplete_counted_ = 0;  // decoder_.heldBytes() as last added to the connection's total
  bool backpressure_ = false;
  bool call_started_ = false;
  bool chain_built_ = false;
  bool request_ended_ = false;
  bool headers_sent_ = false;
  bool response_end_queued_ = false;
  bool trailers_on_wire_ = false;
  bool ended_ = false;
  bool reset_by_client_ = false;  // RST_STREAM from the client (onClose follows)
  bool finished_ = false;
  bool closed_ = false;
  bool reset_for_overload_ = false;
  // The slot CallHandles check, from the first handle() to finish().
  CallSlots* call_slots_ = nullptr;
  CallSlots::Id call_slot_;
};

}  // namespace sluice
