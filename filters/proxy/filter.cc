#include "filters/proxy/filter.h"

#include <charconv>
#include <random>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "codecs/grpc/grpc_headers.h"
#include "core/stats.h"
#include "core/headers.h"
#include "core/route.h"
#include "core/worker_context.h"
#include "upstream/cluster.h"
#include "upstream/cluster_manager.h"
#include "upstream/connection_pool.h"
#include "upstream/endpoint.h"

namespace sluice::filters::proxy {
namespace {

// Headers that describe one hop, never the call. content-length is among
// them: the gateway ends calls itself (a reset, a message over the limit, a
// deadline) and filters may change messages, so a length the other side
// announced would not hold, and an HTTP/2 peer that checks it (nghttp2,
// curl, Envoy) would reset the stream instead of reading grpc-status.
bool isHopByHop(std::string_view name) {
  return isConnectionSpecificHeader(name) || name == "host" || name == "content-length";
}

// The client must read the status the gateway recorded: a grpc-status that
// is not a code from 0 to 16 ("abc", "99", empty) goes on as UNKNOWN, with
// the backend's value quoted in grpc-message.
void replaceInvalidGrpcStatus(HeaderMap& trailers, const std::string& raw, const std::string& from) {
  const std::string* message = trailers.get("grpc-message");
  std::string text = fmt::format("{} sent an invalid grpc-status {:?}", from, raw);
  if (message != nullptr && !message->empty()) text += ": " + grpc_headers::percentDecode(*message);
  trailers.set("grpc-status", grpc_headers::formatGrpcStatus(StatusCode::Unknown));
  trailers.set("grpc-message", grpc_headers::percentEncode(text));
}

// A backend's grpc-status unless it is one valid code: the raw value(s), to
// quote. Sent twice ("0", then "13"), clients differ in which they take, and
// the gateway would have recorded the first: it goes on as UNKNOWN, like any
// value that is not a code.
std::optional<std::string> invalidGrpcStatus(const HeaderMap& headers, const std::string& first) {
  if (headers.count("grpc-status") == 1 && grpc_headers::isValidGrpcStatus(first)) return std::nullopt;
  std::string all;
  for (const auto& h : headers) {
    if (h.name == "grpc-status") all += (all.empty() ? "" : ", ") + h.value;
  }
  return all;
}

// What the proxy checks in a backend's response headers, found in one pass.
struct ResponseHeadersSeen {
  const std::string* content_type = nullptr;
  bool content_length = false;
  bool encoded = false;  // grpc-encoding other than identity
};

ResponseHeadersSeen scanResponseHeaders(const HeaderMap& headers) {
  ResponseHeadersSeen seen;
  for (const auto& h : headers) {
    if (h.name == "content-type") seen.content_type = &h.value;
    else if (h.name == "content-length") seen.content_length = true;
    else if (h.name == "grpc-encoding") seen.encoded = h.value != "identity";
  }
  return seen;
}

// The gRPC spec's mapping for responses that are not gRPC (no grpc-status).
StatusCode statusFromHttp(std::string_view status) {
  int code = 0;
  std::from_chars(status.data(), status.data() + status.size(), code);
  switch (code) {
    case 400: return StatusCode::Internal;
    case 401: return StatusCode::Unauthenticated;
    case 403: return StatusCode::PermissionDenied;
    case 404: return StatusCode::Unimplemented;
    case 429: case 502: case 503: case 504: return StatusCode::Unavailable;
    default: return StatusCode::Unknown;
  }
}

}  // namespace

ProxyFilter::ProxyFilter(StreamContext& ctx) : ctx_(ctx), response_decoder_(ctx.maxMessageBytes()) {}

ProxyFilter::~ProxyFilter() = default;

std::string ProxyFilter::describe(const std::string& detail) const {
  return fmt::format("upstream cluster '{}': {}", cluster_ != nullptr ? cluster_->name() : "?", detail);
}

void ProxyFilter::dropReplay() {
  replay_ = std::vector<Message>();  // frees the storage (clear() keeps the capacity)
  replay_held_ = 0;
}

HeaderBlock ProxyFilter::upstreamRequestHeaders() const {
  // The client's metadata is forwarded from the call's own map, not copied:
  // the filter chain owns that map and outlives every attempt.
  HeaderBlock block;
  auto& request = const_cast<StreamContext&>(ctx_).requestHeaders();
  block.forwarded = &request;
  // The client's pseudo-headers are replaced by the gateway's own, and its
  // grpc-timeout by what is left of the call's deadline (not the per-try
  // timeout: that starts when the request ends and stops at the response's
  // headers, which a deadline sent ahead could not say; the gateway resets
  // an attempt that runs out of it, and the backend learns so).
  block.forward = [](const Header& h) {
    return !isPseudoHeader(h.name) && !isHopByHop(h.name) && h.name != "grpc-timeout";
  };
  HeaderMap& out = block.own;
  out.reserve(6);
  out.addCopy(":method", "POST");
  out.addCopy(":scheme", "http");
  out.addCopy(":path", ctx_.path());
  // RFC 9113 §8.3.1: without :authority, a client's Host says which host it
  // asked for (a backend may serve several).
  const std::string* authority = request.get(":authority");
  if (authority == nullptr) authority = request.get("host");
  out.addCopy(":authority", authority != nullptr ? *authority : cluster_->name());
  // gRPC requires it of every request, and the gateway makes this one: a
  // client that left it out (the gateway does not insist) would get the
  // backend's refusal of the gateway's request.
  if (request.get("te") == nullptr) out.addCopy("te", "trailers");
  if (auto deadline = ctx_.deadline()) {
    // What is left of the deadline, so the backend gives up when we do (up to
    // 1% later: the coarse form repeats across calls, an HPACK index hit; the
    // gateway's own timer still ends the call on time).
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - StreamContext::Clock::now());
    out.add("grpc-timeout", grpc_headers::formatTimeoutCoarse(std::max(left, std::chrono::nanoseconds(1))));
  }
  return block;
}

