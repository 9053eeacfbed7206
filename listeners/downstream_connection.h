// DownstreamConnection: one client's h2c connection and the calls on it.
//
// Owned by its GrpcListener. Owns its socket, its nghttp2 server session and
// every DownstreamStream on it (by stream id). Streams closed by nghttp2 and
// the connection itself are deleted at the end of the loop iteration, never
// inside the callback that ended them.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "codecs/http2/session.h"
#include "core/connection_timers.h"
#include "core/dispatcher.h"
#include "core/tcp_socket.h"
#include "core/timer.h"

struct uv_stream_s;

namespace sluice {

class DownstreamStream;
class GrpcListener;
class WorkerContext;
struct ListenerConfig;
struct ListenerStats;

class DownstreamConnection final : public Http2SessionOwner,
                                   public TcpSocketCallbacks,
                                   public ConnectionTimers::Callbacks,
                                   public Flushable,
                                   public DeferredDeletable {
 public:
  DownstreamConnection(GrpcListener& listener, uint64_t id);
  ~DownstreamConnection() override;

  int accept(uv_stream_s* server);
  // Takes over a connection another worker accepted (connection balancing).
  int adopt(int fd);

  uint64_t id() const { return id_; }
  const std::string& peerAddress() const { return peer_address_; }
  GrpcListener& listener() { return listener_; }
  ListenerStats& stats();
  bool draining() const { return draining_; }
  bool finalGoawaySent() const { return final_goaway_sent_; }
  size_t activeStreams() const { return streams_.size(); }
  // See GrpcListener::collectCallsHolding.
  void collectCallsHolding(uint64_t min_bytes, std::vector<std::pair<uint64_t, DownstreamStream*>>& out) const;
  // Graceful GOAWAY: a shutdown notice first, the real last stream id after a
  // round trip (PING), then the connection closes when its streams are done.
  void startDrain();
  // The drain's time is up: every open call ends with UNAVAILABLE `why` and
  // the final GOAWAY goes out, so the connection closes once the client has
  // read them (the gateway closes it shortly after, read or not).
  void endCallsForShutdown(std::string_view why);
  Dispatcher& dispatcher() { return dispatcher_; }
  Http2Session& session() { return session_; }

  // Output for the session is pending: write it after this event.
  void wake() { scheduleFlush(); }
  void onStreamClosed(DownstreamStream& stream);
  // Memory held by this connection's request messages, still arriving or
  // waiting to be written to their backend (max_incomplete_request_bytes):
  // each stream reports its partial message's changes and takes its share
  // back when it closes; the terminal filters' queues count themselves in
  // through heldRequestBytesTotal().
  uint64_t incompleteRequestBytes() const { return incomplete_request_bytes_; }
  // Request headers its open calls hold (max_held_request_header_bytes).
  uint64_t heldRequestHeaderBytes() const { return held_request_header_bytes_; }
  void adjustHeldRequestHeaderBytes(int64_t delta) { held_request_header_bytes_ += delta; }
  void adjustIncompleteRequestBytes(int64_t delta) { incomplete_request_bytes_ += delta; }
  size_t* heldRequestBytesTotal() { return &incomplete_request_bytes_; }
  // Response messages its calls' backends are still sending
  // (max_incomplete_response_bytes).
  uint64_t incompleteResponseBytes() const { return incomplete_response_bytes_; }
  void adjustIncompleteResponseBytes(int64_t delta) { incomplete_response_bytes_ += delta; }
  // Response bytes its streams hold queued for the client (their
  // OutboundData count into it; max_buffered_response_bytes).
  size_t* bufferedResponseTotal() { return &buffered_response_bytes_; }
  size_t bufferedResponseBytes() const { return buffered_response_bytes_; }
  // Backend receive windows lent to its calls beyond their base (see
  // StreamContext::reserveResponseWindow): in all, at most
  // max_buffered_response_bytes.
  size_t reserveResponseWindow(size_t wanted);
  void releaseResponseWindow(size_t granted) { response_windows_lent_ -= granted; }
  // A stream queued a response while the total is over the limit: in
  // kSlowReaderGrace, the calls whose backed-up response did not move at
  // all are reset, if the total is still over it.
  void onResponseBufferFull();
  static constexpr std::chrono::milliseconds kSlowReaderGrace{2000};
  void close(const std::string& reason);

  // ---- Http2SessionOwner ----
  Http2StreamHandler* onNewStream(int32_t stream_id) override;
  void onPingAck(uint64_t sequence) override;
  void onRemoteSettings() override;
  void onErrorGoawaySent(uint32_t error_code, std::string_view detail) override;
  // ---- TcpSocketCallbacks ----
  void onRead(const uint8_t* data, size_t len) override;
  void onDisconnected(int status) override;
  void onWriteDrained() override { scheduleFlush(); }
  // ---- ConnectionTimers::Callbacks ----
  void sendKeepalivePing() override;
  void onConnectionTimeout(const std::string& reason) override;
  // ---- Flushable ----
  void flush() override;

 private:
  // Reading, timers and our SETTINGS, once the socket is ours.
  void start();
  GrpcListener& listener_;
  Dispatcher& dispatcher_;
  uint64_t id_;
  TcpSocket socket_;
  Http2Session session_;
  std::string peer_address_;
  std::unordered_map<int32_t, std::unique_ptr<DownstreamStream>> streams_;
  ConnectionTimers timers_;
  size_t max_pending_write_;
  bool closed_ = false;
  bool lost_ = false;  // the client's side ended it (onDisconnected), not the gateway
  bool read_paused_ = false;  // our writes to the client are backed up (flush())
  bool draining_ = false;
  bool final_goaway_sent_ = false;
  std::unique_ptr<Timer> drain_timer_;
  // Armed at accept until the client's preface is complete (its first
  // SETTINGS), then freed; firing closes the connection (preface_timeout_ms).
  std::unique_ptr<Timer> preface_timer_;
  void onPrefaceTimeout();
  uint64_t drain_ping_ = 0;  // the PING whose ACK ends the drain's first phase
  void sendFinalGoaway();
  // The first GOAWAY (nothing refused yet) and its PING; the final GOAWAY
  // follows the PING's answer or 1 s (drain, idle timeout).
  void announceClose();
  // An ending connection (its GOAWAY queued, or its session over with bytes
  // still to write) waits for the client to read them, but only while it
  // does: one that stops reading would otherwise hold the connection forever.
  void lingerWhileClientReads();
  void onLingerCheck();
  // After the client's HTTP/2 error: FIN after the GOAWAY, then wait for the
  // client's close (not a reset that could discard the GOAWAY unread).
  void closeOnceClientHasGoaway();
  // A drain or shutdown closes such a connection at once (true if it is one).
  bool closeLingeringAfterError();
  bool write_shut_after_error_ = false;
  // Ends every open call as the connection's end (close(), or an error's GOAWAY).
  void endStreams(const std::string& reason);
  bool ending_ = false;
  // Why the session is ending, when it is for the client's error: what its
  // open calls are ended with (onConnectionClosed).
  std::string end_reason_;
  // The connection's first bytes, held until they tell HTTP/2 from HTTP/1
  // (at most the 24-byte preface's worth, plus what arrived with it).
  void receive(const uint8_t* data, size_t len);
  void refuseHttp1();
  std::string start_;
  bool start_checked_ = false;
  bool http1_refused_ = false;
  size_t incomplete_request_bytes_ = 0;
  size_t held_request_header_bytes_ = 0;
  size_t incomplete_response_bytes_ = 0;
  size_t buffered_response_bytes_ = 0;
  size_t response_windows_lent_ = 0;
  size_t linger_pending_ = 0;  // bytes unwritten at the last check
  std::unique_ptr<Timer> linger_timer_;
  std::unique_ptr<Timer> slow_reader_timer_;  // onResponseBufferFull()
  uint64_t acked_mark_ = 0;                   // socket_.bytesAcked() when it was armed
  void checkSlowReaders();
};

}  // namespace sluice
