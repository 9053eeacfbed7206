// Endpoint: one backend address of a cluster, on one worker: its connection
// pool, its health (active checks and outlier ejection) and its load.
//
// Owned by its Cluster for the worker's life. The pool and the health checker
// it owns point back at it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/cluster_config.h"

namespace sluice {

class Cluster;
class ConnectionPool;
class Dispatcher;
class Gauge;
class HealthChecker;

class Endpoint {
 public:
  using Clock = std::chrono::steady_clock;

  // `active_gauge` follows activeRequests() for the metrics (summed over workers).
  Endpoint(Dispatcher& dispatcher, Cluster& cluster, const EndpointConfig& config, Gauge& active_gauge);
  ~Endpoint();

  Cluster& cluster() { return cluster_; }
  ConnectionPool& pool() { return *pool_; }
  const SocketAddress& address() const { return address_; }
  void setAddress(const SocketAddress& address) { address_ = address; }
  const std::string& host() const { return config_.host; }
  std::string configKey() const { return config_.key(); }
  uint32_t weight() const { return config_.weight; }
  std::string describe() const { return address_.toString(); }

  // Gets new streams: passes active health checks and is not ejected.
  bool available(Clock::time_point now) const { return active_healthy_ && !ejected(now); }
  bool activeHealthy() const { return active_healthy_; }
  bool ejected(Clock::time_point now) const { return now < ejected_until_; }

  // Active health checking results (HealthChecker).
  void setActiveHealthy(bool healthy) { active_healthy_ = healthy; }
  // Passive results of real calls (proxy): a connect failure, reset or
  // UNAVAILABLE is a failure; any other answer a success.
  void recordCallResult(bool success);
  void eject(Clock::time_point until) { ejected_until_ = until; ++ejections_; }
  // Each `period` spent back in service since the last ejection ended takes
  // one off the count (the multiplier of the next ejection's length), as in
  // Envoy: an endpoint ejected often last week is not ejected for 5 min now.
  void forgiveEjections(Clock::time_point now, std::chrono::milliseconds period) {
    if (ejections_ == 0 || now <= ejected_until_ || period.count() <= 0) return;
    const auto periods = static_cast<uint64_t>((now - ejected_until_) / period);
    ejections_ = periods >= ejections_ ? 0 : ejections_ - static_cast<uint32_t>(periods);
    // Periods forgiven are spent: a later call (this ejection refused by
    // max_ejection_percent) counts from here. Still past: not ejected.
    ejected_until_ += periods * period;
  }
  uint32_t ejections() const { return ejections_; }
  uint32_t consecutiveFailures() const { return consecutive_failures_; }

  // Streams in flight on this endpoint (least_request, circuit breakers).
  uint32_t activeRequests() const { return active_requests_; }
  void onRequestStarted();
  void onRequestFinished();

  // Smooth weighted round robin state (load balancer only).
  int64_t rr_current = 0;

  void startHealthChecks();
  // A reload replaced this endpoint's config: its checks stop (calls still
  // running on the old config need none; the new endpoint checks the backend).
  void stopHealthChecks();
  // What the gateway learned of the backend, from the same endpoint in the
  // config a reload replaced: its reconnect backoff; its health if this
  // cluster checks health (else nothing would ever clear it); its ejection
  // and failure count if it has outlier detection.
  void adoptStateOf(Endpoint& old);
  void close();

 private:
  Cluster& cluster_;
  const EndpointConfig& config_;
  SocketAddress address_;
  std::unique_ptr<ConnectionPool> pool_;
  std::unique_ptr<HealthChecker> health_checker_;
  bool active_healthy_ = true;
  Clock::time_point ejected_until_{};
  uint32_t ejections_ = 0;
  uint32_t consecutive_failures_ = 0;
  uint32_t active_requests_ = 0;
  Gauge& active_gauge_;
};

}  // namespace sluice