FilterStatus ProxyFilter::onRequestHeaders(StreamContext& ctx) {
  const Route* route = ctx.route();
  if (route == nullptr) {
    ctx.sendLocalReply(StatusCode::Unimplemented, fmt::format("no route for method {}", ctx.path()));
    return FilterStatus::StopIteration;
  }
  cluster_ = ctx.worker().clusterManager().find(route->cluster);
  if (cluster_ == nullptr) {
    ctx.sendLocalReply(StatusCode::Unavailable, fmt::format("unknown cluster '{}'", route->cluster));
    return FilterStatus::StopIteration;
  }
  Status admitted = cluster_->admitRequest();
  if (!admitted.isOk()) {
    ctx.sendLocalReply(admitted.code(), admitted.message());
    return FilterStatus::StopIteration;
  }
  if (route->retry) {
    // With num_retries 0 the policy still times each try; nothing is kept
    // for a replay that cannot come.
    retry_ = &*route->retry;
    replayable_ = retry_->num_retries > 0;
  }
  ctx.setWatermarkCallbacks(this);
  startAttempt();
  return FilterStatus::Continue;
}

void ProxyFilter::startAttempt() {
  if (ctx_.ended()) return;
  if (attempts_ > 0) {
    // A retry is a request in flight like the first attempt: it too must
    // find room under max_requests, or a failure storm's retries would push
    // the backend past the limit its operator set (while this call waited
    // out its backoff, it held no place, and others may have taken it).
    if (Status admitted = cluster_->admitRequest(); !admitted.isOk()) {
      endWithFailure(retry_reason_.code(),
                     describe(fmt::format("{}; not retried: {}", retry_reason_.message(), admitted.message())));
      return;
    }
  }
  pushback_.reset();  // a hint is for the wait before this attempt only
  // Every attempt counts, those that find no endpoint too (and use up one of
  // the call's tries, or a call with no deadline would wait for one forever);
  // the ones no backend saw are counted again in upstream_rq_unsent.
  ++attempts_;
  cluster_->stats().upstream_rq_total.inc();
  if (attempts_ > 1) cluster_->stats().upstream_rq_retry.inc();
  ctx_.setUpstreamAttempts(attempts_);
  if (!chooseEndpoint()) return;
  outcome_recorded_ = false;
  response_decoder_ = GrpcFrameDecoder(ctx_.maxMessageBytes());
  attempt_received_ = 0;
  widen_at_ = kWidenWindowAfter;
  window_applied_ = 0;
  per_try_deadline_ = StreamContext::Clock::time_point::max();  // armed once the request has ended
  upstream_ = std::make_unique<UpstreamStream>(*this, upstreamRequestHeaders());
  upstream_->countQueuedInto(ctx_.heldRequestBytes());
  Status placed = endpoint_->pool().newStream(*upstream_);
  if (!placed.isOk()) {
    attemptFailed(placed.code(), placed.message(), false, Reach::Unsent);
    return;
  }
  // The pool may fail the stream before newStream returns (a connect that
  // fails at once, a request nghttp2 refuses): attemptFailed has then retired
  // it and chosen between a retry and a reply.
  if (!upstream_) return;
  for (const Message& m : replay_) upstream_->sendMessage(Message(m));
  if (request_ended_) {
    upstream_->endRequest();
    armPerTryTimer();
  }
}

