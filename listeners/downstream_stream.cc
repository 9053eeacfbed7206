#include "listeners/downstream_stream.h"

#include <algorithm>

#include <nghttp2/nghttp2.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "codecs/grpc/grpc_headers.h"
#include "core/config.h"
#include "core/method_match.h"
#include "core/overload.h"
#include "core/request_id.h"
#include "core/user_code.h"
#include "core/worker_context.h"
#include "listeners/grpc_listener.h"
#include "listeners/health_service.h"
#include "listeners/worker.h"
#include "listeners/downstream_connection.h"

namespace sluice {
namespace {

// A local reply's grpc-message, before percent-encoding (at most 3 bytes per
// byte): plenty for a status message, far below HTTP/2's 64 KiB header block.
constexpr size_t kMaxLocalReplyMessage = 1024;

// now + timeout, saturating: grpc-timeout goes up to 99999999H, 11,000 years,
// which overflows the clock's 64-bit nanoseconds.
StreamContext::Clock::time_point deadlineAfter(std::chrono::nanoseconds timeout) {
  using Clock = StreamContext::Clock;
  const auto now = Clock::now();
  if (timeout >= Clock::time_point::max() - now) return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

// Why `trailers` are not an end of a gRPC call a client can read ("" when
// they are): exactly one grpc-status, a code from 0 to 16. Only a filter
// can leave them otherwise (the proxy makes a backend's so). Sent twice,
// clients differ in which one they take.
std::string whyNotACallEnd(const HeaderMap& trailers) {
  const std::string* code = nullptr;
  for (const auto& field : trailers) {  // one pass: every call ends here
    if (field.name != "grpc-status") continue;
    if (code != nullptr) return "with more than one grpc-status in the trailers";
    code = &field.value;
  }
  if (code == nullptr) return "without grpc-status in the trailers";
  if (!grpc_headers::isValidGrpcStatus(*code)) {
    return fmt::format("with grpc-status \"{}\", not a code from 0 to 16", grpc_headers::truncateMessage(*code, 64));
  }
  return {};
}

}  // namespace

// A Watch call's state: the service watched, the status last sent, and the
// timer that looks again (health changes are not pushed to calls).
struct HealthWatch {
  static constexpr std::chrono::milliseconds kInterval{500};
  std::string service;
  std::optional<health_messages::ServingStatus> sent;
  TimerPtr timer;
};

DownstreamStream::DownstreamStream(DownstreamConnection& connection, int32_t stream_id)
    : CallGeneration{connection.listener().worker().current()},
      connection_(connection),
      listener_config_(&connection.listener().config()),
      chain_(*this, *this),
      decoder_(listener_config_->max_message_bytes),
      // Response bytes queued for a slow client before the upstream is slowed down.
      response_out_(listener_config_->stream_buffer_bytes, listener_config_->stream_buffer_bytes / 2) {
  stream_id_ = stream_id;
  connection_id_ = connection.id();
  peer_address_ = connection.peerAddress();
  max_message_bytes_ = listener_config_->max_message_bytes;
  response_out_.setWatermarkCallback([this](bool above) {
    out_above_ = above;
    updateResponseWatermark();
  });
  response_out_.shareTotal(connection.bufferedResponseTotal());
}

DownstreamStream::~DownstreamStream() { releaseCallSlot(); }

CallHandle DownstreamStream::handle() {
  if (finished_) return {};
  if (call_slots_ == nullptr) {
    call_slots_ = &dispatcher().callSlots();
    call_slot_ = call_slots_->open(*this);
  }
  return {dispatcher(), call_slot_, running_filter_};
}

void DownstreamStream::releaseCallSlot() {
  // Work posted through this call's handles is dropped from now on.
  if (call_slots_ != nullptr) call_slots_->close(call_slot_);
  call_slots_ = nullptr;
}

Dispatcher& DownstreamStream::dispatcher() { return connection_.dispatcher(); }
WorkerContext& DownstreamStream::worker() { return *generation_; }

void DownstreamStream::onHeader(std::string_view name, std::string_view value) {
  if (call_started_ || headers_too_large_) return;
  // Counted as HTTP/2 counts a header list; past the limit nothing more is kept.
  header_bytes_ += headerListBytes(name, value);
  if (header_bytes_ > listener_config_->max_header_list_bytes) {
    headers_too_large_ = true;
    return;
  }
  if (request_headers_.empty()) request_headers_.reserve(16);
  request_headers_.addCopy(name, value);
  if (grpc_headers::isBinaryHeader(name) && !grpc_headers::isBase64Value(value)) malformed_binary_header_ = true;
  // Request trailers carry nothing gRPC uses: dropped.
}

void DownstreamStream::onHeadersComplete(bool trailers, bool end_stream) {
  if (!trailers) startCall();
  if (end_stream) onEndStream();
}

void DownstreamStream::startCall() {
  if (finished_) return;  // reset while its header block was still arriving (endForShutdown)
  call_started_ = true;
  connection_.stats().downstream_rq_total.inc();
  connection_.stats().downstream_rq_active.inc();
  // Kept before any check, so that a refused request's log line names it too
  // (pseudo-headers come first, so even an oversized list has its :path).
  if (const std::string* path = request_headers_.get(":path")) path_ = *path;
  assignRequestId();
  if (headers_too_large_) {
    // HPACK lets ~80 bytes stand for a block up to the cutoff (4 times the
    // limit): answering such blocks one after another cost a worker 25 times
    // the CPU of a call per byte received.
    connection_.session().chargeOversizedHeaders();
    sendLocalReply(LocalReplyReason::BadRequest, StatusCode::ResourceExhausted,
                   fmt::format("request headers exceed the limit of {} bytes (max_header_list_bytes)",
                               listener_config_->max_header_list_bytes));
    return;
  }
  if (!countRequestHeaders()) return;
  const std::string* method = request_headers_.get(":method");
  if (method == nullptr || *method != "POST") {
    sendHttpError(405, "gRPC requests must use POST\n");
    return;
  }
  if (!grpc_headers::isGrpcContentType(request_headers_.get("content-type"))) {
    sendHttpError(415, "content-type must be application/grpc\n");
    return;
  }
  auto slash = path_.find('/', 1);
  if (path_.size() < 4 || path_[0] != '/' || slash == std::string::npos || slash == 1 ||
      slash + 1 == path_.size()) {
    sendLocalReply(LocalReplyReason::BadRequest, StatusCode::Unimplemented,
                   fmt::format("malformed method name \"{}\"", path_));
    return;
  }
  // Routes and auth rules match /Service/Method as written. A path that
  // something behind the gateway could read as another method (more
  // segments, dot segments, %-escapes, a query after '?') would be judged as
  // one method and served as another; no gRPC client sends one. Names are
  // protobuf identifiers: other bytes would also reach the metrics' labels,
  // where one invalid UTF-8 sequence fails every Prometheus scrape.
  const std::string_view service_name = std::string_view(path_).substr(1, slash - 1);
  const std::string_view method_name = std::string_view(path_).substr(slash + 1);
  auto dots = [](std::string_view segment) { return segment == "." || segment == ".."; };
  auto names = [](std::string_view segment) {
    return std::all_of(segment.begin(), segment.end(), [](char c) { return isMethodNameChar(c); });  // inlined
  };
  if (!names(service_name) || !names(method_name) || dots(service_name) || dots(method_name)) {
    sendLocalReply(LocalReplyReason::BadRequest, StatusCode::Unimplemented,
                   fmt::format("malformed method name \"{}\": a gRPC path is /Service/Method, names of letters, "
                               "digits, '_', '.' and '-' (no further '/', dot segment, '%'-escape or query)",
                               path_));
    return;
  }
  service_ = service_name;
  method_ = method_name;
  // A path seen before counts from here; a new one once its call passed
  // every filter and its backend showed the method exists
  // (admitProvenMethod), or else under "(other)".
  counts_method_ = true;
  countMethodIn(worker().stats().methodForCall(path_, service_, method_, PathAdmission::Known, &path_unproven_));
  if (malformed_binary_header_) {
    // Not passed on: a C-core backend (grpc++, Python, Ruby...) would end
    // its whole connection over it, failing every client's calls on it.
    // grpc-go's own answer.
    std::string_view key;
    for (const Header& h : request_headers_) {
      if (grpc_headers::isBinaryHeader(h.name) && !grpc_headers::isBase64Value(h.value)) {
        key = h.name;
        break;
      }
    }
    sendLocalReply(LocalReplyReason::BadRequest, StatusCode::Internal,
                   fmt::format("malformed binary metadata in header \"{}\": a -bin value must be base64", key));
    return;
  }

  if (listener_config_->health_service) {
    if (path_ == health_messages::kCheckPath) health_call_ = HealthCall::Check;
    if (path_ == health_messages::kWatchPath) health_call_ = HealthCall::Watch;
    // Answered when its request message arrives (onMessage), draining or
    // overloaded too: then NOT_SERVING is the answer a probe should get.
    if (health_call_ != HealthCall::None) {
      armCallTimers();
      return;
    }
  }
  if (connection_.finalGoawaySent()) {
    // Past the GOAWAY naming the last stream (nghttp2 drops the streams
    // above it unseen; this is for any it lets through). Calls that arrive
    // between the drain's first GOAWAY and that one were sent before the
    // client knew: they are served, since gRPC's C-core clients (C++,
    // Python, Ruby...) fail a REFUSED_STREAM call instead of retrying it.
    connection_.stats().downstream_rq_refused.inc();
    refuse(LocalReplyReason::Draining, "the gateway is shutting down (draining)");
    return;
  }
  if (connection_.listener().worker().overload().refusingCalls()) {
    // Answered, not reset: the message says why, and UNAVAILABLE is what
    // clients' retry policies and load balancers already treat as "elsewhere".
    connection_.stats().downstream_rq_refused.inc();
    sendLocalReply(LocalReplyReason::Overload, StatusCode::Unavailable,
                   "the gateway is overloaded: its heap is past overload.refuse_calls_percent of "
                   "overload.max_heap_bytes; try again later");
    return;
  }
  if (!armCallTimers()) return;
  chain_built_ = true;
  const auto& entries = listener_config_->filters;
  chain_.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!addFilter(i)) return;
  }
  spdlog::debug("[C{}][S{}] {} from {}", connection_id_, stream_id_, path_, peer_address_);
  chain_.requestHeaders();
}

