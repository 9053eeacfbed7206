// ProxyFilter: the terminal filter. Relays the call to an endpoint of the routed
// cluster over a pooled HTTP/2 connection, in both directions as messages
// arrive, and carries flow control across: a full upstream request buffer
// slows the client; a full downstream response buffer slows the backend.
#pragma once

#include <memory>

#include "codecs/grpc/frame_decoder.h"
#include "core/filter.h"
#include "core/stream_context.h"
#include "upstream/upstream_stream.h"

namespace sluice::filters::proxy {

class ProxyFilter final : public Filter,
                          public UpstreamCallbacks,
                          public WatermarkCallbacks,
                          public MessageSink {
 public:
  explicit ProxyFilter(StreamContext& ctx);
  ~ProxyFilter() override;

  FilterStatus onRequestHeaders(StreamContext& ctx) override;
  FilterStatus onRequestMessage(StreamContext& ctx, Message& message) override;
  FilterStatus onRequestEnd(StreamContext& ctx) override;
  void onStreamDone(StreamContext& ctx) override;

  // ---- UpstreamCallbacks ----
  void onUpstreamHeaders(HeaderMap&& headers, bool end_stream) override;
  void onUpstreamData(const uint8_t* data, size_t len) override;
  void onUpstreamEnd(HeaderMap&& trailers) override;
  void onUpstreamReset(std::string detail) override;
  void onUpstreamRequestWatermark(bool above) override { ctx_.setRequestBackpressure(above); }
  // ---- WatermarkCallbacks (downstream response buffer) ----
  void onAboveWriteBufferHighWatermark() override { downstream_full_ = true; }
  void onBelowWriteBufferLowWatermark() override;
  // ---- MessageSink (response decoder) ----
  bool onMessage(Message&& message) override;

 private:
  HeaderMap upstreamRequestHeaders() const;
  void failFromUpstream(StatusCode code, const std::string& detail);

  StreamContext& ctx_;
  std::unique_ptr<UpstreamStream> upstream_;
  GrpcFrameDecoder response_decoder_;
  std::string cluster_name_;
  size_t withheld_credit_ = 0;  // response bytes not yet returned to the backend's window
  bool downstream_full_ = false;
};

}  // namespace sluice::filters::proxy