bool ProxyFilter::chooseEndpoint(const std::string* failed_connect) {
  auto chosen = cluster_->chooseEndpoint(ctx_.requestHeaders(), endpoint_.get());
  if (failed_connect != nullptr && (!chosen.isOk() || chosen.value() == endpoint_.get())) {
    // No other endpoint (the same one again, or none, the failure having
    // ejected the only one): the attempt failed as it did, naming the
    // endpoint, which stays the access log's `upstream`, and its error.
    attemptFailed(StatusCode::Unavailable, *failed_connect, false, Reach::Unsent);
    return false;
  }
  if (!chosen.isOk()) {
    // The access log's `upstream` is the last attempt's endpoint: none.
    ctx_.setUpstreamAddress({});
    attemptFailed(chosen.status().code(), chosen.status().message(), false, Reach::Unsent);
    return false;
  }
  endpoint_ = EndpointRef(chosen.value());
  ctx_.setUpstreamAddress(endpoint_->describe());
  return true;
}

void ProxyFilter::armPerTryTimer() {
  if (retry_ == nullptr || retry_->per_try_timeout_ms == 0) return;
  if (!per_try_timer_) {
    per_try_timer_ = std::make_unique<Timer>(ctx_.dispatcher(), [this] {
      // Still connecting, or queued behind a backed-up connection: no
      // backend saw it (asked before attemptFailed lets go of the stream).
      const Reach reach = upstream_ && upstream_->sent() ? Reach::Backend : Reach::Unsent;
      attemptFailed(StatusCode::DeadlineExceeded,
                    fmt::format("no answer from {} within the per-try timeout ({} ms after the request ended)",
                                endpoint_->describe(), retry_->per_try_timeout_ms),
                    true, reach);
    });
  }
  const std::chrono::milliseconds timeout(retry_->per_try_timeout_ms);
  per_try_deadline_ = StreamContext::Clock::now() + timeout;
  per_try_timer_->enable(timeout);
}

bool ProxyFilter::canRetry(StatusCode code) const {
  if (retry_ == nullptr || response_started_ || !replayable_ || attempts_ > retry_->num_retries) return false;
  // A per-try timeout is always worth another try (the timer never fires
  // before per_try_deadline_). Any other status, a backend's own
  // DEADLINE_EXCEEDED too, only if listed: a backend whose dependency timed
  // out would otherwise run the call num_retries more times.
  const bool per_try_over =
      code == StatusCode::DeadlineExceeded && StreamContext::Clock::now() >= per_try_deadline_;
  if (!per_try_over && !retry_->retriable(code)) return false;
  auto deadline = ctx_.deadline();
  return !deadline || StreamContext::Clock::now() + std::chrono::milliseconds(retry_->backoff_base_ms) < *deadline;
}

