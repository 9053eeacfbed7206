#include "upstream/connection_pool.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/dispatcher.h"
#include "core/stats.h"
#include "upstream/cluster.h"
#include "upstream/endpoint.h"
#include "upstream/upstream_connection.h"

namespace sluice {
namespace {

constexpr int64_t kBackoffBaseMs = 100;
constexpr int64_t kBackoffMaxMs = 10000;
// Past this since the last failed connect, a pool in backoff may try again
// when the cluster has no endpoint out of backoff (probeDue()).
constexpr int64_t kProbeAfterMs = 1000;

}  // namespace

ConnectionPool::ConnectionPool(Dispatcher& dispatcher, Endpoint& endpoint)
    : dispatcher_(dispatcher), endpoint_(endpoint) {}

ConnectionPool::~ConnectionPool() { closeAll(); }

Cluster& ConnectionPool::cluster() { return endpoint_.cluster(); }

Status ConnectionPool::newStream(UpstreamStream& stream, bool counted) {
  if (Status refused = refusesStreams(); !refused.isOk()) return refused;
  Cluster& c = cluster();
  const auto& limits = c.config().circuit_breakers;
  // The usable connection carrying the fewest calls. Another one opens when
  // none is usable, or while there are fewer than connections_per_endpoint
  // and all are busy: calls spread over that many backend connections.
  // A backed-up connection (its backend not taking what is written) is used
  // only when no other can be opened: a new call's HEADERS would wait behind
  // the backlog, for as long as the backend does not read.
  UpstreamConnection* best = nullptr;
  UpstreamConnection* backed_up = nullptr;
  size_t usable = 0;
  for (auto& conn : connections_) {
    if (!conn->usable() || (counted && conn->checksOnly())) continue;
    if (conn->backedUp()) {
      if (backed_up == nullptr || conn->activeStreams() < backed_up->activeStreams()) backed_up = conn.get();
      continue;
    }
    ++usable;
    if (best == nullptr || conn->activeStreams() < best->activeStreams()) best = conn.get();
  }
  if (best == nullptr && backed_up != nullptr &&
      !canOpenConnection(counted, /*record_overflow=*/false).isOk()) {
    best = backed_up;  // better late than refused
  }
  Status open_status = Status::ok();
  if (best != nullptr) {
    bool spread = best->activeStreams() > 0 && usable < c.config().connections_per_endpoint;
    // Spreading is optional: a breaker or backoff in the way is not an overflow.
    if (spread) open_status = canOpenConnection(counted, /*record_overflow=*/false);
    if (!spread || !open_status.isOk()) {
      if (!best->ready() && counted && c.pending_streams >= limits.max_pending_streams) {
        c.stats().upstream_rq_overflow.inc();
        return {StatusCode::Unavailable, fmt::format("circuit breaker max_pending_streams ({}) reached",
                                                     limits.max_pending_streams)};
      }
      best->addStream(stream, counted);
      return Status::ok();
    }
  } else {
    open_status = canOpenConnection(counted, /*record_overflow=*/true);
    if (!open_status.isOk()) return open_status;
  }
  // A health check past the connection breaker (canOpenConnection lets it)
  // gets a connection that calls then leave to the checks: otherwise every
  // check would add one the calls could take, past the limit.
  const bool checks_only = !counted && c.connections >= limits.max_connections;
  auto conn = std::make_unique<UpstreamConnection>(dispatcher_, *this, next_connection_id_++, checks_only);
  UpstreamConnection& ref = *conn;
  connections_.push_back(std::move(conn));
  ref.addStream(stream, counted);
  if (retired_) ref.retire();
  ref.connect();
  return Status::ok();
}

Status ConnectionPool::canOpenConnection(bool counted, bool record_overflow) {
  Cluster& c = cluster();
  const auto& limits = c.config().circuit_breakers;
  auto now = Clock::now();
  // Health checks (uncounted) connect whatever the backoff: a check that
  // failed without asking would keep a restarted backend unhealthy until the
  // backoff (up to 10 s) ran out; one connect per check interval is cheap.
  // The one connect a due probe allows: none while one is under way (with
  // connections_per_endpoint above 1, calls waiting on it would open more).
  const bool probe = probeDue(now) && std::none_of(connections_.begin(), connections_.end(), [](const auto& conn) {
                       return !conn->ready() && !conn->checksOnly();
                     });
  if (counted && inBackoff(now) && !probe) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(backoff_until_ - now).count();
    return {StatusCode::Unavailable, fmt::format("endpoint {} is in reconnect backoff for {} ms after {} failed "
                                                 "connect(s)", endpoint_.describe(), left, connect_failures_)};
  }
  // Health checks (uncounted) pass the connection breaker: otherwise the
  // connections of busy endpoints would stop another's checks, and it would
  // be marked unhealthy without ever being asked. They open at most one
  // connection per endpoint beyond the limit.
  if (counted && c.connections >= limits.max_connections) {
    if (record_overflow) c.stats().upstream_rq_overflow.inc();
    return {StatusCode::Unavailable, fmt::format("circuit breaker max_connections ({}) reached",
                                                 limits.max_connections)};
  }
  if (counted && c.pending_streams >= limits.max_pending_streams) {
    if (record_overflow) c.stats().upstream_rq_overflow.inc();
    return {StatusCode::Unavailable, fmt::format("circuit breaker max_pending_streams ({}) reached",
                                                 limits.max_pending_streams)};
  }
  return Status::ok();
}