bool DownstreamStream::armCallTimers() {
  if (const std::string* timeout = request_headers_.get("grpc-timeout")) {
    auto parsed = grpc_headers::parseTimeout(*timeout);
    if (!parsed) {
      sendLocalReply(LocalReplyReason::BadRequest, StatusCode::Internal,
                     fmt::format("malformed grpc-timeout \"{}\"", *timeout));
      return false;
    }
    client_deadline_ = deadlineAfter(*parsed);
    setDeadline(*client_deadline_);
  }
  if (listener_config_->stream_idle_timeout_ms > 0) {
    idle_timer_ = std::make_unique<Timer>(dispatcher(), [this] { onStreamIdle(); });
    touch();
  }
  return true;
}

void DownstreamStream::assignRequestId() {
  const std::string* given = request_headers_.get(request_id::kHeader);
  if (given != nullptr && listener_config_->preserve_external_request_id && request_id::acceptable(*given)) {
    request_id_ = *given;
    // One id per call: a repeated header would reach the backend as "a, b".
    auto copies = std::count_if(request_headers_.begin(), request_headers_.end(),
                                [](const Header& h) { return h.name == request_id::kHeader; });
    if (copies > 1) request_headers_.set(request_id::kHeader, request_id_);
    return;
  }
  if (!listener_config_->generate_request_id) {
    // Not trusted, or not an id: nobody downstream should take it for one.
    if (given != nullptr) request_headers_.remove(request_id::kHeader);
    return;
  }
  request_id_ = request_id::generate();
  request_headers_.set(request_id::kHeader, request_id_);
}

void DownstreamStream::addRequestIdTo(HeaderMap& block) const {
  if (listener_config_->always_set_request_id_in_response && !request_id_.empty()) {
    block.set(request_id::kHeader, request_id_);
  }
}

bool DownstreamStream::isHandlerStatus(StatusCode code) {
  switch (code) {
    case StatusCode::Ok:
    case StatusCode::InvalidArgument:
    case StatusCode::NotFound:
    case StatusCode::AlreadyExists:
    case StatusCode::FailedPrecondition:
    case StatusCode::Aborted:
    case StatusCode::OutOfRange:
    case StatusCode::DataLoss:
      return true;
    default:
      return false;
  }
}

bool DownstreamStream::admitsMethodSeries() const {
  // Every filter let the call through; or every one before the terminal
  // did and it was routed, whatever became of it then (no healthy endpoint,
  // a circuit breaker): the method is real, the backend just failed it.
  return health_call_ != HealthCall::None || chain_.requestHeadersPassed() ||
         (chain_.requestHeadersAtTerminal() && route() != nullptr);
}

