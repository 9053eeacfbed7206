#include "upstream/upstream_connection.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/stats.h"
#include "upstream/cluster.h"
#include "upstream/connection_pool.h"
#include "upstream/endpoint.h"
#include "upstream/upstream_stream.h"

namespace sluice {
namespace {

// Bytes handed to the kernel but not yet written before we stop serialising.
constexpr size_t kMaxPendingWrite = 1 << 20;

// TCP-level detection of a backend host that is gone (see connect()).
constexpr unsigned kKeepaliveIdleS = 30;
constexpr unsigned kKeepaliveIntervalS = 10;
constexpr unsigned kKeepaliveProbes = 3;
constexpr unsigned kUnackedTimeoutMs = 30000;

Http2Settings clientSettings(const ClusterConfig& cluster) {
  Http2Settings s;
  s.max_concurrent_streams = 0;  // not sent by a client
  s.initial_stream_window = cluster.baseStreamWindow();
  s.connection_window = cluster.initial_connection_window_bytes;
  return s;
}

}  // namespace

UpstreamConnection::UpstreamConnection(Dispatcher& dispatcher, ConnectionPool& pool, uint64_t id, bool checks_only)
    : Flushable(dispatcher),
      dispatcher_(dispatcher),
      pool_(pool),
      id_(id),
      address_(pool.endpoint().address()),
      address_text_(pool.endpoint().describe()),
      checks_only_(checks_only),
      socket_(dispatcher, *this),
      session_(Http2Session::Side::Client, *this, clientSettings(pool.cluster().config())),
      timers_(dispatcher, *this, pool.cluster().config().idle_timeout_ms,
              pool.cluster().config().keepalive_interval_ms, pool.cluster().config().keepalive_timeout_ms) {
  if (!checks_only_) pool_.cluster().connections++;
  pool_.cluster().stats().upstream_cx_total.inc();
  pool_.cluster().stats().upstream_cx_active.inc();
}

UpstreamConnection::~UpstreamConnection() { close("connection destroyed"); }

std::string UpstreamConnection::describe() const { return "endpoint " + address_text_; }

std::optional<uint32_t> UpstreamConnection::openStreamLimit() const {
  if (!settings_received_ || draining_ || closed_) return std::nullopt;
  return session_.remoteMaxConcurrentStreams();
}

void UpstreamConnection::connect() {
  int rv = socket_.connect(address_);
  if (rv != 0) {
    fail(fmt::format("connect to {} failed: {}", describe(), uvErrorText(rv)));
    return;
  }
  // A backend host that vanishes (no FIN, no RST) is found by the kernel,
  // invisibly to the backend's gRPC stack (HTTP/2 PINGs are off by default:
  // gRPC servers refuse frequent ones): probes start after 30 s of silence
  // and the connection ends when they go unanswered for 30 s; with a request
  // unacknowledged, after 30 s.
  if (int ka = socket_.detectDeadPeer(kKeepaliveIdleS, kKeepaliveIntervalS, kKeepaliveProbes, kUnackedTimeoutMs);
      ka != 0) {
    spdlog::debug("[U{}] TCP keepalive not set on the connection to {}: {}", id_, describe(), uvErrorText(ka));
  }
  const ClusterConfig& config = pool_.cluster().config();
  connect_timer_ = std::make_unique<Timer>(dispatcher_, [this, ms = config.connect_timeout_ms] {
    fail(fmt::format("connect to {} timed out after {} ms", describe(), ms));
  });
  connect_timer_->enable(std::chrono::milliseconds(config.connect_timeout_ms));
}

void UpstreamConnection::onConnected(int status) {
  if (status != 0) {
    if (connect_timer_) connect_timer_->disable();
    fail(fmt::format("connect to {} failed: {}", describe(), uvErrorText(status)));
    return;
  }
  connected_ = true;
  // The connect timer keeps running until the backend's SETTINGS arrive: a
  // peer that accepts TCP but never speaks HTTP/2 fails like a refused connect.
  connect_timer_ = std::make_unique<Timer>(dispatcher_, [this, ms = pool_.cluster().config().connect_timeout_ms] {
    fail(fmt::format("{} accepted the connection but sent no HTTP/2 SETTINGS within {} ms", describe(), ms));
  });
  connect_timer_->enable(std::chrono::milliseconds(pool_.cluster().config().connect_timeout_ms));
  spdlog::debug("[U{}] connected to cluster '{}' {}", id_, pool_.cluster().name(), describe());
  socket_.startReading();
  // Pending streams wait for the backend's SETTINGS (onRemoteSettings); the
  // flush sends our preface and SETTINGS.
  timers_.start(streams_.size());
  scheduleFlush();
}

void UpstreamConnection::sendKeepalivePing() {
  session_.ping();
  scheduleFlush();
}

void UpstreamConnection::onPingAck(uint64_t) { timers_.onPingAck(); }

void UpstreamConnection::onRemoteSettings() {
  // Every SETTINGS, not only the first: a backend may change its limit.
  pool_.onStreamLimitAdvertised(session_.remoteMaxConcurrentStreams());
  if (settings_received_) {
    moveUnsentPastLimit();
    return;
  }
  settings_received_ = true;
  if (connect_timer_) connect_timer_->disable();
  pool_.onConnectSucceeded();
  // Until now only the pool's guess bounded how many streams came here. As
  // many as the backend allows are opened; the rest go back to the pool,
  // which places them on other connections (or fails them, naming why).
  std::vector<UpstreamStream*> waiting;
  waiting.swap(pending_);
  pool_.cluster().pending_streams -= static_cast<uint32_t>(waiting.size());
  const uint32_t limit = streamLimit();
  size_t opened = 0;
  for (UpstreamStream* s : waiting) {
    if (opened < limit) {
      submit(*s);
      ++opened;
    } else {
      rehome(*s, limit);
    }
  }
  scheduleFlush();
}

void UpstreamConnection::moveUnsentPastLimit() {
  // Requests given to nghttp2 whose HEADERS have not gone out yet (submitted
  // in this loop turn, or queued behind a backed-up socket) wait in nghttp2
  // for a free stream; with the limit lowered (to 0: for ever) they would
  // wait on calls that may never end. Those past it move to another
  // connection, the earliest kept in their turn.
  const uint32_t limit = streamLimit();
  uint32_t sent = 0;
  std::vector<UpstreamStream*> unsent;
  for (const auto& [stream, counted] : streams_) {
    if (stream->streamId() <= 0) continue;
    if (session_.streamOpen(stream->streamId())) {
      ++sent;
    } else {
      unsent.push_back(stream);
    }
  }
  if (sent + unsent.size() <= limit) return;
  std::sort(unsent.begin(), unsent.end(),
            [](const UpstreamStream* a, const UpstreamStream* b) { return a->streamId() < b->streamId(); });
  const size_t keep = limit > sent ? limit - sent : 0;
  for (size_t i = keep; i < unsent.size(); ++i) {
    UpstreamStream& stream = *unsent[i];
    // Cancels the queued HEADERS (nghttp2 drops them unsent) and forgets the id.
    session_.detach(stream.streamId());
    session_.resetStream(stream.streamId(), NGHTTP2_REFUSED_STREAM);
    stream.onSubmitted(0);
    rehome(stream, limit);
  }
  scheduleFlush();
}

void UpstreamConnection::rehome(UpstreamStream& stream, uint32_t limit) {
  auto it = streams_.find(&stream);
  if (it == streams_.end()) return;
  const bool counted = it->second;
  release(stream);
  stream.onAttached(nullptr);
  spdlog::debug("[U{}] {} allows {} concurrent streams: a waiting call moves to another connection", id_,
                describe(), limit);
  Status placed = pool_.newStream(stream, counted);
  if (!placed.isOk()) {
    // Like a circuit breaker met by a new call: no fault of the endpoint.
    stream.onConnectionLost(fmt::format("{} allows {} concurrent streams per connection and the call could not "
                                        "move to another: {}", describe(), limit, placed.message()),
                            /*endpoint_fault=*/false);
  }
}

uint32_t UpstreamConnection::streamLimit() const {
  uint32_t limit = session_.remoteMaxConcurrentStreams();
  // Before its own SETTINGS, what the backend told other connections, but at
  // least one stream: a connection is opened for a call, and a remembered 0
  // would make every concurrent call open another.
  if (!settings_received_) limit = std::max(1u, pool_.advertisedStreamLimit().value_or(limit));
  if (uint32_t own = pool_.cluster().config().max_concurrent_streams; own != 0) limit = std::min(limit, own);
  return limit;
}

bool UpstreamConnection::usable() const {
  if (closed_ || draining_) return false;
  // Calls waiting for the first SETTINGS open here too once it comes: they
  // count toward the connection's share already.
  if (streams_opened_ + pending_.size() >= streamShare()) return false;
  return streams_.size() < streamLimit();
}

uint32_t UpstreamConnection::streamShare() const {
  const uint32_t configured = pool_.cluster().config().max_requests_per_connection;
  return configured != 0 ? configured : ClusterConfig::kMaxStreamsPerConnection;
}

bool UpstreamConnection::backedUp() const { return socket_.bytesPending() >= kMaxPendingWrite; }

void UpstreamConnection::addStream(UpstreamStream& stream, bool counted) {
  streams_.emplace(&stream, counted);
  stream.onAttached(this);
  if (counted) {
    pool_.cluster().active_requests++;
    pool_.endpoint().onRequestStarted();
  }
  timers_.onStreamCountChanged(streams_.size());
  if (settings_received_) {
    submit(stream);
  } else {
    pending_.push_back(&stream);
    pool_.cluster().pending_streams++;
  }
}

bool UpstreamConnection::release(UpstreamStream& stream) {
  auto it = streams_.find(&stream);
  if (it == streams_.end()) return false;
  if (it->second) {
    pool_.cluster().active_requests--;
    pool_.endpoint().onRequestFinished();
  }
  streams_.erase(it);
  if (auto p = std::find(pending_.begin(), pending_.end(), &stream); p != pending_.end()) {
    pending_.erase(p);
    pool_.cluster().pending_streams--;
  }
  timers_.onStreamCountChanged(streams_.size());
  return true;
}

void UpstreamConnection::submit(UpstreamStream& stream) {
  int32_t id = session_.submitRequest(stream.requestHeaders(), &stream);
  if (id == Http2Session::kOverPeerHeaderListLimit) {
    // A backend sent past its SETTINGS_MAX_HEADER_LIST_SIZE may end the whole
    // connection (grpc++ does), and with it every other client's call on it:
    // one client's oversized metadata fails only its own call.
    release(stream);
    stream.onHeadersOverBackendLimit(
        fmt::format("request headers of {} bytes exceed the {} bytes {} accepts (its SETTINGS_MAX_HEADER_LIST_SIZE); "
                    "not sent", session_.lastHeaderListBytes(), session_.remoteMaxHeaderListBytes(), describe()));
    return;
  }
  if (id < 0) {
    release(stream);
    stream.onConnectionLost(fmt::format("cannot open a stream to {}: {}", describe(), nghttp2_strerror(id)));
    return;
  }
  stream.onSubmitted(id);
  // Retired after its share of streams, and always before nghttp2 runs out of
  // stream IDs (past them every new call on this connection would fail).
  // The config keeps max_requests_per_connection within the IDs.
  if (++streams_opened_ >= streamShare() && !draining_) {
    draining_ = true;
    spdlog::debug("[U{}] {} opened {} streams: retired, new calls go to a fresh connection", id_, describe(),
                  streams_opened_);
  }
  scheduleFlush();
}

void UpstreamConnection::cancelStream(UpstreamStream& stream) {
  if (!release(stream)) return;
  int32_t id = stream.streamId();
  if (id <= 0) return;
  session_.detach(id);
  // Both sides sent END_STREAM (the usual end of a call, seen from inside the
  // callback that delivers the trailers): nghttp2 closes the stream when that
  // callback returns. A RST_STREAM would only cost the backend work.
  if (stream.responseComplete() && session_.localEnded(id)) return;
  session_.resetStream(id, NGHTTP2_CANCEL);
  scheduleFlush();
}

void UpstreamConnection::forgetStream(UpstreamStream& stream) {
  release(stream);
  if (draining_ && streams_.empty()) scheduleFlush();
}

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

void UpstreamConnection::setReceiveWindow(int32_t stream_id, uint32_t size) {
  session_.setReceiveWindow(stream_id, size);
  scheduleFlush();
}

void UpstreamConnection::onRead(const uint8_t* data, size_t len) {
  Status s = session_.receive(data, len);
  if (!s.isOk()) spdlog::warn("[U{}] {}: {}", id_, describe(), s.message());
  scheduleFlush();
}

void UpstreamConnection::retire(WaitingCalls waiting) {
  draining_ = true;
  if (waiting != WaitingCalls::Stay && !settings_received_ && !closed_) {
    // Still connecting, to an address no longer its endpoint's. A backend
    // gone away is the usual reason a name's address changes, and a connect
    // to a silent or blackholed host takes connect_timeout_ms to fail: the
    // calls waiting here were never sent, and need not wait for it.
    std::vector<std::pair<UpstreamStream*, bool>> taken;  // with `counted`
    for (UpstreamStream* stream : std::vector<UpstreamStream*>(pending_)) {
      const auto it = streams_.find(stream);
      if (it == streams_.end()) continue;
      taken.emplace_back(stream, it->second);
      release(*stream);
      stream->onAttached(nullptr);
    }
    const std::string why = fmt::format("{} left its cluster while connecting", describe());
    ConnectionPool& pool = pool_;
    // Closed first (not a failed connect, which would put the new address
    // in backoff): its place under the cluster's max_connections is free
    // for the connection that takes its calls.
    if (streams_.empty()) close("its endpoint moved or left before it connected");
    for (const auto& [stream, counted] : taken) {
      if (waiting == WaitingCalls::Withdraw) {
        stream->onWithdrawn(why);
        continue;
      }
      Status placed = pool.newStream(*stream, counted);
      if (!placed.isOk()) stream->onConnectionLost(placed.message(), /*endpoint_fault=*/false);
    }
    return;
  }
  scheduleFlush();  // closes there if it carries nothing
}

void UpstreamConnection::onDisconnected(int status) {
  fail(fmt::format("connection to {} closed: {}", describe(), uvErrorText(status)));
}

void UpstreamConnection::onGoaway(int32_t last_stream_id, uint32_t error_code) {
  // Streams up to last_stream_id finish here; new ones go to a new connection.
  draining_ = true;
  if (error_code == NGHTTP2_NO_ERROR) {
    spdlog::debug("[U{}] GOAWAY from {} (last stream {}, {})", id_, describe(), last_stream_id,
                  nghttp2_http2_strerror(error_code));
    return;
  }
  // Not a graceful shutdown: the backend is closing on us, calls included.
  // ENHANCE_YOUR_CALM is how gRPC servers refuse PINGs more often than they
  // permit: the cluster's keepalive_interval_ms is shorter than they allow.
  // Once per connection and code: a backend may repeat its GOAWAY, at 17
  // bytes a line.
  if (goaway_logged_code_ == error_code) return;
  goaway_logged_code_ = error_code;
  spdlog::warn("[U{}] GOAWAY {} from {} (last stream {}){}", id_, nghttp2_http2_strerror(error_code), describe(),
               last_stream_id,
               error_code == NGHTTP2_ENHANCE_YOUR_CALM && pool_.cluster().config().keepalive_interval_ms != 0
                   ? fmt::format(": PINGs every {} ms (keepalive_interval_ms) are more than the backend permits",
                                 pool_.cluster().config().keepalive_interval_ms)
                   : std::string());
}

void UpstreamConnection::onErrorGoawaySent(uint32_t error_code, std::string_view detail) {
  if (!end_reason_.empty()) return;
  end_reason_ = fmt::format("the backend broke HTTP/2, GOAWAY {} sent{}{}", nghttp2_http2_strerror(error_code),
                            detail.empty() ? "" : ": ", detail);
  spdlog::warn("[U{}] {}: {}", id_, describe(), end_reason_);
}

void UpstreamConnection::flush() {
  if (closed_ || !connected_) return;
  if (!session_.writeTo(socket_, kMaxPendingWrite)) {
    fail(fmt::format("http/2 session with {} failed", describe()));
    return;
  }
  if (closed_) return;
  if (!session_.alive() && socket_.bytesPending() == 0) {
    fail(fmt::format("http/2 session with {} ended{}{}", describe(), end_reason_.empty() ? "" : ": ", end_reason_));
  } else if (draining_ && streams_.empty()) {
    close("drained (GOAWAY from the backend, or retired)");
  }
}

void UpstreamConnection::fail(const std::string& reason) {
  // Until the backend's SETTINGS arrive, any end is a failed connect: a
  // backend that accepts and then closes, or answers with bytes that are not
  // HTTP/2, puts its endpoint in reconnect backoff like a refused connect
  // (else every call would open a new connection to it and fail).
  if (!closed_ && !settings_received_) pool_.onConnectFailed();
  close(reason);
}

void UpstreamConnection::close(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  spdlog::debug("[U{}] closing: {}", id_, reason);
  // Disabled, not destroyed: one of them may be the callback running now.
  if (connect_timer_) connect_timer_->disable();
  timers_.stop();
  socket_.close();
  Cluster& cluster = pool_.cluster();
  if (!checks_only_) cluster.connections--;
  cluster.stats().upstream_cx_active.dec();
  cluster.pending_streams -= static_cast<uint32_t>(pending_.size());
  pending_.clear();
  // Tell every stream, each once; they may call back into us (cancelStream),
  // which finds nothing left to release.
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [s, counted] : streams) {
    if (counted) {
      cluster.active_requests--;
      pool_.endpoint().onRequestFinished();
    }
    if (s->streamId() > 0) session_.detach(s->streamId());
    s->onConnectionLost(reason);
  }
  pool_.onConnectionClosed(*this);
}

}  // namespace sluice