Status ConnectionPool::refusesStreams() const {
  // Only while every connection that heard the backend's SETTINGS and still
  // takes calls says 0: one that allows any keeps the endpoint open (it may
  // have room, or a new connection may), and once they have all closed or
  // drained, the next call tries again.
  bool heard_zero = false;
  for (const auto& conn : connections_) {
    const std::optional<uint32_t> limit = conn->openStreamLimit();
    if (!limit) continue;
    if (*limit != 0) return Status::ok();
    heard_zero = true;
  }
  if (!heard_zero) return Status::ok();
  return {StatusCode::Unavailable, fmt::format("endpoint {} takes no calls now: its backend advertises "
                                               "SETTINGS_MAX_CONCURRENT_STREAMS 0", endpoint_.describe())};
}

void ConnectionPool::onAddressChanged() {
  // Another backend now: the old one's connections take no new calls and
  // close as theirs end, and what was learned of it (its connect failures,
  // its stream limit) says nothing of the new one.
  for (auto& conn : connections_) conn->retire();
  connect_failures_ = 0;
  backoff_until_ = {};
  probe_after_ = {};
  advertised_stream_limit_.reset();
  // Then calls waiting on a connect still under way to the old address move
  // to a connection to the new one (every old one is retired by now, so
  // none takes them).
  std::vector<UpstreamConnection*> old;
  for (auto& conn : connections_) old.push_back(conn.get());
  for (UpstreamConnection* conn : old) conn->retire(WaitingCalls::Move);
}

void ConnectionPool::onConnectFailed() {
  ++connect_failures_;
  cluster().stats().upstream_cx_connect_fail.inc();
  // Exponential backoff with full jitter, so workers and gateways that lost
  // the same backend do not reconnect in lockstep.
  int64_t cap = std::min(kBackoffMaxMs, kBackoffBaseMs << std::min<uint32_t>(connect_failures_ - 1, 10));
  int64_t ms = std::uniform_int_distribution<int64_t>(cap / 2, cap)(rng_);
  const auto now = Clock::now();
  backoff_until_ = now + std::chrono::milliseconds(ms);
  probe_after_ = now + std::chrono::milliseconds(std::min(ms, kProbeAfterMs));
}

void ConnectionPool::onConnectionClosed(UpstreamConnection& connection) {
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [&](const auto& c) { return c.get() == &connection; });
  if (it == connections_.end()) return;
  // We may be inside one of its callbacks: delete it after this event.
  dispatcher_.deferredDelete(std::move(*it));
  connections_.erase(it);
  // What the backend advertised is known only while a connection that heard
  // it is open: the next connection asks afresh (it may have restarted with
  // another limit, or stopped refusing streams).
  if (connections_.empty()) advertised_stream_limit_.reset();
}

void ConnectionPool::retire(WaitingCalls waiting) {
  retired_ = true;
  // retire() may close a connection, which edits connections_.
  std::vector<UpstreamConnection*> open;
  for (auto& conn : connections_) open.push_back(conn.get());
  for (UpstreamConnection* conn : open) conn->retire(waiting);
}

void ConnectionPool::closeAll() {
  // close() calls back into onConnectionClosed, which edits the vector.
  while (!connections_.empty()) connections_.back()->close("gateway shutting down");
}

}  // namespace sluice