void DownstreamStream::admitProvenMethod() {
  if (!counts_method_ || (method_stats_ != nullptr && !path_unproven_)) return;  // a path with its series
  // Response headers without a status: the backend serves the method. (An
  // unknown one gets a trailers-only UNIMPLEMENTED, judged in finish().)
  if (response_headers_.get("grpc-status") != nullptr) return;
  backend_answered_ = true;
  if (!admitsMethodSeries()) return;
  MethodStats* series = worker().stats().methodForCall(path_, service_, method_, PathAdmission::Proven);
  path_unproven_ = false;
  if (method_stats_ == nullptr) countMethodIn(series);
}

void DownstreamStream::countMethodIn(MethodStats* stats) {
  method_stats_ = stats;
  if (stats == nullptr) return;
  // Messages count as they pass (a long stream's rate shows while it runs);
  // those that passed before the series was chosen, now.
  stats->started.inc();
  stats->msg_received.inc(counters_.request_messages);
  stats->msg_sent.inc(counters_.response_messages);
}

void DownstreamStream::setDeadline(Clock::time_point deadline) {
  deadline_ = deadline;
  if (ended_) return;
  if (!deadline_timer_) {
    deadline_timer_ = std::make_unique<Timer>(dispatcher(), [this] { onDeadline(); });
  }
  armDeadlineTimer();
}

void DownstreamStream::armDeadlineTimer() {
  // Rounded up: the gateway never gives up before the client's deadline.
  auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline_ - Clock::now());
  deadline_timer_->enable(std::max(left, std::chrono::milliseconds(0)));
}

void DownstreamStream::onDeadline() {
  if (closed_) return;
  const bool response_queued = headers_sent_ && !response_out_.empty();
  // The client's own deadline (not only a route's timeout_ms) has passed.
  const bool clients = client_deadline_ && deadline_ && *deadline_ >= *client_deadline_;
  if (response_queued && clients) {
    // What is queued for the client is of no use to it now, and a status
    // queued behind bytes it does not take would keep the call's memory
    // until the connection ends. Reset, as gRPC servers do at a deadline;
    // also a call that ended, whose client has not taken its last messages
    // and status.
    resetCall(LocalReplyReason::Deadline, StatusCode::DeadlineExceeded,
              "deadline exceeded at the gateway, response still queued: stream reset", NGHTTP2_CANCEL);
    return;
  }
  if (!ended_) {
    sendLocalReply(LocalReplyReason::Deadline, StatusCode::DeadlineExceeded, "deadline exceeded at the gateway");
  }
  // A gateway-imposed deadline ended the call; the status waits behind
  // what the client has not taken yet, until the client's own deadline.
  if (client_deadline_ && headers_sent_ && !response_out_.empty() && !closed_) {
    deadline_ = client_deadline_;
    armDeadlineTimer();
  }
}

bool DownstreamStream::resetAtClientDeadline(uint32_t error_code) const {
  if (error_code != NGHTTP2_CANCEL || !client_deadline_) return false;
  // The client's deadline is earlier than the gateway's copy by the
  // headers' trip here and by how much the client rounded grpc-timeout up
  // (grpc rounds to three significant figures: at most 1%).
  const auto slack = std::chrono::milliseconds(10) + (*client_deadline_ - startTime()) / 50;
  return Clock::now() >= *client_deadline_ - slack;
}

bool DownstreamStream::prematureReset(uint32_t error_code) const {
  // A rapid-reset attacker gains by resetting calls the moment they start;
  // resets that come later are bounded by max_concurrent_streams over the
  // stream's life, no faster than calls a backend answers in that time.
  // After a second (Envoy's premature_reset_min_stream_lifetime), any reset
  // is an ordinary cancel. A client resets at its own deadline (gRPC
  // clients do, a little before the gateway's timer): with a hung or slow
  // backend, every call of such a client ends so and none finishes to pay a
  // reset back, and the client's connection, with its healthy calls, was
  // closed past the bucket. Not premature past a floor, so a client cannot
  // claim a 1 ns deadline to reset at once for free.
  constexpr auto kOrdinaryLifetime = std::chrono::seconds(1);
  constexpr auto kDeadlineLifetime = std::chrono::milliseconds(100);
  const auto lived = Clock::now() - startTime();
  if (lived >= kOrdinaryLifetime) return false;
  return !(lived >= kDeadlineLifetime && resetAtClientDeadline(error_code));
}

void DownstreamStream::onData(const uint8_t* data, size_t len) {
  if (!call_started_ || ended_) {
    // Nobody will read these bytes: give the window back at once.
    connection_.session().consume(stream_id_, len);
    connection_.wake();
    return;
  }
  withheld_credit_ += len;
  touch();
  Status s = decoder_.decode({reinterpret_cast<const char*>(data), len}, *this);
  if (!s.isOk() && !ended_) {
    sendLocalReply(s.code() == StatusCode::ResourceExhausted ? LocalReplyReason::MessageTooLarge
                                                             : LocalReplyReason::BadRequest,
                   s.code(), s.message());
    return;
  }
  if (!countIncompleteRequest()) return;
  releaseRequestCredit();
}

bool DownstreamStream::countRequestHeaders() {
  // Held until the call closes: filters, retries and the access log read them.
  connection_.adjustHeldRequestHeaderBytes(static_cast<int64_t>(header_bytes_));
  headers_counted_ = true;
  const uint64_t limit = listener_config_->max_held_request_header_bytes;
  if (connection_.heldRequestHeaderBytes() <= limit) return true;
  releaseRequestHeaders();  // the call ends here; its headers go with the stream
  sendLocalReply(LocalReplyReason::BadRequest, StatusCode::ResourceExhausted,
                 fmt::format("request headers of the open calls on this connection would hold more than {} bytes "
                             "(max_held_request_header_bytes)",
                             limit));
  return false;
}

void DownstreamStream::releaseRequestHeaders() {
  if (!headers_counted_) return;
  connection_.adjustHeldRequestHeaderBytes(-static_cast<int64_t>(header_bytes_));
  headers_counted_ = false;
}

bool DownstreamStream::countIncompleteRequest() {
  // Window credit for a message still arriving goes back at once (a message
  // may be larger than the window), so without this a client could make one
  // connection hold max_message_bytes per stream. Once complete, a message
  // may wait whole for a backend that is not reading: it still counts.
  recountIncompleteRequest();
  const uint64_t limit = listener_config_->incompleteRequestLimit();
  if (ended_ || connection_.incompleteRequestBytes() <= limit) return true;
  sendLocalReply(LocalReplyReason::MessageTooLarge, StatusCode::ResourceExhausted,
                 fmt::format("request messages on this connection, arriving, held by a filter or waiting for their "
                             "backend, would hold more than {} bytes (max_incomplete_request_bytes)",
                             limit));
  releaseIncompleteRequest();  // it will never be completed
  return false;
}