bool ProxyFilter::acceptsPushback(const HeaderMap& reply, std::string& why) {
  const std::string* value = reply.get(grpc_headers::kRetryPushbackHeader);
  if (value == nullptr) return true;
  auto delay = grpc_headers::parseRetryPushback(*value);
  if (!delay) {
    why = fmt::format("the backend's {} is \"{}\": do not retry", grpc_headers::kRetryPushbackHeader,
                      grpc_headers::truncateMessage(*value, 64));
    return false;
  }
  if (*delay > kMaxPushback) {
    // A call holds its retry place and its stream while it waits: a backend
    // asking for more than this gets its reply passed on, hint and all, for
    // the client to decide.
    why = fmt::format("the backend's {} ({} ms) is more than the gateway waits ({} ms)",
                      grpc_headers::kRetryPushbackHeader, delay->count(), kMaxPushback.count());
    return false;
  }
  auto deadline = ctx_.deadline();
  // In milliseconds: converting the delay to the clock's nanoseconds could overflow.
  if (deadline && std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - StreamContext::Clock::now()) <=
                      *delay) {
    why = fmt::format("the backend's {} ({} ms) is past the deadline", grpc_headers::kRetryPushbackHeader,
                      delay->count());
    return false;
  }
  pushback_ = *delay;
  return true;
}

bool ProxyFilter::holdRetryPlace(std::string& why) {
  // One place per call: a call retrying twice is one call retrying.
  if (!holds_retry_place_) holds_retry_place_ = cluster_->admitRetry(why);
  return holds_retry_place_;
}

void ProxyFilter::releaseRetryPlace() {
  if (!holds_retry_place_) return;
  holds_retry_place_ = false;
  cluster_->retryDone();
}

void ProxyFilter::retireAttempt() {
  if (per_try_timer_) per_try_timer_->disable();
  if (withdrawn_timer_) withdrawn_timer_->disable();
  if (upstream_) {
    upstream_->reset();
    // The next attempt replays from replay_: this one's queue is of no use.
    upstream_->outbound().abandon();
    upstream_->countQueuedInto(nullptr);
    retired_.push_back(std::move(upstream_));
  }
}

void ProxyFilter::endWithFailure(StatusCode code, std::string_view message) {
  // Every attempt refused unprocessed (and nothing of the response sent):
  // the client may retry the call itself, as it would had it talked to the
  // backend directly. One attempt that may have run rules that out.
  if (only_refusals_) {
    ctx_.refuseCall(message);
  } else {
    ctx_.sendLocalReply(LocalReplyReason::UpstreamFailure, code, message);
  }
}

void ProxyFilter::attemptFailed(StatusCode code, const std::string& detail, bool endpoint_fault, Reach reach) {
  if (ctx_.ended()) return;
  if (endpoint_fault) recordOutcome(false);
  if (reach == Reach::Unsent) cluster_->stats().upstream_rq_unsent.inc();
  if (reach != Reach::Refused) only_refusals_ = false;
  retireAttempt();
  // An attempt no backend processed retries outside the budget: retrying it
  // adds no load to a backend beyond what the call would have anyway.
  std::string over_budget;
  if (!canRetry(code) || (reach == Reach::Backend && !holdRetryPlace(over_budget))) {
    std::string message = describe(detail);
    if (!over_budget.empty()) message += "; not retried: " + over_budget;
    endWithFailure(code, message);
    return;
  }
  std::chrono::milliseconds wait;
  if (pushback_) {
    wait = *std::exchange(pushback_, std::nullopt);
    backoff_step_ = 0;
  } else {
    // Full jitter over an exponentially growing window.
    // In 64 bits: a base of hours shifted 16 times would wrap 32.
    const uint64_t grown = uint64_t{retry_->backoff_base_ms} << std::min<uint32_t>(backoff_step_++, 16);
    const auto window = static_cast<uint32_t>(std::min<uint64_t>(grown, retry_->backoff_max_ms));
    static thread_local std::minstd_rand rng{std::random_device{}()};
    wait = std::chrono::milliseconds(std::uniform_int_distribution<uint32_t>(0, window)(rng));
  }
  // `detail` may be a backend's decoded grpc-message: quoted and escaped.
  spdlog::debug("[C{}][S{}] attempt {} failed ({:?}), retrying in {} ms", ctx_.connectionId(), ctx_.streamId(),
                attempts_, detail, wait.count());
  retry_reason_ = {code, detail};
  if (!backoff_timer_) backoff_timer_ = std::make_unique<Timer>(ctx_.dispatcher(), [this] { startAttempt(); });
  backoff_timer_->enable(wait);
}

