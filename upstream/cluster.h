// Cluster: one configured upstream cluster on one worker: its endpoints, load
// balancer, circuit-breaker counters, outlier ejection and DNS refresh.
//
// Held by the ClusterManager of each of its worker's configs that has it
// unchanged (a reload that leaves a cluster alone keeps it running); owns
// its Endpoints and a copy of its ClusterConfig, so that it outlives the
// config it was built from. With dns_addresses "all", the
// refresh adds an endpoint for each new address of a host name and removes
// those whose address left the answer (kept until nothing uses them).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/cluster_config.h"
#include "core/host_resolver.h"
#include "core/status.h"
#include "core/timer.h"
#include "upstream/health_role.h"
#include "upstream/load_balancer.h"

namespace sluice {

class Dispatcher;
struct ClusterStats;
class WorkerStats;
class Endpoint;
class HeaderMap;

class Cluster {
 public:
  // Its stats and its endpoints' live in `stats`, the worker's. `role` (the
  // worker's, outliving the cluster) says whether it runs health checks.
  // `config` is copied.
  Cluster(Dispatcher& dispatcher, const ClusterConfig& config, WorkerStats& stats,
          const HealthRole& role = kCheckingAlone);

  // A worker that checks and reports to nobody (tests, a single worker).
  static const HealthRole kCheckingAlone;
  ~Cluster();

  const std::string& name() const { return config_.name; }
  const ClusterConfig& config() const { return config_; }
  Dispatcher& dispatcher() { return dispatcher_; }
  ClusterStats& stats() { return stats_; }
  // The endpoints taking calls (not those removed and still finishing).
  const std::vector<std::unique_ptr<Endpoint>>& endpoints() const { return endpoints_; }

  // max_requests: may one more stream start on this cluster?
  Status admitRequest();
  // The retry budget: may one more call go on to retry? If so it counts
  // among active_retries until it gives the place back with retryDone().
  // If not, counted in upstream_rq_retry_overflow, and `why` says so.
  bool admitRetry(std::string& why);
  void retryDone() { --active_retries; }
  // The endpoint for a new stream, avoiding `avoid` (the last attempt's,
  // perhaps removed since) when another is available; UNAVAILABLE naming the
  // cluster when none is.
  StatusOr<Endpoint*> chooseEndpoint(const HeaderMap& request_headers, const Endpoint* avoid);

  // Circuit-breaker counters, kept by pools and connections.
  uint32_t connections = 0;
  uint32_t pending_streams = 0;
  uint32_t active_requests = 0;
  uint32_t active_retries = 0;  // calls waiting for or running a retry

  // Active health checks run here (configured, and this worker's role).
  bool checksHealth() const { return config_.health_check.has_value() && role_.checks; }
  // A check of `endpoint` here finished: tell the other workers.
  void onHealthChecked(const Endpoint& endpoint);
  // The checking worker's result for the endpoint with `endpoint_key` at
  // `address` (ignored if there is none here, as during a reload or a DNS
  // change: one this worker holds at another address goes unreported, and
  // is checked here after three intervals). A healthy one also ends the
  // endpoint's reconnect backoff here, as a check that connected does on
  // the checking worker.
  void applyHealthReport(const std::string& endpoint_key, const SocketAddress& address, bool healthy);

  // Outlier detection: `endpoint` reached its consecutive-failure threshold.
  // Ejected, it is ejected on the other workers too (HealthRole).
  void onEndpointFailing(Endpoint& endpoint);
  // A worker ejected the endpoint with `endpoint_key` at `address` until
  // `until`: ejected here as well, within this cluster's max_ejection_percent
  // (ignored if there is no such endpoint here, at that address, or it is
  // ejected already).
  void applyEjectionReport(const std::string& endpoint_key, const SocketAddress& address,
                           std::chrono::steady_clock::time_point until);

  // After adoptStateOf (a reload), so that a first check failing at once
  // is not overwritten by the old state.
  void startHealthChecks();
  // A reload: carry over what the old config's cluster of the same name knew
  // of each endpoint it shares with this one (Endpoint::adoptStateOf).
  void adoptStateOf(Cluster& old);
  // A reload retired this cluster's config: stop health checks and DNS
  // refreshes (its calls still running keep their connections).
  void retire();
  // A reload kept this cluster: its host names are looked up now, as a
  // reload of a changed cluster would (the answers come off the loop).
  void refreshHostNames();
  void closeAll();

 private:
  // Whether ejecting `endpoint` too keeps the cluster within max_ejection_percent.
  bool mayEjectAnother(const Endpoint& endpoint, std::chrono::steady_clock::time_point now) const;
  Endpoint& addEndpoint(const EndpointConfig& config, const SocketAddress& address, bool one_of_many);
  // dns_addresses "all": adds `config`'s endpoint at `address` unless the
  // cluster has one there already (another name's, or an IP literal): one
  // backend is one endpoint, with one pool and one series in the metrics.
  Endpoint* addAddressOf(const EndpointConfig& config, const SocketAddress& address);
  void rebuildBalancer();
  void refreshDns();
  // dns_addresses "first": the endpoint moves to a new address only when its
  // own is no longer among the answers.
  void onResolved(Endpoint& endpoint, const std::vector<SocketAddress>& addresses);
  // dns_addresses "all": endpoints follow `config`'s answer.
  void onResolvedAll(const EndpointConfig& config, const std::vector<SocketAddress>& addresses);
  // Deletes the removed endpoints nothing uses any more.
  void sweepRemoved();
  // On a worker that does not check: endpoints the checking worker has not
  // reported on for three intervals (it does not have them) are checked here.
  void checkUnreported();

  Dispatcher& dispatcher_;
  const ClusterConfig config_;
  const HealthRole& role_;
  WorkerStats& worker_stats_;
  ClusterStats& stats_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  // Removed by a DNS answer; their calls and connections still finishing.
  std::vector<std::unique_ptr<Endpoint>> removed_;
  LoadBalancerPtr lb_;
  std::vector<Endpoint*> candidates_;  // scratch, reused per pick
  bool health_checks_started_ = false;
  // Each host-name endpoint config with its lookup; declared after the
  // endpoints, so the lookups (and their callbacks) go first.
  struct NamedEndpoint {
    const EndpointConfig* config;
    std::unique_ptr<HostResolver> lookup;  // its answers go to onResolved or onResolvedAll
    // Its last answer (dns_addresses "all"): an address two names share is
    // the first's endpoint, and passes to the other when the first drops it.
    std::vector<SocketAddress> answer;
  };
  // dns_addresses "all": the name other than `config` whose last answer has
  // `address`, if any.
  const EndpointConfig* otherNameAnswering(const EndpointConfig& config, const SocketAddress& address) const;
  std::vector<NamedEndpoint> named_;
  TimerPtr dns_timer_;
};

}  // namespace sluice
