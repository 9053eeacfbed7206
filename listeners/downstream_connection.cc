#include "listeners/downstream_connection.h"

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include <algorithm>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/config.h"
#include "core/stats.h"
#include "listeners/worker.h"
#include "listeners/downstream_stream.h"
#include "listeners/grpc_listener.h"

namespace sluice {
namespace {

// How long an ending connection may go without the client reading any of
// what is left to write before it is closed anyway.
constexpr std::chrono::milliseconds kLingerWithoutProgress{2000};
// Frames queued behind a backed-up socket past which the client is no longer
// read (a few hundred bytes each).
constexpr size_t kMaxQueuedFramesWhileBackedUp = 256;

}  // namespace

DownstreamConnection::DownstreamConnection(GrpcListener& listener, uint64_t id)
    : Flushable(listener.worker().dispatcher()),
      listener_(listener),
      dispatcher_(listener.worker().dispatcher()),
      id_(id),
      socket_(dispatcher_, *this),
      session_(Http2Session::Side::Server, *this, listener.http2Settings()),
      timers_(dispatcher_, *this, listener.config().idle_timeout_ms, listener.config().keepalive_interval_ms,
              listener.config().keepalive_timeout_ms),
      max_pending_write_(listener.config().connection_buffer_bytes) {
  socket_.countPendingIn(&listener.stats().downstream_cx_tx_bytes_buffered);
}

DownstreamConnection::~DownstreamConnection() { close("connection destroyed"); }

int DownstreamConnection::accept(uv_stream_s* server) {
  int rv = socket_.accept(server);
  if (rv != 0) return rv;
  start();
  return 0;
}

int DownstreamConnection::adopt(int fd) {
  int rv = socket_.open(fd);
  if (rv != 0) return rv;
  start();
  return 0;
}

void DownstreamConnection::start() {
  peer_address_ = socket_.peerAddress();
  spdlog::debug("[C{}] accepted from {}", id_, peer_address_);
  socket_.startReading();
  timers_.start(0);
  if (const uint32_t ms = listener_.config().preface_timeout_ms; ms > 0) {
    preface_timer_ = std::make_unique<Timer>(dispatcher_, [this] { onPrefaceTimeout(); });
    preface_timer_->enable(std::chrono::milliseconds(ms));
  }
  // Our SETTINGS go out with the answer to the client's first bytes, not
  // before: an HTTP/1 client must get a readable HTTP/1 error, not a frame.
}

ListenerStats& DownstreamConnection::stats() { return listener_.stats(); }

Http2StreamHandler* DownstreamConnection::onNewStream(int32_t stream_id) {
  auto stream = std::make_unique<DownstreamStream>(*this, stream_id);
  DownstreamStream* raw = stream.get();
  streams_[stream_id] = std::move(stream);
  timers_.onStreamCountChanged(streams_.size());
  return raw;
}

void DownstreamConnection::startDrain() {
  if (draining_ || closed_) return;
  draining_ = true;
  if (closeLingeringAfterError()) return;
  announceClose();
}

bool DownstreamConnection::closeLingeringAfterError() {
  if (!write_shut_after_error_) return false;
  // Its calls have ended and its GOAWAY and FIN are out: nothing to drain,
  // and a drain or shutdown need not wait out its linger. Closed from the
  // loop (the listener is going through its connections now).
  linger_pending_ = 0;
  if (linger_timer_) linger_timer_->enable(std::chrono::milliseconds(0));
  return true;
}

void DownstreamConnection::announceClose() {
  if (drain_timer_) return;  // announced already (an idle close, then a drain)
  session_.shutdownNotice();
  drain_ping_ = session_.ping();
  // If the client never answers the PING, send the real GOAWAY anyway.
  drain_timer_ = std::make_unique<Timer>(dispatcher_, [this] { sendFinalGoaway(); });
  drain_timer_->enable(std::chrono::milliseconds(1000));
  scheduleFlush();
}

void DownstreamConnection::endCallsForShutdown(std::string_view why) {
  if (closed_ || closeLingeringAfterError()) return;
  // Ending a call may close its stream (and erase it) before we move on.
  std::vector<int32_t> ids;
  ids.reserve(streams_.size());
  for (const auto& [id, stream] : streams_) ids.push_back(id);
  for (int32_t id : ids) {
    auto it = streams_.find(id);
    if (it != streams_.end()) it->second->endForShutdown(why);
  }
  if (drain_timer_) sendFinalGoaway();
  scheduleFlush();
}

void DownstreamConnection::onPingAck(uint64_t sequence) {
  timers_.onPingAck();
  // Only the drain's own PING says the client has seen the first GOAWAY: the
  // ACK of a keepalive PING sent before it may arrive first.
  if (drain_timer_ && sequence >= drain_ping_) sendFinalGoaway();
}

void DownstreamConnection::onRemoteSettings() {
  // The first SETTINGS ends the client's preface: it speaks HTTP/2. The timer
  // is freed in flush(), after this callback.
  if (preface_timer_) preface_timer_->disable();
}

void DownstreamConnection::onPrefaceTimeout() {
  // A port scanner, a TCP health check that never closes, a client stuck
  // before it spoke, or one holding connections open on purpose.
  listener_.stats().downstream_cx_preface_timeout.inc();
  spdlog::debug("[C{}] no HTTP/2 preface from {} within {} ms", id_, peer_address_,
                listener_.config().preface_timeout_ms);
  close("no HTTP/2 preface in time (preface_timeout_ms)");
}

void DownstreamConnection::onErrorGoawaySent(uint32_t error_code, std::string_view detail) {
  // A session that failed in receive() was counted and logged there. This is
  // the session ending itself: a client past rst_stream_burst and
  // rst_stream_rate (`detail` says which budget), or nghttp2 on its own.
  if (ending_) return;
  ending_ = true;
  end_reason_ = fmt::format("GOAWAY {} sent{}{}", nghttp2_http2_strerror(error_code), detail.empty() ? "" : ": ",
                            detail);
  listener_.stats().downstream_protocol_errors.inc();
  // The session's own budgets say which in `detail`; nghttp2's limits
  // (max_settings, an INTERNAL_ERROR of its own) name nothing of ours.
  const char* why = error_code == NGHTTP2_INTERNAL_ERROR ? " (a limit of nghttp2's)" : "";
  spdlog::warn("[C{}] closing the connection from {} with {}{}", id_, peer_address_, end_reason_, why);
}

void DownstreamConnection::sendKeepalivePing() {
  session_.ping();
  scheduleFlush();
}

void DownstreamConnection::onConnectionTimeout(const std::string& reason) {
  spdlog::debug("[C{}] {}", id_, reason);
  if (streams_.empty()) {
    // As a drain does: a GOAWAY that closes nothing yet, then after a round
    // trip the one naming the last stream. A call the client sent before it
    // read the first is served (a one-step GOAWAY closed the socket under
    // it: "Broken pipe", which no gRPC library retries); calls after it go
    // to a new connection. The connection closes once its calls are done.
    announceClose();
  } else {
    close(reason);  // only the keepalive can fire with streams open: the peer is gone
  }
}

void DownstreamConnection::sendFinalGoaway() {
  if (final_goaway_sent_ || closed_) return;
  final_goaway_sent_ = true;
  drain_timer_->disable();
  session_.gracefulGoaway();
  // With no call left, the connection is ending: a client that does not
  // read the GOAWAY must not hold it open (lingerWhileClientReads). With
  // calls open it closes once they are done.
  if (streams_.empty()) ending_ = true;
  scheduleFlush();
}

void DownstreamConnection::collectCallsHolding(uint64_t min_bytes,
                                               std::vector<std::pair<uint64_t, DownstreamStream*>>& out) const {
  for (const auto& [id, stream] : streams_) {
    const uint64_t held = stream->heldMessageBytes();
    if (held >= min_bytes) out.emplace_back(held, stream.get());
  }
}

void DownstreamConnection::onStreamClosed(DownstreamStream& stream) {
  auto it = streams_.find(stream.streamId());
  if (it == streams_.end() || it->second.get() != &stream) return;
  dispatcher_.deferredDelete(std::move(it->second));
  streams_.erase(it);
  timers_.onStreamCountChanged(streams_.size());
}

void DownstreamConnection::onRead(const uint8_t* data, size_t len) {
  // The rest of a refused HTTP/1 request is dropped, as is what follows a
  // client's HTTP/2 error.
  if (closed_ || http1_refused_ || write_shut_after_error_) return;
  if (start_checked_) {
    receive(data, len);
    return;
  }
  // Usually the whole preface comes in the first read: nothing is copied.
  const std::string_view chunk(reinterpret_cast<const char*>(data), len);
  const bool held = !start_.empty();
  if (held) start_.append(chunk);
  const ClientStart kind = classifyClientStart(held ? std::string_view(start_) : chunk);
  if (kind == ClientStart::Undecided) {
    if (!held) start_.assign(chunk);  // under 24 bytes
    return;
  }
  start_checked_ = true;
  if (kind == ClientStart::Http1) {
    start_ = std::string();
    refuseHttp1();
    return;
  }
  if (!held) {
    receive(data, len);
    return;
  }
  const std::string first = std::move(start_);
  start_ = std::string();
  receive(reinterpret_cast<const uint8_t*>(first.data()), first.size());
}

void DownstreamConnection::refuseHttp1() {
  // Someone pointed curl or a browser at a gRPC port: say what it speaks,
  // in a language the client reads (RFC 9113 §3.3: prior knowledge only).
  static constexpr std::string_view kBody =
      "this is a gRPC listener: it speaks HTTP/2 with prior knowledge (h2c) only, not HTTP/1.1\n";
  listener_.stats().downstream_protocol_errors.inc();
  spdlog::info("[C{}] HTTP/1 request from {}: answered 505, closing the connection", id_, peer_address_);
  http1_refused_ = true;
  if (preface_timer_) preface_timer_->disable();  // answered: the linger check ends it now
  socket_.write(fmt::format("HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain\r\n"
                            "content-length: {}\r\nconnection: close\r\n\r\n{}",
                            kBody.size(), kBody));
  scheduleFlush();
}

void DownstreamConnection::receive(const uint8_t* data, size_t len) {
  const uint64_t idle_resets_before = session_.idleResetsDropped();
  Status s = session_.receive(data, len);
  if (const uint64_t ignored = session_.idleResetsDropped() - idle_resets_before) {
    listener_.stats().downstream_idle_stream_resets.inc(ignored);
  }
  if (!s.isOk()) {
    listener_.stats().downstream_protocol_errors.inc();
    spdlog::info("[C{}] {} from {}: closing the connection", id_, s.message(), peer_address_);
    ending_ = true;
    end_reason_ = s.message();
  }
  scheduleFlush();
}

void DownstreamConnection::onDisconnected(int status) {
  lost_ = true;
  close(status == UV_EOF ? "client closed the connection" : uvErrorText(status));
}

void DownstreamConnection::flush() {
  if (closed_ || write_shut_after_error_) return;
  if (preface_timer_ && !preface_timer_->enabled()) preface_timer_.reset();
  if (http1_refused_) {
    // Once the answer is written our side is done (the client reads to the
    // end, then closes); a client that does not close is closed by the
    // linger check.
    if (socket_.bytesPending() == 0) socket_.shutdownWrite();
    lingerWhileClientReads();
    return;
  }
  if (!session_.writeTo(socket_, max_pending_write_)) {
    close("http/2 session failed");
    return;
  }
  if (closed_) return;
  // A client that does not read must not make us queue without end the
  // frames its requests provoke (replies, RST_STREAMs, ACKs): while our
  // writes to it are backed up and such frames pile up behind them, we stop
  // reading from it. Response DATA alone does not count: it is bounded by
  // flow control, and a slow reader's WINDOW_UPDATEs and requests must
  // still come in.
  const bool backed_up =
      socket_.bytesPending() >= max_pending_write_ && session_.queuedFrames() >= kMaxQueuedFramesWhileBackedUp;
  if (backed_up != read_paused_) {
    read_paused_ = backed_up;
    if (backed_up) {
      socket_.stopReading();
    } else {
      socket_.startReading();
    }
  }
  if (!session_.alive() && socket_.bytesPending() == 0) {
    if (end_reason_.empty()) {
      close("http/2 session ended");
    } else {
      closeOnceClientHasGoaway();
    }
    return;
  }
  if (ending_ || !session_.alive()) lingerWhileClientReads();
}

void DownstreamConnection::closeOnceClientHasGoaway() {
  if (write_shut_after_error_) return;
  write_shut_after_error_ = true;
  // The client broke HTTP/2 and its GOAWAY is written. Closing now, with its
  // later bytes unread, would make the kernel answer with a reset, which
  // throws away what the client has not received yet: on a real network the
  // GOAWAY itself (its last stream id tells the client which calls it may
  // send again; its text says why). So a FIN follows it, the client's bytes
  // are read and dropped, and the socket closes when the client closes or
  // after kLingerWithoutProgress, as grpc-go and Envoy wait. The calls end now.
  socket_.shutdownWrite();
  if (read_paused_) {
    read_paused_ = false;
    socket_.startReading();
  }
  timers_.stop();
  if (drain_timer_) drain_timer_->disable();
  if (slow_reader_timer_) slow_reader_timer_->disable();
  // The error was its preface's (a first frame that is not SETTINGS):
  // counted as a protocol error, not also as a preface timeout.
  if (preface_timer_) preface_timer_->disable();
  endStreams(end_reason_);
  lingerWhileClientReads();
}

void DownstreamConnection::lingerWhileClientReads() {
  if (linger_timer_) return;  // already watching
  linger_pending_ = socket_.bytesPending();
  linger_timer_ = std::make_unique<Timer>(dispatcher_, [this] { onLingerCheck(); });
  linger_timer_->enable(kLingerWithoutProgress);
}

void DownstreamConnection::onLingerCheck() {
  const size_t pending = socket_.bytesPending();
  if (pending < linger_pending_) {
    linger_pending_ = pending;
    linger_timer_->enable(kLingerWithoutProgress);
    return;
  }
  if (http1_refused_) {
    close("HTTP/1 client answered");
    return;
  }
  if (write_shut_after_error_) {
    close(end_reason_);
    return;
  }
  spdlog::info("[C{}] {} stopped reading: closing the connection with {} bytes unwritten", id_, peer_address_,
               pending);
  close("the client stopped reading");
}

void DownstreamConnection::onResponseBufferFull() {
  if (slow_reader_timer_ && slow_reader_timer_->enabled()) return;
  if (!slow_reader_timer_) slow_reader_timer_ = std::make_unique<Timer>(dispatcher_, [this] { checkSlowReaders(); });
  for (auto& [id, stream] : streams_) stream->markResponseProgress();
  acked_mark_ = socket_.bytesAcked();
  slow_reader_timer_->enable(kSlowReaderGrace);
}

size_t DownstreamConnection::reserveResponseWindow(size_t wanted) {
  // Each lent byte may end up queued here for a client that reads slowly,
  // however slowly it reads (checkSlowReaders spares calls that move), so
  // the lending stops where max_buffered_response_bytes would be passed.
  const uint64_t limit = listener_.config().max_buffered_response_bytes;
  const size_t left = response_windows_lent_ < limit ? static_cast<size_t>(limit - response_windows_lent_) : 0;
  const size_t granted = std::min(wanted, left);
  response_windows_lent_ += granted;
  return granted;
}

void DownstreamConnection::checkSlowReaders() {
  // A client reading slowly still takes bytes: only calls that did not move
  // at all in the grace go (a stuck or malicious reader's), not the others.
  if (closed_ || buffered_response_bytes_ <= listener_.config().max_buffered_response_bytes) return;
  const bool moved = socket_.bytesAcked() != acked_mark_;
  std::vector<std::pair<size_t, DownstreamStream*>> stalled;
  for (auto& [id, stream] : streams_) {
    if (stream->responseStalled(moved)) stalled.emplace_back(stream->queuedResponseBytes(), stream.get());
  }
  // Only as many as bring the connection back under the limit, those
  // holding the most first: a client that paused a few calls more than the
  // limit holds (each may hold a backend's whole stream window) keeps the
  // rest. Resetting frees a call's queue at once and deletes nothing now.
  std::sort(stalled.begin(), stalled.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  const size_t held = buffered_response_bytes_;
  for (const auto& [queued, stream] : stalled) {
    if (buffered_response_bytes_ <= listener_.config().max_buffered_response_bytes) break;
    stream->abortSlowReader(held);
  }
  // Still over (what is left is moving, or nothing stalled): watch the next grace.
  if (buffered_response_bytes_ > listener_.config().max_buffered_response_bytes) onResponseBufferFull();
}

void DownstreamConnection::close(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  spdlog::debug("[C{}] closing: {}", id_, reason);
  timers_.stop();
  if (drain_timer_) drain_timer_->disable();
  if (preface_timer_) preface_timer_->disable();
  if (linger_timer_) linger_timer_->disable();
  if (slow_reader_timer_) slow_reader_timer_->disable();
  socket_.close();
  endStreams(reason);
  listener_.onConnectionClosed(*this);
}

void DownstreamConnection::endStreams(const std::string& reason) {
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, stream] : streams) {
    session_.detach(id);
    stream->onConnectionClosed(
        lost_ ? DownstreamStream::ConnectionEnd::Lost : DownstreamStream::ConnectionEnd::ClosedByGateway, reason);
    dispatcher_.deferredDelete(std::move(stream));
  }
}

}  // namespace sluice