FilterStatus ProxyFilter::onRequestMessage(StreamContext&, Message& message) {
  // Checked on arrival, but a filter may have grown it since: the backend
  // would refuse it, and past 4 GiB its length prefix could not say it.
  if (message.payload.size() > ctx_.maxMessageBytes()) {
    if (upstream_) upstream_->reset();
    ctx_.sendLocalReply(LocalReplyReason::MessageTooLarge, StatusCode::ResourceExhausted,
                        fmt::format("a request message of {} bytes, as the filters left it, is over max_message_bytes "
                                    "({})",
                                    message.payload.size(), ctx_.maxMessageBytes()));
    return FilterStatus::StopIteration;
  }
  if (retry_ != nullptr && replayable_ && !response_started_) {
    replay_bytes_ += message.wireSize();
    if (replay_bytes_ > retry_->replay_buffer_bytes) {
      // Too big to replay: this call gets no more retries.
      replayable_ = false;
      dropReplay();
      if (!upstream_) {
        // Waiting to retry: what the client sent so far was only in the
        // replay buffer, so no attempt can carry the whole request any more.
        if (backoff_timer_) backoff_timer_->disable();
        endWithFailure(retry_reason_.code(),
                       describe(fmt::format("{}; not retried: the request outgrew the replay buffer "
                                            "(replay_buffer_bytes {}) while waiting to retry",
                                            retry_reason_.message(), retry_->replay_buffer_bytes)));
        return FilterStatus::StopIteration;
      }
    } else {
      replay_.push_back(message);
      replay_held_ += message.wireSize();
    }
  }
  if (upstream_) upstream_->sendMessage(std::move(message));
  return FilterStatus::Continue;
}

FilterStatus ProxyFilter::onRequestEnd(StreamContext&) {
  request_ended_ = true;
  if (upstream_) {
    upstream_->endRequest();
    // The per-try timeout counts from here (Envoy's rule): a slow upload is
    // the client's time, not the backend's.
    if (!response_started_) armPerTryTimer();
  }
  return FilterStatus::Continue;
}

void ProxyFilter::onStreamDone(StreamContext&) {
  // Finished, failed or cancelled downstream: nothing more goes upstream.
  if (per_try_timer_) per_try_timer_->disable();
  if (backoff_timer_) backoff_timer_->disable();
  if (withdrawn_timer_) withdrawn_timer_->disable();
  if (upstream_) {
    upstream_->reset();
    // Nothing more goes to the backend: what was queued for it is freed now,
    // not when the stream is deleted (after its RST_STREAM reaches a client
    // that may not read), as are the retry copy and a partial response.
    upstream_->outbound().abandon();
    upstream_->countQueuedInto(nullptr);  // the connection it counts into may go first
  }
  dropReplay();
  response_decoder_ = GrpcFrameDecoder(ctx_.maxMessageBytes());
  releaseIncompleteResponse();
  releaseRetryPlace();
  // A response the backend began and that ended without a verdict of its own
  // (the client cancelled, a deadline, our limits): the backend answered.
  if (response_started_ && !outcome_recorded_) recordOutcome(true);
}

