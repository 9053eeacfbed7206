#include "upstream/cluster.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/dispatcher.h"
#include "core/headers.h"
#include "core/stats.h"
#include "upstream/connection_pool.h"
#include "upstream/endpoint.h"

namespace sluice {
namespace {

// Longest ejection, whatever the count: an endpoint always gets another chance.
constexpr int64_t kMaxEjectionMs = 300000;

}  // namespace

Cluster::Cluster(Dispatcher& dispatcher, const ClusterConfig& config, WorkerStats& stats)
    : dispatcher_(dispatcher), config_(config), stats_(stats.cluster(config.name)) {
  std::vector<Endpoint*> all;
  for (const auto& ep : config.endpoints) {
    endpoints_.push_back(std::make_unique<Endpoint>(dispatcher, *this, ep, stats.endpointGauge(config.name, ep.key())));
    all.push_back(endpoints_.back().get());
  }
  lb_ = makeLoadBalancer(config.lb_policy, all);
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (!config.endpoints[i].isHostName()) continue;
    Endpoint* endpoint = endpoints_[i].get();
    named_.push_back({endpoint, std::make_unique<HostResolver>(dispatcher, [this, endpoint](auto address) {
                        onResolved(*endpoint, address);
                      })});
  }
  if (!named_.empty()) {
    dns_timer_ = std::make_unique<Timer>(dispatcher, [this] { refreshDns(); });
    dns_timer_->enable(std::chrono::milliseconds(config.dns_refresh_ms));
  }
}

Cluster::~Cluster() { closeAll(); }

Status Cluster::admitRequest() {
  if (active_requests >= config_.circuit_breakers.max_requests) {
    stats_.upstream_rq_overflow.inc();
    return {StatusCode::Unavailable,
            fmt::format("cluster '{}': circuit breaker max_requests ({}) reached", config_.name,
                        config_.circuit_breakers.max_requests)};
  }
  return Status::ok();
}

bool Cluster::admitRetry(std::string& why) {
  const auto& cb = config_.circuit_breakers;
  const uint64_t allowed = std::max<uint64_t>(cb.min_retry_concurrency,
                                              uint64_t{active_requests} * cb.retry_budget_percent / 100);
  if (active_retries < allowed) {
    ++active_retries;
    return true;
  }
  stats_.upstream_rq_retry_overflow.inc();
  why = fmt::format("cluster '{}': retry budget used up ({} call(s) retrying, {} request(s) in flight)", config_.name,
                    active_retries, active_requests);
  return false;
}

StatusOr<Endpoint*> Cluster::chooseEndpoint(const HeaderMap& request_headers, const Endpoint* avoid) {
  auto now = Endpoint::Clock::now();
  size_t available = 0;
  for (auto& ep : endpoints_) available += ep->available(now) ? 1 : 0;
  // Too few available: health and ejection are ignored (each endpoint counts
  // as available), rather than the few left taking all, or none answering.
  const bool panic = available * 100 < endpoints_.size() * config_.panic_threshold_percent;
  auto usable = [&](const Endpoint& ep) { return panic || ep.available(now); };
  candidates_.clear();
  for (auto& ep : endpoints_) {
    if (usable(*ep) && !ep->pool().inBackoff(now) && ep.get() != avoid) candidates_.push_back(ep.get());
  }
  if (candidates_.empty() && avoid != nullptr && usable(*avoid)) {
    candidates_.push_back(const_cast<Endpoint*>(avoid));
  }
  if (candidates_.empty()) {
    // Endpoints only waiting to reconnect are better than none.
    for (auto& ep : endpoints_) {
      if (usable(*ep)) candidates_.push_back(ep.get());
    }
  }
  if (panic) stats_.lb_healthy_panic.inc();
  if (candidates_.empty()) {
    return Status(StatusCode::Unavailable,
                  fmt::format("no healthy endpoint in cluster '{}' ({} endpoint(s), all unhealthy or ejected)",
                              config_.name, endpoints_.size()));
  }
  const std::string* key = config_.hash_header.empty() ? nullptr : request_headers.get(config_.hash_header);
  return lb_->pick(candidates_, key);
}

void Cluster::onEndpointFailing(Endpoint& endpoint) {
  if (!config_.outlier_detection) return;
  const auto& od = *config_.outlier_detection;
  auto now = Endpoint::Clock::now();
  if (endpoint.ejected(now)) return;
  endpoint.forgiveEjections(now, std::chrono::milliseconds(od.base_ejection_ms));
  size_t ejected = 0;
  for (auto& ep : endpoints_) ejected += ep->ejected(now) ? 1 : 0;
  size_t allowed = od.max_ejection_percent == 0
                       ? 0
                       : std::max<size_t>(1, endpoints_.size() * od.max_ejection_percent / 100);
  if (ejected + 1 > allowed) {
    spdlog::debug("cluster '{}': not ejecting {} ({} of {} already ejected)", config_.name, endpoint.describe(),
                  ejected, endpoints_.size());
    return;
  }
  int64_t ms = std::min<int64_t>(int64_t{od.base_ejection_ms} * (endpoint.ejections() + 1),
                                 std::max<int64_t>(od.base_ejection_ms, kMaxEjectionMs));
  endpoint.eject(now + std::chrono::milliseconds(ms));
  stats_.outlier_ejections.inc();
  spdlog::info("cluster '{}': ejected {} for {} ms after {} consecutive failures", config_.name,
               endpoint.describe(), ms, od.consecutive_failures);
}

void Cluster::refreshDns() {
  // Each lookup runs off the loop (HostResolver): a resolver that does not
  // answer delays only the next address change, never a call. One still in
  // flight from the last round is left to finish.
  for (auto& [endpoint, lookup] : named_) {
    if (!lookup->busy()) lookup->resolve(endpoint->host(), endpoint->address().port);
  }
  dns_timer_->enable(std::chrono::milliseconds(config_.dns_refresh_ms));
}

void Cluster::onResolved(Endpoint& endpoint, const std::optional<SocketAddress>& address) {
  // A name that stopped resolving keeps its last address: better than none.
  if (!address) {
    spdlog::debug("cluster '{}': cannot resolve {}, keeping {}", config_.name, endpoint.host(),
                  endpoint.address().toString());
    return;
  }
  if (address->host == endpoint.address().host) return;
  // New connections only: open streams are never dropped.
  spdlog::info("cluster '{}': {} now resolves to {}", config_.name, endpoint.host(), address->toString());
  endpoint.setAddress(*address);
}

void Cluster::startHealthChecks() {
  for (auto& ep : endpoints_) ep->startHealthChecks();
}

void Cluster::adoptStateOf(Cluster& old) {
  for (auto& ep : endpoints_) {
    for (auto& old_ep : old.endpoints_) {
      // The same backend: a host name now resolving elsewhere is another
      // one, and starts afresh.
      if (old_ep->configKey() == ep->configKey() && old_ep->address() == ep->address()) {
        ep->adoptStateOf(*old_ep);
        break;
      }
    }
  }
}

void Cluster::retire() {
  if (dns_timer_) dns_timer_->disable();
  named_.clear();
  for (auto& ep : endpoints_) ep->stopHealthChecks();
}

void Cluster::closeAll() {
  if (dns_timer_) dns_timer_->disable();
  named_.clear();  // answers still coming are dropped
  for (auto& ep : endpoints_) ep->close();
}

}  // namespace sluice
