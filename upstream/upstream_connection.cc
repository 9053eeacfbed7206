#include "upstream/upstream_connection.h"

#include <nghttp2/nghttp2.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "upstream/connection_pool.h"
#include "upstream/upstream_stream.h"

namespace sluice {
namespace {

// Bytes handed to the kernel but not yet written before we stop serialising.
constexpr size_t kMaxPendingWrite = 1 << 20;

Http2Settings clientSettings() {
  Http2Settings s;
  s.max_concurrent_streams = 0;  // not sent by a client
  return s;
}

}  // namespace

UpstreamConnection::UpstreamConnection(Dispatcher& dispatcher, ConnectionPool& pool, uint64_t id)
    : Flushable(dispatcher),
      dispatcher_(dispatcher),
      pool_(pool),
      id_(id),
      socket_(dispatcher, *this),
      session_(Http2Session::Side::Client, *this, clientSettings()) {}

UpstreamConnection::~UpstreamConnection() { close("connection destroyed"); }

std::string UpstreamConnection::describe() const {
  return fmt::format("endpoint {}", pool_.address().toString());
}

void UpstreamConnection::connect() {
  int rv = socket_.connect(pool_.address());
  if (rv != 0) {
    close(fmt::format("connect to {} failed: {}", describe(), uvErrorText(rv)));
    return;
  }
  connect_timer_ = std::make_unique<Timer>(dispatcher_, [this] {
    close(fmt::format("connect to {} timed out after {} ms", describe(), pool_.connectTimeoutMs()));
  });
  connect_timer_->enable(std::chrono::milliseconds(pool_.connectTimeoutMs()));
}

void UpstreamConnection::onConnected(int status) {
  if (connect_timer_) connect_timer_->disable();
  if (status != 0) {
    close(fmt::format("connect to {} failed: {}", describe(), uvErrorText(status)));
    return;
  }
  connected_ = true;
  spdlog::debug("[U{}] connected to cluster '{}' {}", id_, pool_.clusterName(), describe());
  socket_.startReading();
  std::vector<UpstreamStream*> pending;
  pending.swap(pending_);
  for (UpstreamStream* s : pending) submit(*s);
  scheduleFlush();
}

bool UpstreamConnection::usable() const {
  if (closed_ || draining_) return false;
  return streams_.size() < session_.remoteMaxConcurrentStreams();
}

void UpstreamConnection::addStream(UpstreamStream& stream) {
  streams_.insert(&stream);
  stream.onAttached(this);
  if (connected_) {
    submit(stream);
  } else {
    pending_.push_back(&stream);
  }
}

void UpstreamConnection::submit(UpstreamStream& stream) {
  int32_t id = session_.submitRequest(stream.requestHeaders(), &stream);
  if (id < 0) {
    streams_.erase(&stream);
    stream.onConnectionLost(fmt::format("cannot open a stream to {}: {}", describe(),
                                        nghttp2_strerror(id)));
    return;
  }
  stream.onSubmitted(id);
  scheduleFlush();
}

void UpstreamConnection::cancelStream(UpstreamStream& stream) {
  streams_.erase(&stream);
  if (stream.streamId() > 0) {
    session_.detach(stream.streamId());
    session_.resetStream(stream.streamId(), NGHTTP2_CANCEL);
    scheduleFlush();
  } else {
    std::erase(pending_, &stream);
  }
}

void UpstreamConnection::forgetStream(UpstreamStream& stream) { streams_.erase(&stream); }

void UpstreamConnection::onStreamHasData(UpstreamStream& stream) {
  if (stream.streamId() > 0) {
    session_.resumeData(stream.streamId());
    scheduleFlush();
  }
}

void UpstreamConnection::consume(int32_t stream_id, size_t n) {
  session_.consume(stream_id, n);
  scheduleFlush();
}

void UpstreamConnection::onRead(const uint8_t* data, size_t len) {
  Status s = session_.receive(data, len);
  if (!s.isOk()) spdlog::warn("[U{}] {}: {}", id_, describe(), s.message());
  scheduleFlush();
}

void UpstreamConnection::onDisconnected(int status) {
  close(fmt::format("connection to {} closed: {}", describe(), uvErrorText(status)));
}

void UpstreamConnection::onGoaway(int32_t last_stream_id, uint32_t error_code) {
  // Streams up to last_stream_id finish here; new ones go to a new connection.
  draining_ = true;
  spdlog::debug("[U{}] GOAWAY from {} (last stream {}, {})", id_, describe(), last_stream_id,
                nghttp2_http2_strerror(error_code));
}

void UpstreamConnection::flush() {
  if (closed_ || !connected_) return;
  if (socket_.bytesPending() < kMaxPendingWrite) {
    std::string out;
    if (!session_.pullOutput(out, kMaxPendingWrite)) {
      close(fmt::format("http/2 session with {} failed", describe()));
      return;
    }
    socket_.write(std::move(out));
    if (closed_) return;
  }
  if (!session_.alive() && socket_.bytesPending() == 0) {
    close(fmt::format("http/2 session with {} ended", describe()));
  } else if (draining_ && streams_.empty()) {
    close("drained after GOAWAY");
  }
}

void UpstreamConnection::close(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  spdlog::debug("[U{}] closing: {}", id_, reason);
  if (connect_timer_) connect_timer_->disable();
  socket_.close();
  // Tell every stream, each once; they may call back into us (cancelStream).
  auto streams = std::move(streams_);
  streams_.clear();
  pending_.clear();
  for (UpstreamStream* s : streams) {
    if (s->streamId() > 0) session_.detach(s->streamId());
    s->onConnectionLost(reason);
  }
  pool_.onConnectionClosed(*this);
}

}  // namespace sluice