void DownstreamStream::recountIncompleteRequest() {
  // A message still arriving, and whole ones held behind a paused filter (a
  // fault delay, a filter waiting on its own work): credit for both went
  // back to the client as they arrived. Once past the chain, the terminal
  // filter counts what it queues itself (heldRequestBytes()).
  const size_t held = closed_ ? 0 : decoder_.heldBytes() + chain_.queuedRequestBytes();
  connection_.adjustIncompleteRequestBytes(static_cast<int64_t>(held) - static_cast<int64_t>(incomplete_counted_));
  incomplete_counted_ = held;
}

void DownstreamStream::releaseIncompleteRequest() {
  decoder_ = GrpcFrameDecoder(max_message_bytes_);
  recountIncompleteRequest();
}

void DownstreamStream::encodeResponseMessage(Message&& message) {
  if (ended_) return;
  // The backend is talking, whether or not a filter drops what it says.
  touch();
  chain_.responseMessage(std::move(message));
  // Usually the message went straight through to response_out_, which keeps
  // its own watermark; only a paused response filter leaves bytes behind.
  if (chain_.queuedResponseBytes() != 0 || held_above_) updateResponseWatermark();
}

void DownstreamStream::resumeResponse(const Filter* from) {
  chain_.continueResponse(from);
  if (held_above_) updateResponseWatermark();
}

void DownstreamStream::updateResponseWatermark() {
  // Held bytes count like bytes queued for a slow client, with the same
  // marks: else a filter that pauses responses lets the backend fill memory.
  const size_t held = chain_.queuedResponseBytes();
  if (held > listener_config_->stream_buffer_bytes) {
    held_above_ = true;
  } else if (held <= listener_config_->stream_buffer_bytes / 2) {
    held_above_ = false;
  }
  const bool above = out_above_ || held_above_;
  if (above == told_above_ || watermark_callbacks_ == nullptr) return;
  told_above_ = above;
  if (above) {
    watermark_callbacks_->onAboveWriteBufferHighWatermark();
  } else {
    watermark_callbacks_->onBelowWriteBufferLowWatermark();
  }
}

bool DownstreamStream::onMessage(Message&& message) {
  counters_.request_messages++;
  if (method_stats_ != nullptr) method_stats_->msg_received.inc();
  counters_.request_bytes += message.payload.size();
  if (health_call_ != HealthCall::None) {
    answerHealthCall(message);
    return !ended_;
  }
  chain_.requestMessage(std::move(message));
  return !ended_;
}

health_messages::ServingStatus DownstreamStream::healthOf(std::string_view service) {
  const bool gateway_serving =
      !connection_.draining() && !connection_.listener().worker().overload().refusingCalls();
  return servingStatus(*listener_config_->health_service, service, gateway_serving, worker().clusterManager());
}

void DownstreamStream::answerHealthCall(const Message& request) {
  if (health_watch_) {
    sendLocalReply(LocalReplyReason::BadRequest, StatusCode::Internal, "a Watch call carries one request message");
    return;
  }
  // The gateway's own method: counted from now, so a Watch open for hours
  // shows in the metrics while it runs, not when it ends.
  if (counts_method_ && (method_stats_ == nullptr || path_unproven_)) {
    MethodStats* series = worker().stats().methodForCall(path_, service_, method_, PathAdmission::Proven);
    path_unproven_ = false;
    if (method_stats_ == nullptr) countMethodIn(series);
  }
  HealthRequest asked = readHealthRequest(request);
  if (asked.code != StatusCode::Ok) {
    sendLocalReply(LocalReplyReason::BadRequest, asked.code, asked.message);  // a request no server could read
    return;
  }
  response_headers_.add("content-type", "application/grpc");
  if (health_call_ == HealthCall::Watch) {
    health_watch_ = std::make_unique<HealthWatch>();
    health_watch_->service = std::move(asked.service);
    health_watch_->timer = std::make_unique<Timer>(dispatcher(), [this] { watchHealth(); });
    // The gateway itself is what this call waits on: it is never idle, at
    // any stream_idle_timeout_ms (one shorter than the look would otherwise
    // end every Watch before its first look).
    if (idle_timer_) idle_timer_->disable();
    watchHealth();
    return;
  }
  // An answer, as health.proto has it (NOT_FOUND for a service not served),
  // not a refusal: no local-reply count.
  const health_messages::ServingStatus status = healthOf(asked.service);
  if (status == health_messages::ServingStatus::ServiceUnknown) {
    response_trailers_.add("grpc-status", grpc_headers::formatGrpcStatus(StatusCode::NotFound));
    response_trailers_.add("grpc-message", grpc_headers::percentEncode(unknownServiceMessage(asked.service)));
  } else {
    sendMessage(Message{false, health_messages::encodeResponse(status)});
    response_trailers_.add("grpc-status", grpc_headers::formatGrpcStatus(StatusCode::Ok));
  }
  sendTrailers();
  releaseRequestCredit();
}

void DownstreamStream::watchHealth() {
  if (ended_) return;
  if (generation_->retired() && !moveWatchToCurrentConfig()) return;
  HealthWatch& watch = *health_watch_;
  const health_messages::ServingStatus status = healthOf(watch.service);
  if (status != watch.sent) {
    watch.sent = status;
    sendMessage(Message{false, health_messages::encodeResponse(status)});
  }
  if (connection_.draining()) {
    // NOT_SERVING went out above; the client should watch another gateway,
    // and the drain must not wait for a call that never ends by itself.
    sendLocalReply(LocalReplyReason::Draining, StatusCode::Unavailable, "the gateway is shutting down (draining)");
    return;
  }
  watch.timer->enable(HealthWatch::kInterval);
}

bool DownstreamStream::moveWatchToCurrentConfig() {
  // A reload. Ending the Watch would put every gRPC client that checks
  // health itself (gRFC A17) into TRANSIENT_FAILURE for a round trip at each
  // reload, and keeping the old config would freeze its answers (the old
  // clusters run no more health checks) and hold that config for as long as
  // the client watches. A Watch builds no filter chain: nothing of the old
  // config is in use, so it goes on under the new one, whose answer goes out
  // if it differs (a service the new config dropped: SERVICE_UNKNOWN). The
  // old config is let go of outside this timer's callback.
  GenerationPtr old = std::exchange(generation_, connection_.listener().worker().current());
  dispatcher().post([old = std::move(old)] {});
  listener_config_ = &connection_.listener().config();
  if (listener_config_->health_service) return true;
  // What a server without the health service answers: the client stops
  // checking and treats the gateway as healthy (gRFC A17).
  sendLocalReply(LocalReplyReason::BadRequest, StatusCode::Unimplemented,
                 "health_service is no longer configured on this listener (the config was reloaded)");
  return false;
}

