// UpstreamConnection: one h2c client connection to a backend endpoint,
// multiplexing many UpstreamStreams.
//
// Owned by its ConnectionPool. Streams are not owned: the connection keeps raw
// pointers to the streams it carries and tells each one when the connection is
// lost. Streams wait (pending) until the backend's SETTINGS arrive, so that no
// more are opened than the backend allows: those past its
// SETTINGS_MAX_CONCURRENT_STREAMS go back to the pool for another connection
// instead of queueing inside nghttp2 behind calls that may never end. It keeps the cluster's breaker
// counters (connections, pending streams, requests) and the endpoint's load
// up to date, PINGs an idle backend to find dead ones, and closes itself when
// idle too long. A closed connection asks the pool to delete it at the end of
// the loop iteration.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "codecs/http2/session.h"
#include "core/connection_timers.h"
#include "core/dispatcher.h"
#include "core/socket_address.h"
#include "core/tcp_socket.h"
#include "core/timer.h"
#include "upstream/connection_pool.h"

namespace sluice {

class UpstreamStream;

class UpstreamConnection final : public Http2SessionOwner,
                                 public TcpSocketCallbacks,
                                 public ConnectionTimers::Callbacks,
                                 public Flushable,
                                 public DeferredDeletable {
 public:
  // `checks_only`: opened by a health check past circuit_breakers.max_connections.
  // It carries health checks only and is not counted against the breaker, so
  // that the checks cannot lift the cluster's calls past the limit.
  UpstreamConnection(Dispatcher& dispatcher, ConnectionPool& pool, uint64_t id, bool checks_only = false);
  ~UpstreamConnection() override;

  void connect();
  // Carries `stream` (submitted now, or when the connect completes).
  void addStream(UpstreamStream& stream, bool counted);
  // Resets and forgets a stream the proxy abandoned.
  void cancelStream(UpstreamStream& stream);
  // nghttp2 closed the stream; stop tracking it.
  void forgetStream(UpstreamStream& stream);
  void onStreamHasData(UpstreamStream& stream);
  void consume(int32_t stream_id, size_t n);
  void setReceiveWindow(int32_t stream_id, uint32_t size);
  // The stream's HEADERS went out (Http2Session::streamOpen).
  bool streamSent(int32_t stream_id) const { return stream_id > 0 && session_.streamOpen(stream_id); }

  // Accepts new streams: not draining, not closed, below the backend's limit.
  bool usable() const;
  // Holds kMaxPendingWrite bytes the backend has not taken (a stuck backend,
  // or requests streaming faster than it reads): a new stream's HEADERS
  // would wait behind them. The pool prefers another connection.
  bool backedUp() const;
  // The backend's SETTINGS arrived: streams added now are opened at once.
  bool ready() const { return settings_received_; }
  // What its backend last advertised as SETTINGS_MAX_CONCURRENT_STREAMS,
  // while it is ready and still takes new streams (not draining or closed).
  std::optional<uint32_t> openStreamLimit() const;
  bool checksOnly() const { return checks_only_; }
  size_t activeStreams() const { return streams_.size(); }
  // Takes no new streams and closes once the ones it carries end (its
  // endpoint was removed, moved, or its config replaced). `waiting`: what
  // becomes of calls still waiting for the backend's SETTINGS.
  void retire(WaitingCalls waiting = WaitingCalls::Stay);
  // Closes now; every stream still carried is told.
  void close(const std::string& reason);
  // Closes because the connection failed (not by our choice): before the
  // backend's SETTINGS that counts as a failed connect for the pool's backoff.
  void fail(const std::string& reason);

  // ---- TcpSocketCallbacks ----
  void onConnected(int status) override;
  void onRead(const uint8_t* data, size_t len) override;
  void onDisconnected(int status) override;
  void onWriteDrained() override { scheduleFlush(); }
  // ---- Http2SessionOwner ----
  void onGoaway(int32_t last_stream_id, uint32_t error_code) override;
  void onErrorGoawaySent(uint32_t error_code, std::string_view detail) override;
  void onPingAck(uint64_t sequence) override;
  void onRemoteSettings() override;
  // ---- ConnectionTimers::Callbacks ----
  void sendKeepalivePing() override;
  void onConnectionTimeout(const std::string& reason) override { close(reason); }
  // ---- Flushable ----
  void flush() override;

 private:
  void submit(UpstreamStream& stream);
  // How many streams this connection may carry: the backend's advertised
  // limit (before its SETTINGS, what the pool learned from other connections
  // to it), capped by the cluster's own max_concurrent_streams.
  uint32_t streamLimit() const;
  // How many streams it opens in all before it is retired: the cluster's
  // max_requests_per_connection, or as many as the stream IDs allow.
  uint32_t streamShare() const;
  // A pending stream the backend has no room for here goes back to the pool.
  void rehome(UpstreamStream& stream, uint32_t limit);
  // A later SETTINGS lowered the limit: submitted streams not yet sent past
  // it go back to the pool.
  void moveUnsentPastLimit();
  // Stops tracking `stream` and updates the counters; false if it was not ours.
  bool release(UpstreamStream& stream);
  std::string describe() const;

  Dispatcher& dispatcher_;
  ConnectionPool& pool_;
  uint64_t id_;
  // Where it connects: its endpoint's address when it was opened (a host
  // name's endpoint may move on; this connection does not).
  SocketAddress address_;
  std::string address_text_;
  bool checks_only_;
  TcpSocket socket_;
  Http2Session session_;
  TimerPtr connect_timer_;
  ConnectionTimers timers_;
  bool connected_ = false;
  bool settings_received_ = false;
  bool closed_ = false;
  // No new streams; closes once its streams are done: the backend sent
  // GOAWAY, or the connection opened its share (max_requests_per_connection).
  bool draining_ = false;
  uint32_t goaway_logged_code_ = 0;
  // Why our nghttp2 ended the session (the backend broke the protocol): what
  // the calls on it are failed with, instead of "session ended" alone.
  std::string end_reason_;  // the error GOAWAY last logged (each code once per connection)
  uint32_t streams_opened_ = 0;
  std::unordered_map<UpstreamStream*, bool> streams_;  // stream -> counted in the cluster's requests
  std::vector<UpstreamStream*> pending_;  // waiting for the backend's SETTINGS
};

}  // namespace sluice