size_t ProxyFilter::heldMessageBytes() const {
  return replay_held_ + response_decoder_.heldBytes() + (upstream_ ? upstream_->outbound().size() : 0);
}

void ProxyFilter::recordOutcome(bool success) {
  outcome_recorded_ = true;
  if (endpoint_) endpoint_->recordCallResult(success);
}

void ProxyFilter::failFromUpstream(StatusCode code, const std::string& detail) {
  if (upstream_) upstream_->reset();
  // A response message over the listener's limit is counted with those of
  // requests; anything else the backend got wrong is its failure.
  ctx_.sendLocalReply(code == StatusCode::ResourceExhausted ? LocalReplyReason::MessageTooLarge
                                                            : LocalReplyReason::UpstreamFailure,
                      code, describe(detail));
}

void ProxyFilter::onUpstreamHeaders(HeaderMap&& headers, bool end_stream) {
  const std::string* http_status = headers.get(":status");
  const std::string* grpc_status = headers.get("grpc-status");
  if ((http_status == nullptr || *http_status != "200") && !(end_stream && grpc_status != nullptr)) {
    std::string status = http_status != nullptr ? *http_status : "none";
    StatusCode code = statusFromHttp(status);
    attemptFailed(code, fmt::format("{} answered HTTP {} (not gRPC)", endpoint_->describe(), status),
                  code == StatusCode::Unavailable);
    return;
  }
  ResponseHeadersSeen seen;
  if (!end_stream) seen = scanResponseHeaders(headers);
  if (!end_stream && !grpc_headers::isGrpcContentType(seen.content_type)) {
    const std::string* ct = seen.content_type;
    attemptFailed(StatusCode::Unknown,
                  fmt::format("{} answered content-type {} (not gRPC)", endpoint_->describe(),
                              ct != nullptr ? fmt::format("{:?}", *ct) : std::string("none")),
                  true);
    return;
  }
  if (end_stream) {
    if (grpc_status == nullptr) {
      // As a call that ends after its messages without grpc-status: the
      // backend is not speaking gRPC, and the client must not take it for one.
      recordOutcome(false);
      failFromUpstream(StatusCode::Internal,
                       fmt::format("{} ended the call without grpc-status", endpoint_->describe()));
      return;
    }
    StatusCode code = grpc_headers::parseGrpcStatus(*grpc_status).value_or(StatusCode::Unknown);
    recordOutcome(code != StatusCode::Unavailable);
    std::string over_budget;
    if (code != StatusCode::Ok && canRetry(code)) {
      if (acceptsPushback(headers, over_budget) && holdRetryPlace(over_budget)) {
        const std::string* msg = headers.get("grpc-message");
        attemptFailed(code, msg != nullptr ? grpc_headers::percentDecode(*msg) : std::string(statusCodeName(code)),
                      false);
        return;
      }
      // Not retried: the backend's own reply goes to the client, as when the
      // retries are used up (its trailing metadata, a pushback hint).
      spdlog::debug("[C{}][S{}] not retried: {}", ctx_.connectionId(), ctx_.streamId(), over_budget);
    }
    if (per_try_timer_) per_try_timer_->disable();
    // Trailers-only: everything but :status, content-type and content-length
    // is trailing metadata. The client gets a gRPC answer's :status and
    // content-type whatever the backend's were (a 503 with grpc-status).
    ctx_.responseHeaders().addCopy(":status", "200");
    ctx_.responseHeaders().addCopy("content-type", "application/grpc");
    const std::optional<std::string> invalid_status = invalidGrpcStatus(headers, *grpc_status);
    for (auto& h : headers.release()) {
      if (h.name != ":status" && h.name != "content-type" && h.name != "content-length") {
        ctx_.responseTrailers().add(std::move(h.name), std::move(h.value));
      }
    }
    if (invalid_status) replaceInvalidGrpcStatus(ctx_.responseTrailers(), *invalid_status, endpoint_->describe());
    ctx_.encodeResponseTrailers();
    return;
  }
  // The call's outcome for outlier detection is its grpc-status, in the
  // trailers (onUpstreamEnd): headers alone say nothing of a stream that
  // then ends UNAVAILABLE or is reset.
  if (per_try_timer_) per_try_timer_->disable();
  response_started_ = true;
  dropReplay();
  releaseRetryPlace();  // no retry once the response has begun
  if (seen.content_length) headers.remove("content-length");
  response_encoded_ = seen.encoded;
  ctx_.responseHeaders().append(std::move(headers));
  ctx_.encodeResponseHeaders();
}