void DownstreamStream::releaseRequestCredit() {
  // Window credit goes back only while the request side keeps up: when the
  // upstream (or a paused filter) holds too much, the client must wait.
  if (withheld_credit_ == 0 || closed_) return;
  // Request bytes held behind a paused filter count against the same budget.
  if (!ended_ && (backpressure_ || chain_.queuedRequestBytes() > listener_config_->stream_buffer_bytes)) return;
  connection_.session().consume(stream_id_, withheld_credit_);
  withheld_credit_ = 0;
  connection_.wake();
}

size_t* DownstreamStream::heldRequestBytes() { return connection_.heldRequestBytesTotal(); }

bool DownstreamStream::adjustIncompleteResponseBytes(int64_t delta) {
  connection_.adjustIncompleteResponseBytes(delta);
  return delta <= 0 || connection_.incompleteResponseBytes() <= listener_config_->incompleteResponseLimit();
}

size_t DownstreamStream::reserveResponseWindow(size_t wanted) {
  if (closed_) return 0;
  const size_t granted = connection_.reserveResponseWindow(wanted);
  response_window_lent_ += granted;
  return granted;
}

void DownstreamStream::setRequestBackpressure(bool blocked) {
  backpressure_ = blocked;
  if (blocked) return;
  // The backend took a buffer's worth: a slow upload is not an idle one.
  touch();
  releaseRequestCredit();
}

void DownstreamStream::onOutboundDrained(size_t) {
  // Response bytes are on their way to the client: a call whose backend
  // waits on flow control for a slow reader is not idle.
  touch(/*client_took=*/true);
}

void DownstreamStream::resumeRequest(const Filter* from) {
  chain_.continueRequest(from);
  recountIncompleteRequest();  // what the paused filter held has moved on
  releaseRequestCredit();
}

void DownstreamStream::onEndStream() {
  if (request_ended_) return;
  request_ended_ = true;
  if (!call_started_ || ended_) return;
  Status s = decoder_.finish();
  if (!s.isOk()) {
    sendLocalReply(LocalReplyReason::BadRequest, s.code(), s.message());
    return;
  }
  if (health_call_ != HealthCall::None) {
    // A Check is answered at its message; a Watch goes on after it.
    if (!health_watch_) {
      sendLocalReply(LocalReplyReason::BadRequest, StatusCode::Internal, "a health call carries one request message");
    }
    return;
  }
  chain_.requestEnd();
}

void DownstreamStream::sendHeaders() {
  if (ended_ || headers_sent_) return;
  // What every gRPC reply carries, if whoever made the headers left it out
  // (a filter answering a call itself): grpc-go and grpc-java refuse a
  // response without content-type.
  bool has_status = false;
  bool has_content_type = false;
  for (const auto& h : response_headers_) {
    if (h.name == ":status") has_status = true;
    if (h.name == "content-type") has_content_type = true;
  }
  if (!has_status) response_headers_.add(":status", "200");
  if (!has_content_type) response_headers_.add("content-type", "application/grpc");
  addRequestIdTo(response_headers_);
  headers_sent_ = true;
  connection_.session().submitResponse(stream_id_, response_headers_, false);
  connection_.wake();
}

void DownstreamStream::sendMessage(Message&& message) {
  if (ended_) return;
  // Checked as it arrived from the backend, but a filter may have grown it
  // since (or made it): a client would refuse it, and past 4 GiB its length
  // prefix could not say it.
  if (message.payload.size() > max_message_bytes_) {
    sendLocalReply(LocalReplyReason::MessageTooLarge, StatusCode::ResourceExhausted,
                   fmt::format("a response message of {} bytes, as the filters left it, is over max_message_bytes ({})",
                               message.payload.size(), max_message_bytes_));
    return;
  }
  if (!headers_sent_) sendHeaders();
  counters_.response_messages++;
  if (method_stats_ != nullptr) method_stats_->msg_sent.inc();
  counters_.response_bytes += message.payload.size();
  touch();
  response_out_.appendMessage(std::move(message));
  if (connection_.bufferedResponseBytes() > listener_config_->max_buffered_response_bytes) {
    connection_.onResponseBufferFull();
  }
  connection_.session().resumeData(stream_id_);
  connection_.wake();
}

void DownstreamStream::markResponseProgress() {
  progress_mark_ = response_out_.consumedTotal();
  progress_marked_ = true;
}

bool DownstreamStream::responseStalled(bool connection_moved) const {
  // Any size of queue: calls each under stream_buffer_bytes (ended ones
  // too, their status queued behind) add up past the connection's limit.
  if (!progress_marked_ || closed_ || response_out_.empty() || response_out_.consumedTotal() != progress_mark_) {
    return false;
  }
  // Nothing of it went out. If the client took nothing at all, it is not
  // reading; if it took other bytes, this call waits only for its own
  // window, which the client keeps shut (a slow reader's calls may just be
  // waiting their turn behind a backed-up socket).
  return !connection_moved || connection_.session().sendWindow(stream_id_) == 0;
}

size_t DownstreamStream::queuedResponseBytes() const { return response_out_.size(); }

void DownstreamStream::abortSlowReader(size_t connection_held) {
  // Each call's backend may send a whole stream window ahead of a client
  // that does not read: without a cap per connection, one client holding
  // many such calls open could make the gateway buffer gigabytes. The
  // client sees RESOURCE_EXHAUSTED (unless the call had ended already, its
  // status queued behind the bytes the client does not take).
  std::string why = fmt::format(
      "the client took none of the call's response for {} ms while its connection's calls held {} response "
      "bytes, over max_buffered_response_bytes ({}); this call had {} queued",
      DownstreamConnection::kSlowReaderGrace.count(), connection_held,
      listener_config_->max_buffered_response_bytes, response_out_.size());
  spdlog::info("[C{}][S{}] reset (ENHANCE_YOUR_CALM): {}", connection_id_, stream_id_, why);
  resetCall(LocalReplyReason::SlowReader, StatusCode::ResourceExhausted, why, NGHTTP2_ENHANCE_YOUR_CALM);
}

