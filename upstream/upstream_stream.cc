#include "upstream/upstream_stream.h"

#include <utility>

#include <nghttp2/nghttp2.h>
#include <fmt/format.h>

#include "codecs/grpc/grpc_headers.h"
#include "upstream/upstream_connection.h"

namespace sluice {
namespace {

// Request bytes buffered per stream before the client is slowed down.
constexpr size_t kRequestHighWatermark = 256 * 1024;
constexpr size_t kRequestLowWatermark = 128 * 1024;

// A backend's RST_STREAM as the gRPC status a client talking to it directly
// would see (gRPC over HTTP/2, "Errors"): only a refused stream, which the
// backend never processed, is UNAVAILABLE (what retry policies retry); it is
// also no fault of the endpoint (a backend shedding load or shutting down).
UpstreamReset resetFromBackend(uint32_t code) {
  switch (code) {
    case NGHTTP2_REFUSED_STREAM:
      return {StatusCode::Unavailable, "upstream refused the stream (REFUSED_STREAM)", true, false, true};
    case NGHTTP2_CANCEL:
      return {StatusCode::Cancelled, "upstream cancelled the stream (CANCEL)", true, true};
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return {StatusCode::ResourceExhausted, "upstream reset the stream (ENHANCE_YOUR_CALM)", true, true};
    case NGHTTP2_INADEQUATE_SECURITY:
      return {StatusCode::PermissionDenied, "upstream reset the stream (INADEQUATE_SECURITY)", true, true};
    default:
      return {StatusCode::Internal, fmt::format("upstream reset the stream ({})", nghttp2_http2_strerror(code)),
              true, true};
  }
}

// Our own nghttp2 reset the stream: the backend's response broke an HTTP/2
// rule (a malformed header, a bad content-length...). The backend's fault,
// but not a reset it sent (upstream_rq_reset counts those).
UpstreamReset resetByGateway(uint32_t code) {
  return {StatusCode::Internal,
          fmt::format("the gateway reset the stream ({}): the backend's response broke HTTP/2 rules",
                      nghttp2_http2_strerror(code)),
          false, true};
}

}  // namespace

UpstreamStream::UpstreamStream(UpstreamCallbacks& callbacks, HeaderBlock request_headers)
    : callbacks_(callbacks),
      request_headers_(std::move(request_headers)),
      outbound_(kRequestHighWatermark, kRequestLowWatermark) {
  outbound_.setWatermarkCallback([this](bool above) { callbacks_.onUpstreamRequestWatermark(above); });
}

UpstreamStream::~UpstreamStream() { reset(); }

void UpstreamStream::wakeConnection() {
  if (connection_ != nullptr) connection_->onStreamHasData(*this);
}

void UpstreamStream::sendMessage(Message&& message) {
  outbound_.appendMessage(std::move(message));
  wakeConnection();
}

void UpstreamStream::countQueuedInto(size_t* total) { outbound_.shareTotal(total); }

void UpstreamStream::endRequest() {
  request_ended_ = true;
  wakeConnection();
}

void UpstreamStream::reset() {
  if (connection_ == nullptr) return;
  UpstreamConnection* c = connection_;
  connection_ = nullptr;
  c->cancelStream(*this);
}

void UpstreamStream::setReceiveWindow(uint32_t size) {
  if (connection_ != nullptr && stream_id_ > 0) connection_->setReceiveWindow(stream_id_, size);
}

void UpstreamStream::consume(size_t n) {
  if (connection_ != nullptr && stream_id_ > 0) connection_->consume(stream_id_, n);
}

bool UpstreamStream::sent() const { return connection_ != nullptr && connection_->streamSent(stream_id_); }

void UpstreamStream::onConnectionLost(const std::string& detail, bool endpoint_fault) {
  // Asked while the connection still holds the stream (detach leaves it in
  // nghttp2's session; only its handler is cleared).
  const bool sent = this->sent();
  connection_ = nullptr;
  if (response_complete_) return;
  if (!sent && endpoint_fault) {
    // Its HEADERS never went out: never submitted to the connection (it
    // failed while the stream waited for its connect or its SETTINGS), or
    // submitted and still queued in nghttp2 (behind a backlog the backend
    // did not read). nghttp2 reads no request bytes before the HEADERS are
    // out, so the request is whole here and no backend saw it: it may go to
    // another endpoint, as a gRPC client moves a call its transport never
    // sent (a restarting backend of two failed calls the other could serve).
    // The id was the dead connection's.
    stream_id_ = 0;
    callbacks_.onUpstreamWithdrawn(detail, /*endpoint_fault=*/true);
    return;
  }
  if (incoming_too_large_) {
    reportTooLarge();
    return;
  }
  // A stream the pool could not place was never the backend's; and a lost
  // connection is no reset the backend sent (upstream_rq_reset).
  callbacks_.onUpstreamReset({StatusCode::Unavailable, detail, false, endpoint_fault, false, sent});
}

void UpstreamStream::onWithdrawn(const std::string& detail) {
  connection_ = nullptr;
  callbacks_.onUpstreamWithdrawn(detail, /*endpoint_fault=*/false);
}

void UpstreamStream::onHeadersOverBackendLimit(const std::string& detail) {
  connection_ = nullptr;
  callbacks_.onUpstreamReset({StatusCode::ResourceExhausted, detail, false, false, false, false});
}

void UpstreamStream::onHeader(std::string_view name, std::string_view value) {
  // nghttp2 does not enforce the SETTINGS_MAX_HEADER_LIST_SIZE it sends: a
  // backend could make us keep any amount (HPACK turns each byte of a block
  // into a whole indexed field).
  if (incoming_too_large_) return;
  incoming_bytes_ += headerListBytes(name, value);
  if (incoming_bytes_ > kDefaultMaxHeaderListBytes) {
    incoming_too_large_ = true;
    incoming_.clear();
    return;
  }
  if (incoming_.empty()) incoming_.reserve(8);
  incoming_.addCopy(name, value);
  if (grpc_headers::isBinaryHeader(name) && !grpc_headers::isBase64Value(value)) malformed_binary_ = true;
}

// nghttp2's "trailers" flag is not used: it files the block after a 1xx under
// the same category as trailers, so the order of blocks decides instead.
void UpstreamStream::onHeadersComplete(bool /*trailers*/, bool end_stream) {
  if (incoming_too_large_) {
    // The client could not be sent such a block either (it would exceed what
    // nghttp2 sends in one): the call fails here, and the backend's stream is
    // reset when the proxy lets go of it.
    reportTooLarge();
    return;
  }
  incoming_bytes_ = 0;
  HeaderMap block = std::move(incoming_);
  incoming_.clear();
  const bool malformed_binary = std::exchange(malformed_binary_, false);
  // The first block that is not informational is the response's headers.
  if (!headers_done_) {
    const std::string* status = block.get(":status");
    if (status != nullptr && !status->empty() && (*status)[0] == '1') return;  // 1xx: informational
    if (malformed_binary) {
      reportMalformedBinary(block);
      return;
    }
    headers_done_ = true;
    if (end_stream) response_complete_ = true;
    callbacks_.onUpstreamHeaders(std::move(block), end_stream);
    return;
  }
  if (malformed_binary) {
    reportMalformedBinary(block);
    return;
  }
  response_complete_ = true;
  callbacks_.onUpstreamEnd(std::move(block));
}

void UpstreamStream::reportTooLarge() {
  if (too_large_reported_) return;
  too_large_reported_ = true;
  // The endpoint's fault, but no reset of the backend's (upstream_rq_reset).
  // RESOURCE_EXHAUSTED, as gRPC clients report metadata past their limit;
  // not UNAVAILABLE, which retry policies (the gateway's, the client's)
  // retry: the backend has run the call and answered.
  UpstreamReset reset{StatusCode::ResourceExhausted,
                      fmt::format("the backend sent a {} block over the limit of {} bytes",
                                  headers_done_ ? "trailer" : "header", kDefaultMaxHeaderListBytes),
                      false, true};
  reset.answered = true;
  callbacks_.onUpstreamReset(std::move(reset));
}

void UpstreamStream::reportMalformedBinary(const HeaderMap& block) {
  // Not passed on: a C-core client (grpc++, Python...) fails the call over a
  // -bin value that is not base64 with UNKNOWN "Stream removed", which names
  // neither cause nor backend; and a client's HTTP/2 layer may treat it as a
  // connection error. The backend ran the call and answered, so it is never
  // retried; grpc-go's clients fail such a call INTERNAL too.
  std::string_view key;
  for (const Header& h : block) {
    if (grpc_headers::isBinaryHeader(h.name) && !grpc_headers::isBase64Value(h.value)) {
      key = h.name;
      break;
    }
  }
  UpstreamReset reset{StatusCode::Internal,
                      fmt::format("the backend sent malformed binary metadata in {} \"{}\": a -bin value must be "
                                  "base64",
                                  headers_done_ ? "trailer" : "header", key),
                      false, true};
  reset.answered = true;
  callbacks_.onUpstreamReset(std::move(reset));
}

void UpstreamStream::onData(const uint8_t* data, size_t len) { callbacks_.onUpstreamData(data, len); }

void UpstreamStream::onEndStream() {
  // END_STREAM on DATA: the backend ended without trailers (not valid gRPC,
  // reported as such by the proxy from an empty trailer block).
  response_complete_ = true;
  callbacks_.onUpstreamEnd(HeaderMap{});
}

void UpstreamStream::onClose(uint32_t error_code) {
  if (connection_ != nullptr) {
    connection_->forgetStream(*this);
    connection_ = nullptr;
  }
  if (response_complete_) return;
  if (incoming_too_large_) {
    reportTooLarge();
    return;
  }
  // A refusal nghttp2 makes itself (streams past a GOAWAY's last id) is the
  // backend's refusal all the same: unprocessed, and retried as such.
  const bool ours = !peer_reset_ && error_code != NGHTTP2_NO_ERROR && error_code != NGHTTP2_REFUSED_STREAM;
  UpstreamReset reset = ours ? resetByGateway(error_code) : resetFromBackend(error_code);
  // Counted as the backend's reset (upstream_rq_reset) only if it sent one.
  reset.by_backend = peer_reset_;
  callbacks_.onUpstreamReset(std::move(reset));
}

}  // namespace sluice
