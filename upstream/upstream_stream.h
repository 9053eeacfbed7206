// UpstreamStream: the backend half of one proxied call (an HTTP/2 client stream).
//
// Owned by the proxy filter of the downstream stream. The UpstreamConnection it
// runs on only points at it (nghttp2 stream user data and its stream set) and
// tells it when the connection goes away. Destroying an UpstreamStream that is
// still open resets it upstream (RST_STREAM CANCEL): a cancelled client call
// cancels the backend call.
#pragma once

#include <cstdint>
#include <string>

#include "codecs/http2/outbound_data.h"
#include "codecs/http2/session.h"
#include "core/headers.h"
#include "core/message.h"
#include "core/status.h"

namespace sluice {

class UpstreamConnection;

// Why a call ended without a complete response: the status for the client,
// what to tell it, whether the backend reset the stream (upstream_rq_reset),
// and whether that counts against the endpoint (outlier detection).
struct UpstreamReset {
  StatusCode code = StatusCode::Unavailable;
  std::string detail;
  bool by_backend = true;
  bool endpoint_fault = true;
  bool refused = false;  // REFUSED_STREAM: the backend never processed the call
  bool sent = true;      // false: its HEADERS never went out (no backend saw the request)
  // The backend answered, in a form the gateway cannot pass on (a header
  // block over the limit): the call ran, so it is never retried.
  bool answered = false;
};

class UpstreamCallbacks {
 public:
  virtual ~UpstreamCallbacks() = default;
  // Response headers; with end_stream they are a trailers-only response.
  virtual void onUpstreamHeaders(HeaderMap&& headers, bool end_stream) = 0;
  // Raw DATA bytes; hand back flow-control credit with UpstreamStream::consume().
  virtual void onUpstreamData(const uint8_t* data, size_t len) = 0;
  virtual void onUpstreamEnd(HeaderMap&& trailers) = 0;
  // The call is over without a complete response.
  virtual void onUpstreamReset(UpstreamReset reset) = 0;
  // The stream was taken back before its request went out: its endpoint
  // left the cluster while connecting, or (`endpoint_fault`) the connection
  // it waited on failed before the stream was ever submitted to it (a
  // refused or timed-out connect, a backend that closed before its
  // SETTINGS). It may be placed again, request and all, on another
  // endpoint's pool (ConnectionPool::newStream). By default it ends as a
  // refusal, never processed.
  virtual void onUpstreamWithdrawn(const std::string& detail, bool endpoint_fault) {
    onUpstreamReset({StatusCode::Unavailable, detail, /*by_backend=*/false, endpoint_fault,
                     /*refused=*/true, /*sent=*/false});
  }
  // The request buffer passed its high watermark (true) or drained (false).
  virtual void onUpstreamRequestWatermark(bool above) = 0;
};

class UpstreamStream final : public Http2StreamHandler {
 public:
  // The block's forwarded map is read when a connection takes the stream
  // (perhaps later, once a new connection has the backend's SETTINGS): it
  // must outlive the stream.
  UpstreamStream(UpstreamCallbacks& callbacks, HeaderBlock request_headers);
  ~UpstreamStream() override;

  const HeaderBlock& requestHeaders() const { return request_headers_; }
  void sendMessage(Message&& message);
  // Counts the request bytes queued here into `*total` too (nullptr: stop).
  void countQueuedInto(size_t* total);
  void endRequest();
  // Cancels the call upstream; no callback follows.
  void reset();
  // `n` response bytes moved on downstream: the backend may send more.
  void consume(size_t n);
  // Widens the stream's receive window to `size` bytes (from the cluster's
  // base: ClusterConfig::baseStreamWindow).
  void setReceiveWindow(uint32_t size);
  bool open() const { return connection_ != nullptr; }

  // ---- for UpstreamConnection ----
  void onAttached(UpstreamConnection* connection) { connection_ = connection; }
  void onSubmitted(int32_t stream_id) { stream_id_ = stream_id; }
  int32_t streamId() const { return stream_id_; }
  // The backend sent END_STREAM (trailers, or headers that end the call).
  bool responseComplete() const { return response_complete_; }
  // Whether a backend may have seen this request: its HEADERS went out.
  bool sent() const;
  // The connection failed or closed before the stream completed (the
  // endpoint's fault), or the stream could not be placed on one (not).
  void onConnectionLost(const std::string& detail, bool endpoint_fault = true);
  // Taken back before its HEADERS went out (its endpoint is gone): see
  // UpstreamCallbacks::onUpstreamWithdrawn.
  void onWithdrawn(const std::string& detail);
  // Not sent: its headers are over what the backend said it accepts. The
  // call fails with RESOURCE_EXHAUSTED, as a direct client's would.
  void onHeadersOverBackendLimit(const std::string& detail);

  // ---- Http2StreamHandler ----
  void onHeader(std::string_view name, std::string_view value) override;
  void onHeadersComplete(bool trailers, bool end_stream) override;
  void onData(const uint8_t* data, size_t len) override;
  void onEndStream() override;
  void onPeerReset(uint32_t) override { peer_reset_ = true; }
  void onClose(uint32_t error_code) override;
  OutboundData& outbound() override { return outbound_; }
  bool outboundEnded() const override { return request_ended_; }
  const HeaderMap* outboundTrailers() const override { return nullptr; }

 private:
  void wakeConnection();
  void reportMalformedBinary(const HeaderMap& block);

  UpstreamCallbacks& callbacks_;
  HeaderBlock request_headers_;
  UpstreamConnection* connection_ = nullptr;
  int32_t stream_id_ = 0;
  OutboundData outbound_;
  bool request_ended_ = false;
  bool response_complete_ = false;
  bool peer_reset_ = false;  // the backend sent RST_STREAM
  bool headers_done_ = false;
  HeaderMap incoming_;
  // The block being received, counted as HTTP/2 counts a header list; past
  // the limit we advertise nothing more is kept and the call fails.
  size_t incoming_bytes_ = 0;
  bool incoming_too_large_ = false;
  // The oversized block was reported: when it completed, or, for one so
  // large that the HTTP/2 layer reset the stream or ended the connection
  // before it did, at that close.
  bool too_large_reported_ = false;
  bool malformed_binary_ = false;  // a -bin value in the block that is not base64

  void reportTooLarge();
};

}  // namespace sluice