bool DownstreamStream::resetForOverload(uint64_t min_bytes) {
  // Measured again: another call's reset may have ended this one since.
  const uint64_t held = heldMessageBytes();
  if (closed_ || held < min_bytes) return false;
  reset_for_overload_ = true;
  std::string why = fmt::format("the call held {:.1f} MiB of messages while the gateway's heap was past "
                                "overload.reset_calls_percent of overload.max_heap_bytes",
                                static_cast<double>(held) / (1 << 20));
  spdlog::warn("[C{}][S{}] {} from {}: reset (ENHANCE_YOUR_CALM): {}", connection_id_, stream_id_, path_,
               peer_address_, why);
  resetCall(LocalReplyReason::Overload, StatusCode::ResourceExhausted, why, NGHTTP2_ENHANCE_YOUR_CALM);
  releaseIncompleteRequest();  // the RST_STREAM may wait behind a client that does not read
  return true;
}

void DownstreamStream::endForShutdown(std::string_view why) {
  if (ended_ || closed_) return;
  if (!call_started_) {
    // Its request headers are still arriving: never processed.
    resetCall(LocalReplyReason::Draining, StatusCode::Unavailable, why, NGHTTP2_REFUSED_STREAM);
    return;
  }
  sendLocalReply(LocalReplyReason::Draining, StatusCode::Unavailable, why);
}

void DownstreamStream::encodeResponseTrailers() {
  if (ended_) return;
  // From the terminal filter: the backend's status (or a custom terminal's).
  // A trailers-only answer proves the method only when its status is one
  // of the handler's own: gRPC libraries answer DEADLINE_EXCEEDED (a
  // deadline passed on arrival), RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL,
  // CANCELLED... before they look the method up.
  // Only asked for a path still without its proof (finish() reads it then):
  // a known method's calls skip the lookup.
  if (!backend_answered_ && counts_method_ && (method_stats_ == nullptr || path_unproven_)) {
    const std::string* code = response_trailers_.get("grpc-status");
    const auto status = code != nullptr ? grpc_headers::parseGrpcStatus(*code) : std::nullopt;
    backend_answered_ = status.has_value() && isHandlerStatus(*status);
  }
  // The trailer hooks read the status as ctx.status() too (core/filter.h).
  takeStatusFromTrailers();
  chain_.responseTrailers();
}

void DownstreamStream::takeStatusFromTrailers() {
  status_taken_at_ = response_trailers_.changes();
  const std::string* code = response_trailers_.get("grpc-status");
  const auto parsed = code != nullptr ? grpc_headers::parseGrpcStatus(*code) : std::nullopt;
  status_ = parsed.value_or(StatusCode::Unknown);
  const std::string* msg = response_trailers_.get("grpc-message");
  status_message_ = msg != nullptr ? grpc_headers::percentDecode(*msg) : std::string();
  status_valid_ = whyNotACallEnd(response_trailers_).empty();
}

void DownstreamStream::failFilterEnd(std::string_view filter, std::string_view what) {
  const std::string name = filter.empty() ? std::string("a filter") : fmt::format("filter \"{}\"", filter);
  logUserCodeFailure(name, what, "failed");
  sendLocalReply(LocalReplyReason::FilterError, StatusCode::Internal, name + " failed");
}

void DownstreamStream::sendTrailers() {
  if (ended_) return;
  // Again if the trailers changed since (a trailer hook, a local reply).
  if (response_trailers_.changes() != status_taken_at_) takeStatusFromTrailers();
  if (!status_valid_) {
    // A filter's end of the call (its own answer, or a backend's trailers it
    // changed) without a grpc-status a client can read: gRPC clients fail
    // or, grpcio 1.51, crash on one. The filter answering runs now; one
    // that changed a backend's trailers ran before.
    failFilterEnd(!running_filter_.empty() ? running_filter_ : chain_.trailersChangedBy(),
                  "it ended the call " + whyNotACallEnd(response_trailers_));
    return;
  }
  ended_ = true;
  // The deadline still bounds delivering what is queued (see its timer).
  if (deadline_timer_ && response_out_.empty()) deadline_timer_->disable();
  if (!headers_sent_) {
    // Trailers-only: one HEADERS frame with END_STREAM carries everything.
    HeaderMap block = response_headers_;
    if (block.get(":status") == nullptr) block.add(":status", "200");
    if (block.get("content-type") == nullptr) block.add("content-type", "application/grpc");
    for (const auto& h : response_trailers_) block.add(h.name, h.value);
    addRequestIdTo(block);
    headers_sent_ = true;
    connection_.session().submitResponse(stream_id_, block, true);
  } else {
    // The client has the call's id from the headers: not a backend's second one.
    if (listener_config_->always_set_request_id_in_response && !request_id_.empty()) {
      response_trailers_.remove(request_id::kHeader);
    }
    trailers_on_wire_ = true;
    trailers_queued_at_ = response_trailers_.changes();
    response_end_queued_ = true;
    connection_.session().resumeData(stream_id_);
  }
  connection_.wake();
  finish();
}

void DownstreamStream::refuse(LocalReplyReason reason, std::string_view why) {
  // RST_STREAM(REFUSED_STREAM), not a gRPC reply: it tells the client the
  // call was never processed, so its gRPC library retries it by itself, on
  // another connection (the client has our GOAWAY). An UNAVAILABLE answer
  // would count as processed and fail the call. The log and stats say why.
  resetCall(reason, StatusCode::Unavailable, why, NGHTTP2_REFUSED_STREAM);
}

void DownstreamStream::resetCall(LocalReplyReason reason, StatusCode status, std::string_view why,
                                 uint32_t h2_error) {
  if (!ended_) {  // an ended call was counted and logged with its own status
    ended_ = true;
    status_ = status;
    status_message_ = std::string(why);
    connection_.stats().local_replies[static_cast<size_t>(reason)].inc();
  }
  spdlog::debug("[C{}][S{}] reset ({}): {}", connection_id_, stream_id_, nghttp2_http2_strerror(h2_error), why);
  connection_.session().resetStream(stream_id_, h2_error);
  releaseRequestCredit();
  // Done now, not when the RST_STREAM is written (a client that does not
  // read may hold it up for long): what was queued for the client is freed,
  // the filters are told, and the proxy cancels the backend's call.
  response_out_.abandon();
  finish();
  connection_.wake();
}

void DownstreamStream::refuseCall(std::string_view message) {
  if (ended_) return;
  if (headers_sent_) {
    sendLocalReply(StatusCode::Unavailable, message);
    return;
  }
  refuse(LocalReplyReason::UpstreamFailure, message);
}