void ProxyFilter::onUpstreamData(const uint8_t* data, size_t len) {
  if (ctx_.ended()) {
    if (upstream_) upstream_->consume(len);
    return;
  }
  withheld_credit_ += len;
  if ((attempt_received_ += len) >= widen_at_ && !downstream_full_) widenResponseWindow();
  Status s = response_decoder_.decode({reinterpret_cast<const char*>(data), len}, *this);
  if (!s.isOk()) {
    // A malformed message is the backend's fault; one over our limit is not.
    if (s.code() != StatusCode::ResourceExhausted) recordOutcome(false);
    failFromUpstream(s.code(), fmt::format("{} sent a bad message: {}", endpoint_->describe(), s.message()));
    return;
  }
  if (!countIncompleteResponse()) return;
  if (!downstream_full_ && upstream_) {
    upstream_->consume(withheld_credit_);
    withheld_credit_ = 0;
  }
}

void ProxyFilter::widenResponseWindow() {
  const ClusterConfig& config = cluster_->config();
  const uint32_t base = config.baseStreamWindow();
  const size_t wanted = config.initial_stream_window_bytes - base;
  // Asked again every kWidenWindowAfter bytes while short of it: loans come
  // back as other calls' streams close.
  if (window_lent_ < wanted) window_lent_ += ctx_.reserveResponseWindow(wanted - window_lent_);
  if (window_lent_ > window_applied_ && upstream_) {
    upstream_->setReceiveWindow(base + static_cast<uint32_t>(window_lent_));
    window_applied_ = window_lent_;
  }
  widen_at_ = window_lent_ < wanted ? attempt_received_ + kWidenWindowAfter : SIZE_MAX;
}

bool ProxyFilter::countIncompleteResponse() {
  // Window credit for a message still arriving goes back at once (a message
  // may be larger than the window), so without this a backend could make
  // each call hold max_message_bytes by announcing a large message and never
  // finishing it. Usually 0 and unchanged: one comparison per chunk.
  const size_t held = response_decoder_.heldBytes();
  if (held == incomplete_response_counted_) return true;
  const int64_t delta = static_cast<int64_t>(held) - static_cast<int64_t>(incomplete_response_counted_);
  incomplete_response_counted_ = held;
  if (ctx_.adjustIncompleteResponseBytes(delta)) return true;
  releaseIncompleteResponse();  // it will never be completed
  failFromUpstream(StatusCode::ResourceExhausted,
                   fmt::format("response messages still arriving from backends on this connection would hold more "
                               "than max_incomplete_response_bytes (this one {} bytes, from {})",
                               held, endpoint_->describe()));
  return false;
}

void ProxyFilter::releaseIncompleteResponse() {
  if (incomplete_response_counted_ == 0) return;
  ctx_.adjustIncompleteResponseBytes(-static_cast<int64_t>(incomplete_response_counted_));
  incomplete_response_counted_ = 0;
}

bool ProxyFilter::onMessage(Message&& message) {
  if (message.compressed && !response_encoded_) {
    // The client could not decode it (gRPC's spec: INTERNAL), and a backend
    // that sends it is broken.
    recordOutcome(false);
    failFromUpstream(StatusCode::Internal,
                     fmt::format("{} sent a compressed message without grpc-encoding", endpoint_->describe()));
    return false;
  }
  ctx_.encodeResponseMessage(std::move(message));
  return !ctx_.ended();
}

