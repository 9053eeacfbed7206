// Endpoint: one backend address of a cluster, on one worker: its connection
// pool, its health (active checks and outlier ejection) and its load.
//
// Owned by its Cluster. The pool and the health checker it owns point back at
// it. An endpoint for one of a host name's addresses (dns_addresses "all")
// that left the name's answer is removed: it takes no new calls, and the
// cluster deletes it once its connections have closed and no call holds it
// (EndpointRef).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/cluster_config.h"
#include "core/dispatcher.h"

namespace sluice {

class Cluster;
class ConnectionPool;
class Gauge;
class WorkerStats;
class HealthChecker;

class Endpoint final : public DeferredDeletable {
 public:
  using Clock = std::chrono::steady_clock;

  // `address` is one of `config`'s: its first, or with `one_of_many` any of
  // a host name's (each its own endpoint). activeRequests() is followed in
  // `stats`' gauge for the endpoint's key, for the metrics (summed over
  // workers).
  Endpoint(Dispatcher& dispatcher, Cluster& cluster, const EndpointConfig& config, const SocketAddress& address,
           bool one_of_many, WorkerStats& stats);
  ~Endpoint() override;

  // Names the endpoint across workers and reloads, in metrics and on the
  // hash ring: "host:port" as written, and for one of a name's many
  // addresses "host:port/IP".
  static std::string keyFor(const EndpointConfig& config, const SocketAddress& address, bool one_of_many);
  const std::string& key() const { return key_; }
  // One of a host name's many addresses (dns_addresses "all").
  bool oneOfMany() const { return one_of_many_; }

  Cluster& cluster() { return cluster_; }
  const EndpointConfig& config() const { return config_; }
  ConnectionPool& pool() { return *pool_; }
  const SocketAddress& address() const { return address_; }
  void setAddress(const SocketAddress& address) {
    address_ = address;
    address_text_ = address.toString();
  }
  // A refresh found its host name elsewhere: new calls and health checks go
  // to the new address, calls open on the old one finish there.
  void moveTo(const SocketAddress& address);
  const std::string& host() const { return config_.host; }
  std::string configKey() const { return config_.key(); }
  uint32_t weight() const { return config_.weight; }
  // The address as text, made once: every call's log line names it.
  const std::string& describe() const { return address_text_; }

  // Gets new streams: passes active health checks and is not ejected.
  bool available(Clock::time_point now) const { return active_healthy_ && !ejected(now); }
  bool activeHealthy() const { return active_healthy_; }
  bool ejected(Clock::time_point now) const { return now < ejected_until_; }

  // Active health checking results (HealthChecker).
  void setActiveHealthy(bool healthy) { active_healthy_ = healthy; }
  // On a worker that does not check (HealthRole): the checking worker's
  // result. Ends a check of its own (checkLocally) if one runs.
  void onHealthReport(bool healthy);
  // When the checking worker last reported on it (or when it was made).
  Clock::time_point lastHealthReport() const { return last_health_report_; }
  // Checks it from this worker, as the checking worker does not report on
  // it (its endpoints differ: DNS answers that reached the workers apart).
  void checkLocally();
  bool checkedHere() const { return health_checker_ != nullptr; }
  // Passive results of real calls (proxy): a connect failure, reset or
  // UNAVAILABLE is a failure; any other answer a success.
  void recordCallResult(bool success);
  // Failures count from none again after an ejection.
  void eject(Clock::time_point until) {
    ejected_until_ = until;
    ++ejections_;
    consecutive_failures_ = 0;
  }
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

  // Its address left the host name's answer: no new calls, no health
  // checks; connections close as their calls end.
  void remove();
  bool removed() const { return removed_; }
  // Removed, and nothing uses it any more: the cluster may delete it.
  bool unused() const;

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
  friend class EndpointRef;

  Dispatcher& dispatcher_;
  Cluster& cluster_;
  const EndpointConfig& config_;
  SocketAddress address_;
  std::string address_text_;
  std::string key_;
  Clock::time_point last_health_report_ = Clock::now();
  bool one_of_many_;
  bool removed_ = false;
  uint32_t holders_ = 0;  // EndpointRefs
  std::unique_ptr<ConnectionPool> pool_;
  std::unique_ptr<HealthChecker> health_checker_;
  bool active_healthy_ = true;
  Clock::time_point ejected_until_{};
  uint32_t ejections_ = 0;
  uint32_t consecutive_failures_ = 0;
  uint32_t active_requests_ = 0;
  WorkerStats& stats_;
  const std::string cluster_name_;
  Gauge& active_gauge_;  // held from stats_ for (cluster_name_, key_)
};

// A call's hold on the endpoint of its current (or last) attempt, so that the
// endpoint outlives the call even if its address leaves the DNS answer:
// retries compare against it, and outcomes are recorded on it after the
// attempt's stream is gone. Move-only; on the endpoint's worker only.
class EndpointRef {
 public:
  EndpointRef() = default;
  explicit EndpointRef(Endpoint* endpoint) : endpoint_(endpoint) {
    if (endpoint_ != nullptr) ++endpoint_->holders_;
  }
  ~EndpointRef() { reset(); }
  EndpointRef(EndpointRef&& other) noexcept : endpoint_(other.endpoint_) { other.endpoint_ = nullptr; }
  EndpointRef& operator=(EndpointRef&& other) noexcept {
    if (this != &other) {
      reset();
      endpoint_ = other.endpoint_;
      other.endpoint_ = nullptr;
    }
    return *this;
  }
  EndpointRef(const EndpointRef&) = delete;
  EndpointRef& operator=(const EndpointRef&) = delete;

  Endpoint* get() const { return endpoint_; }
  Endpoint* operator->() const { return endpoint_; }
  explicit operator bool() const { return endpoint_ != nullptr; }
  void reset() {
    if (endpoint_ != nullptr) --endpoint_->holders_;
    endpoint_ = nullptr;
  }

 private:
  Endpoint* endpoint_ = nullptr;
};

}  // namespace sluice