void DownstreamStream::sendLocalReply(LocalReplyReason reason, StatusCode code, std::string_view message) {
  reply_reason_ = reason;
  sendLocalReply(code, message);
}

void DownstreamStream::sendLocalReply(StatusCode code, std::string_view message, HeaderMap extra_trailers) {
  if (ended_) return;
  // Past the deadline, what failed failed because of it (a backend that
  // gave up at the grpc-timeout it was sent, heard before the gateway's own
  // timer ran on a busy loop): the call ends as at the deadline.
  if (deadline_timer_ && code != StatusCode::DeadlineExceeded && Clock::now() >= *deadline_) {
    deadline_timer_->disable();
    onDeadline();
    return;
  }
  if (!extra_trailers.empty()) {
    // A filter's own fields: they too must be ones HTTP/2 can carry, and
    // leave the reply's code and message alone.
    std::string why = invalidHeaderField(extra_trailers);
    if (!why.empty()) {
      why = "it left a header field HTTP/2 cannot carry: " + why;
    } else if (extra_trailers.get("grpc-status") != nullptr || extra_trailers.get("grpc-message") != nullptr) {
      why = "its extra trailers set grpc-status or grpc-message, which are the reply's own";
    }
    if (!why.empty()) {
      reply_reason_.reset();
      failFilterEnd(running_filter_, "in sendLocalReply: " + why);
      return;
    }
  }
  // Replies asked for by filters are counted by what they say.
  LocalReplyReason reason = reply_reason_.value_or(
      code == StatusCode::Unimplemented ? LocalReplyReason::NoRoute
      : code == StatusCode::Unavailable ? LocalReplyReason::UpstreamFailure
      : code == StatusCode::DeadlineExceeded ? LocalReplyReason::Deadline
                                            : LocalReplyReason::Filter);
  connection_.stats().local_replies[static_cast<size_t>(reason)].inc();
  // Quoted and escaped ({:?}): the text may carry a backend's decoded
  // grpc-message, line breaks included.
  spdlog::debug("[C{}][S{}] local reply {}: {:?}", connection_id_, stream_id_, statusCodeName(code), message);
  response_trailers_.clear();
  response_trailers_.add("grpc-status", grpc_headers::formatGrpcStatus(code));
  if (!message.empty()) {
    response_trailers_.add("grpc-message",
                           grpc_headers::percentEncode(grpc_headers::truncateMessage(message, kMaxLocalReplyMessage)));
  }
  for (const auto& h : extra_trailers) response_trailers_.add(h.name, h.value);
  if (!headers_sent_) {
    response_headers_.clear();
  }
  sendTrailers();
  // The request is abandoned: whatever the client still sends is dropped,
  // and its window credit returned so the connection does not stall.
  releaseRequestCredit();
}

void DownstreamStream::sendHttpError(int status, std::string_view body) {
  ended_ = true;
  connection_.stats().local_replies[static_cast<size_t>(LocalReplyReason::BadRequest)].inc();
  status_ = StatusCode::Unknown;
  status_message_ = fmt::format("HTTP {}", status);
  http_status_ = status;
  HeaderMap headers;
  headers.add(":status", std::to_string(status));
  headers.add("content-type", "text/plain");
  if (status == 405) headers.add("allow", "POST");
  addRequestIdTo(headers);
  response_out_.appendRaw(std::string(body));
  response_end_queued_ = true;
  headers_sent_ = true;
  connection_.session().submitResponse(stream_id_, headers, false);
  connection_.wake();
  finish();
}

void DownstreamStream::touch(bool client_took) {
  if (idle_timer_ == nullptr || health_watch_ || closed_) return;
  if (ended_ && response_out_.empty()) return;
  if (headers_sent_ && !response_out_.empty() && !client_took) return;
  idle_timer_->enable(std::chrono::milliseconds(listener_config_->stream_idle_timeout_ms));
}

void DownstreamStream::onStreamIdle() {
  if (closed_) return;
  const uint32_t ms = listener_config_->stream_idle_timeout_ms;
  if (headers_sent_ && !response_out_.empty()) {
    // Nothing the gateway holds for the client went out for that long: it
    // does not read this stream. A status queued behind those bytes would
    // never reach it and would keep the call's memory until the connection
    // ends: reset, as at a deadline (also a call that ended, whose last
    // messages and status wait).
    resetCall(LocalReplyReason::Deadline, StatusCode::DeadlineExceeded,
              fmt::format("stream idle for {} ms (stream_idle_timeout_ms), response still queued: stream reset", ms),
              NGHTTP2_CANCEL);
    return;
  }
  if (!ended_) {
    sendLocalReply(LocalReplyReason::Deadline, StatusCode::DeadlineExceeded,
                   fmt::format("stream idle for {} ms (stream_idle_timeout_ms)", ms));
  }
}

void DownstreamStream::finish() {
  if (finished_) return;
  finished_ = true;
  releaseCallSlot();
  // Kept while response bytes wait for the client: its deadline still ends them.
  if (deadline_timer_ && (closed_ || response_out_.empty())) deadline_timer_->disable();
  if (idle_timer_ && (closed_ || response_out_.empty())) idle_timer_->disable();
  if (health_watch_) health_watch_->timer->disable();
  if (call_started_) connection_.stats().downstream_rq_active.dec();
  // Refused before its path was read as a method (not POST, not gRPC, a
  // malformed path, headers over a limit): counted under "(other)" all the
  // same, or an error ratio over grpc_server_handled_total would miss them.
  if (call_started_ && !counts_method_ && method_stats_ == nullptr) countMethodIn(&worker().stats().otherMethod());
  if (counts_method_ && (method_stats_ == nullptr || path_unproven_)) {
    // A method the backend does not know (UNIMPLEMENTED) takes no series: a
    // client inventing names behind a catch-all route would use them up.
    // One no backend answered (a deadline, a cancel, no endpoint) takes one
    // of the few unproven series.
    const bool admit = admitsMethodSeries() && status_ != StatusCode::Unimplemented;
    const PathAdmission how = !admit             ? PathAdmission::Known
                              : backend_answered_ ? PathAdmission::Proven
                                                  : PathAdmission::Unproven;
    if (method_stats_ == nullptr) {
      MethodStats* series =
          how == PathAdmission::Known ? nullptr : worker().stats().methodForCall(path_, service_, method_, how);
      countMethodIn(series != nullptr ? series : &worker().stats().otherMethod());
    } else if (how == PathAdmission::Proven) {
      worker().stats().methodForCall(path_, service_, method_, how);  // its path is proven now
    }
  }
  if (method_stats_ != nullptr) {
    method_stats_->handled[std::min<size_t>(static_cast<size_t>(status_), 16)].inc();
    method_stats_->handling_seconds.record(std::chrono::duration<double>(Clock::now() - start_time_).count());
    const bool client_streams = counters_.request_messages > 1;
    const bool server_streams = counters_.response_messages > 1;
    if (status_ == StatusCode::Ok && method_stats_->widenedBy(client_streams, server_streams)) {
      worker().stats().learnType(path_, client_streams, server_streams);
    }
  }
  if (call_started_ && !chain_built_) addRefusalObservers();
  chain_.streamDone();
  if (trailers_on_wire_ && response_trailers_.changes() != trailers_queued_at_) checkLateTrailers();
}