void ProxyFilter::onBelowWriteBufferLowWatermark() {
  downstream_full_ = false;
  if (upstream_ && withheld_credit_ > 0) {
    upstream_->consume(withheld_credit_);
    withheld_credit_ = 0;
  }
}

void ProxyFilter::onUpstreamEnd(HeaderMap&& trailers) {
  if (ctx_.ended()) return;
  Status s = response_decoder_.finish();
  if (!s.isOk()) {
    recordOutcome(false);
    failFromUpstream(StatusCode::Internal, fmt::format("{} ended inside a message: {}", endpoint_->describe(),
                                                       s.message()));
    return;
  }
  const std::string* grpc_status = trailers.get("grpc-status");
  if (grpc_status == nullptr) {
    recordOutcome(false);
    failFromUpstream(StatusCode::Internal,
                     fmt::format("{} ended the call without grpc-status", endpoint_->describe()));
    return;
  }
  if (const std::optional<std::string> invalid = invalidGrpcStatus(trailers, *grpc_status)) {
    recordOutcome(true);  // UNKNOWN, as the client reads it: not an endpoint's failure to serve
    replaceInvalidGrpcStatus(trailers, *invalid, endpoint_->describe());
  } else {
    recordOutcome(grpc_headers::parseGrpcStatus(*grpc_status) != StatusCode::Unavailable);
  }
  ctx_.responseTrailers().append(std::move(trailers));
  ctx_.encodeResponseTrailers();
}

void ProxyFilter::onUpstreamWithdrawn(const std::string& detail, bool endpoint_fault) {
  if (ctx_.ended() || !upstream_) return;
  // A failed connect is its endpoint's failure (outlier detection), whoever
  // serves the call next.
  if (endpoint_fault && endpoint_) endpoint_->recordCallResult(false);
  if (++withdrawals_ > kMaxWithdrawals) {
    attemptFailed(StatusCode::Unavailable, detail, false, endpoint_fault ? Reach::Unsent : Reach::Refused);
    return;
  }
  failed_connect_ = endpoint_fault ? detail : std::string();
  // Placed from the next loop turn: the cluster is changing its endpoints
  // right now (a DNS answer), and the new ones may not be in yet; a failed
  // connect has put its endpoint in backoff, which the choice avoids.
  spdlog::debug("[C{}][S{}] {}: the call goes to another endpoint", ctx_.connectionId(), ctx_.streamId(), detail);
  if (!withdrawn_timer_) withdrawn_timer_ = std::make_unique<Timer>(ctx_.dispatcher(), [this] { placeWithdrawn(); });
  withdrawn_timer_->enable(std::chrono::milliseconds(0));
}

void ProxyFilter::placeWithdrawn() {
  if (ctx_.ended() || !upstream_ || upstream_->open()) return;
  // The same attempt, its request queued in the stream as it was: no
  // backend saw it, so no retry policy or budget is involved.
  // After a failed connect, only another endpoint will do.
  if (!chooseEndpoint(failed_connect_.empty() ? nullptr : &failed_connect_)) return;
  Status placed = endpoint_->pool().newStream(*upstream_);
  if (!placed.isOk()) attemptFailed(placed.code(), placed.message(), false, Reach::Unsent);
}

void ProxyFilter::onUpstreamReset(UpstreamReset reset) {
  if (ctx_.ended()) return;
  if (reset.by_backend) cluster_->stats().upstream_rq_reset.inc();
  if (response_started_ || reset.answered) {
    if (reset.endpoint_fault) recordOutcome(false);
    ctx_.sendLocalReply(LocalReplyReason::UpstreamFailure, reset.code, describe(reset.detail));
    return;
  }
  attemptFailed(reset.code, reset.detail, reset.endpoint_fault,
                reset.refused ? Reach::Refused : !reset.sent ? Reach::Unsent : Reach::Backend);
}

}  // namespace sluice::filters::proxy