void DownstreamStream::checkLateTrailers() {
  // The chain logged which filter changed them. Still queued (they are read
  // when the response's last DATA frame goes out): what a client gets must
  // be a valid end of a call, whatever that filter left.
  if (invalidHeaderField(response_trailers_).empty() && whyNotACallEnd(response_trailers_).empty()) return;
  response_trailers_.clear();
  response_trailers_.add("grpc-status", grpc_headers::formatGrpcStatus(StatusCode::Internal));
  response_trailers_.add("grpc-message", grpc_headers::percentEncode("a filter broke the call's trailers after it ended"));
}

bool DownstreamStream::addFilter(size_t index) {
  const FilterEntryConfig& entry = listener_config_->filters[index];
  const bool terminal = index + 1 == listener_config_->filters.size();
  bool threw = false;
  FilterPtr filter = createFilterOf(entry, threw);
  if (ended_) return false;  // the factory ended the call itself
  if (filter != nullptr) {
    chain_.addFilter(std::move(filter), entry.name);
    return true;
  }
  if (!threw && !terminal) return true;  // it sits this call out
  if (!threw) {
    spdlog::error("[C{}][S{}] filter \"{}\" made no filter for {}, and the chain cannot go on without it: it "
                  "ends the chain",
                  connection_id_, stream_id_, entry.name, path_);
  }
  // Observers further down the chain (access logs, metrics) still see the call.
  addRefusalObservers(index + 1);
  sendLocalReply(LocalReplyReason::FilterError, StatusCode::Internal, fmt::format("filter \"{}\" failed", entry.name));
  return false;
}

void DownstreamStream::addRefusalObservers(size_t from) {
  chain_built_ = true;
  for (size_t i = from; i < listener_config_->filters.size(); ++i) {
    const FilterEntryConfig& entry = listener_config_->filters[i];
    if (!entry.factory->observesRefusedCalls()) continue;
    // The call is refused already: a factory failing here only loses its
    // observer (logged).
    bool threw = false;
    if (FilterPtr filter = createFilterOf(entry, threw)) chain_.addFilter(std::move(filter), entry.name);
  }
}

FilterPtr DownstreamStream::createFilterOf(const FilterEntryConfig& entry, bool& threw) {
  try {
    return entry.factory->createFilter(*this);
  } catch (...) {
    FilterChain::logCreateFailure(entry.name);
    threw = true;
  }
  return nullptr;
}

void DownstreamStream::onHeadersNotSent(std::string_view why) {
  // What the log and stats say; the client sees the reset that follows.
  ended_ = true;
  status_ = StatusCode::Internal;
  status_message_ = fmt::format("the response's header block could not be sent ({}); HTTP/2 allows at most 64 KiB",
                                why);
  spdlog::warn("[C{}][S{}] {}", connection_id_, stream_id_, status_message_);
}

void DownstreamStream::onClose(uint32_t error_code) {
  closed_ = true;
  // The client's resets (rst_stream_burst): one before the response ended
  // (any code, NO_ERROR too) is charged; a call a backend served that the
  // client let finish pays one back, so an attacker's resets cost it whole
  // calls, and a client's cancels among finished calls cost nothing. A call
  // the gateway answered itself (no route, a refusal) pays nothing. Nor does
  // a reset that is not premature (prematureReset()).
  if (reset_by_client_) {
    if (!ended_ && prematureReset(error_code)) connection_.session().chargePeerReset();
  } else if (error_code == NGHTTP2_NO_ERROR && ended_ && !upstreamAddress().empty()) {
    connection_.session().refundPeerReset();
  }
  if (!ended_) {
    // The client reset the stream mid-call (or closed it before the end).
    ended_ = true;
    if (resetAtClientDeadline(error_code)) {
      status_ = StatusCode::DeadlineExceeded;
      status_message_ = "the client's deadline (grpc-timeout) passed: it reset the stream";
    } else if (!reset_by_client_ && error_code != NGHTTP2_NO_ERROR) {
      // No RST_STREAM came from the client: the gateway's nghttp2 reset the
      // stream, over a request that broke an HTTP/2 rule (DATA past its
      // content-length, a field it rejects); the client saw the reset.
      status_ = StatusCode::Internal;
      status_message_ = fmt::format("the gateway reset the stream ({}): the request broke an HTTP/2 rule",
                                    nghttp2_http2_strerror(error_code));
    } else {
      status_ = StatusCode::Cancelled;
      status_message_ = error_code == NGHTTP2_NO_ERROR
                            ? "stream closed before the response completed"
                            : fmt::format("client reset the stream ({})", nghttp2_http2_strerror(error_code));
    }
    spdlog::debug("[C{}][S{}] {}", connection_id_, stream_id_, status_message_);
  }
  finish();
  if (deadline_timer_) deadline_timer_->disable();
  if (idle_timer_) idle_timer_->disable();
  releaseIncompleteRequest();
  releaseRequestHeaders();
  response_out_.shareTotal(nullptr);  // the connection may be gone before this stream is deleted
  connection_.releaseResponseWindow(std::exchange(response_window_lent_, 0));
  connection_.onStreamClosed(*this);
}

void DownstreamStream::onConnectionClosed(ConnectionEnd end, std::string_view reason) {
  if (closed_) return;
  if (!ended_) {
    // Not a reset of this stream: the log and the metrics say which side
    // ended the call. A call the gateway cut off is UNAVAILABLE, as its
    // client sees it; one whose client went away is CANCELLED.
    ended_ = true;
    const bool lost = end == ConnectionEnd::Lost;
    status_ = lost ? StatusCode::Cancelled : StatusCode::Unavailable;
    status_message_ = fmt::format("{}: {}", lost ? "connection lost" : "the gateway closed the connection", reason);
    spdlog::debug("[C{}][S{}] {}", connection_id_, stream_id_, status_message_);
  }
  onClose(NGHTTP2_CANCEL);
}

}  // namespace sluice
