#include "upstream/cluster.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "codecs/grpc/grpc_headers.h"
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

const HealthRole Cluster::kCheckingAlone{};

Cluster::Cluster(Dispatcher& dispatcher, const ClusterConfig& config, WorkerStats& stats, const HealthRole& role)
    : dispatcher_(dispatcher),
      config_(config),
      role_(role),
      worker_stats_(stats),
      stats_(stats.cluster(config.name)) {
  const bool every_address = config_.dns_addresses == ClusterConfig::DnsAddresses::All;
  // With every address an endpoint, IP literals first: a name answering
  // one of them does not add it twice (addAddressOf).
  if (every_address) {
    for (const auto& ep : config_.endpoints) {
      if (!ep.isHostName()) addEndpoint(ep, ep.address, false);
    }
  }
  for (const auto& ep : config_.endpoints) {
    if (!ep.isHostName()) {
      if (!every_address) addEndpoint(ep, ep.address, false);
      continue;
    }
    Endpoint* first = nullptr;
    if (every_address) {
      for (const auto& address : ep.addresses) addAddressOf(ep, address);
    } else {
      first = &addEndpoint(ep, ep.address, false);
    }
    named_.push_back({&ep, std::make_unique<HostResolver>(dispatcher, [this, &ep, first](auto addresses) {
                        if (first != nullptr) {
                          onResolved(*first, addresses);
                        } else {
                          onResolvedAll(ep, addresses);
                        }
                      }),
                      ep.addresses});
  }
  rebuildBalancer();
  if (!named_.empty()) {
    dns_timer_ = std::make_unique<Timer>(dispatcher, [this] { refreshDns(); });
    dns_timer_->enable(std::chrono::milliseconds(config_.dns_refresh_ms));
  }
}

Cluster::~Cluster() { closeAll(); }

Endpoint& Cluster::addEndpoint(const EndpointConfig& config, const SocketAddress& address, bool one_of_many) {
  endpoints_.push_back(std::make_unique<Endpoint>(dispatcher_, *this, config, address, one_of_many, worker_stats_));
  return *endpoints_.back();
}

Endpoint* Cluster::addAddressOf(const EndpointConfig& config, const SocketAddress& address) {
  for (const auto& ep : endpoints_) {
    if (ep->address() != address) continue;
    spdlog::debug("cluster '{}': {} resolves to {}, already the address of endpoint {}: not added twice",
                  config_.name, config.host, address.toString(), ep->key());
    return nullptr;
  }
  return &addEndpoint(config, address, true);
}

void Cluster::rebuildBalancer() {
  std::vector<Endpoint*> all;
  for (auto& ep : endpoints_) all.push_back(ep.get());
  lb_ = makeLoadBalancer(config_.lb_policy, all);
}

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
  if (candidates_.empty() && avoid != nullptr && !avoid->removed() && usable(*avoid)) {
    candidates_.push_back(const_cast<Endpoint*>(avoid));
  }
  if (candidates_.empty()) {
    // Endpoints only waiting to reconnect are better than none: first those
    // that may try now (ConnectionPool::probeDue), else any, whose pool then
    // fails the call naming its backoff.
    for (auto& ep : endpoints_) {
      if (usable(*ep) && ep->pool().probeDue(now)) candidates_.push_back(ep.get());
    }
    if (candidates_.empty()) {
      for (auto& ep : endpoints_) {
        if (usable(*ep)) candidates_.push_back(ep.get());
      }
    }
  }
  if (candidates_.empty()) {
    return Status(StatusCode::Unavailable,
                  fmt::format("no healthy endpoint in cluster '{}' ({} endpoint(s), all unhealthy or ejected)",
                              config_.name, endpoints_.size()));
  }
  if (panic) stats_.lb_healthy_panic.inc();  // an endpoint chosen in panic
  const std::string* value = config_.hash_header.empty() ? nullptr : request_headers.get(config_.hash_header);
  if (value == nullptr) return lb_->pick(candidates_, nullptr);
  // One caller's key however it is spelled (base64 padded or not, say), so
  // that a caller stays on its endpoint whichever library it calls from.
  const std::string key = grpc_headers::callerKeyValue(config_.hash_header, *value);
  return lb_->pick(candidates_, &key);
}

void Cluster::onHealthChecked(const Endpoint& endpoint) {
  if (role_.report) role_.report(config_.name, endpoint.key(), endpoint.address(), endpoint.activeHealthy());
}

void Cluster::applyHealthReport(const std::string& endpoint_key, const SocketAddress& address, bool healthy) {
  for (auto& ep : endpoints_) {
    if (ep->key() != endpoint_key || !(ep->address() == address)) continue;
    ep->onHealthReport(healthy);
    if (healthy) ep->pool().onConnectSucceeded();
    return;
  }
}

void Cluster::checkUnreported() {
  if (!config_.health_check || role_.checks || !health_checks_started_) return;
  const auto now = Endpoint::Clock::now();
  const auto silence = std::chrono::milliseconds(3 * uint64_t{config_.health_check->interval_ms});
  for (auto& ep : endpoints_) {
    if (ep->checkedHere() || now - ep->lastHealthReport() < silence) continue;
    spdlog::info("cluster '{}': no health report on {} from the checking worker (which does not have it): "
                 "checking it here",
                 config_.name, ep->describe());
    ep->checkLocally();
  }
}

void Cluster::onEndpointFailing(Endpoint& endpoint) {
  // A removed endpoint takes no new calls: nothing to eject it from.
  if (!config_.outlier_detection || endpoint.removed()) return;
  const auto& od = *config_.outlier_detection;
  auto now = Endpoint::Clock::now();
  if (endpoint.ejected(now)) return;
  endpoint.forgiveEjections(now, std::chrono::milliseconds(od.base_ejection_ms));
  if (!mayEjectAnother(endpoint, now)) return;
  int64_t ms = std::min<int64_t>(int64_t{od.base_ejection_ms} * (endpoint.ejections() + 1),
                                 std::max<int64_t>(od.base_ejection_ms, kMaxEjectionMs));
  const auto until = now + std::chrono::milliseconds(ms);
  endpoint.eject(until);
  stats_.outlier_ejections.inc();
  spdlog::info("cluster '{}': ejected {} for {} ms after {} consecutive failures", config_.name,
               endpoint.describe(), ms, od.consecutive_failures);
  if (role_.share_ejection) role_.share_ejection(config_.name, endpoint.key(), endpoint.address(), until);
}

bool Cluster::mayEjectAnother(const Endpoint& endpoint, Endpoint::Clock::time_point now) const {
  const auto& od = *config_.outlier_detection;
  size_t ejected = 0;
  for (auto& ep : endpoints_) ejected += ep->ejected(now) ? 1 : 0;
  size_t allowed = od.max_ejection_percent == 0
                       ? 0
                       : std::max<size_t>(1, endpoints_.size() * od.max_ejection_percent / 100);
  if (ejected + 1 <= allowed) return true;
  spdlog::debug("cluster '{}': not ejecting {} ({} of {} already ejected)", config_.name, endpoint.describe(),
                ejected, endpoints_.size());
  return false;
}

void Cluster::applyEjectionReport(const std::string& endpoint_key, const SocketAddress& address,
                                  Endpoint::Clock::time_point until) {
  if (!config_.outlier_detection) return;
  const auto now = Endpoint::Clock::now();
  for (auto& ep : endpoints_) {
    if (ep->key() != endpoint_key || !(ep->address() == address)) continue;
    // Ejected here already (by this worker's own count), or gone: nothing to add.
    if (ep->removed() || ep->ejected(now) || until <= now) return;
    ep->forgiveEjections(now, std::chrono::milliseconds(config_.outlier_detection->base_ejection_ms));
    if (!mayEjectAnother(*ep, now)) return;
    // Counted as an ejection of this endpoint (its next lasts longer, as on
    // the worker that ejected it), not in the cluster's ejection counter,
    // which counts it where it was decided (on two workers, if both decided
    // at the same moment).
    ep->eject(until);
    spdlog::debug("cluster '{}': {} ejected by another worker (or config), until then here too", config_.name,
                  ep->describe());
    return;
  }
}

void Cluster::refreshDns() {
  // Each lookup runs off the loop (HostResolver): a resolver that does not
  // answer delays only the next address change, never a call. One still in
  // flight from the last round is left to finish.
  for (auto& named : named_) {
    if (!named.lookup->busy()) named.lookup->resolve(named.config->host, named.config->address.port);
  }
  sweepRemoved();
  checkUnreported();
  dns_timer_->enable(std::chrono::milliseconds(config_.dns_refresh_ms));
}

void Cluster::onResolved(Endpoint& endpoint, const std::vector<SocketAddress>& addresses) {
  // A name that stopped resolving keeps its last address: better than none.
  if (addresses.empty()) {
    spdlog::debug("cluster '{}': cannot resolve {}, keeping {}", config_.name, endpoint.host(),
                  endpoint.address().toString());
    return;
  }
  // An address still answered is kept: a resolver that rotates its answers
  // must not move the endpoint's new connections on every refresh.
  if (std::find(addresses.begin(), addresses.end(), endpoint.address()) != addresses.end()) return;
  // Open streams are never dropped: they finish on the old connections,
  // which take no new ones.
  spdlog::info("cluster '{}': {} now resolves to {}", config_.name, endpoint.host(), addresses.front().toString());
  endpoint.moveTo(addresses.front());
}

void Cluster::onResolvedAll(const EndpointConfig& config, const std::vector<SocketAddress>& addresses) {
  if (addresses.empty()) {
    spdlog::debug("cluster '{}': cannot resolve {}, keeping its endpoints", config_.name, config.host);
    return;
  }
  for (auto& named : named_) {
    if (named.config == &config) named.answer = addresses;
  }
  bool changed = false;
  // Removed endpoints whose address another name still answers: added
  // again as that name's, with what was known of the backend.
  std::vector<std::pair<const EndpointConfig*, Endpoint*>> handed_over;
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    Endpoint& ep = **it;
    if (&ep.config() != &config || std::find(addresses.begin(), addresses.end(), ep.address()) != addresses.end()) {
      ++it;
      continue;
    }
    // Its calls finish where they are; it takes no new ones.
    spdlog::info("cluster '{}': {} no longer resolves to {}: endpoint removed ({} call(s) still on it)",
                 config_.name, config.host, ep.address().host, ep.activeRequests());
    if (const EndpointConfig* other = otherNameAnswering(config, ep.address())) handed_over.emplace_back(other, &ep);
    ep.remove();
    removed_.push_back(std::move(*it));
    it = endpoints_.erase(it);
    changed = true;
  }
  for (const auto& [other, old] : handed_over) {
    Endpoint* added = addAddressOf(*other, old->address());
    if (added == nullptr) continue;
    added->adoptStateOf(*old);
    spdlog::info("cluster '{}': {} resolves to {} too: endpoint added for it", config_.name, other->host,
                 old->address().host);
    if (health_checks_started_) added->startHealthChecks();
  }
  for (const auto& address : addresses) {
    auto same = std::find_if(endpoints_.begin(), endpoints_.end(), [&](const auto& ep) {
      return &ep->config() == &config && ep->address() == address;
    });
    if (same != endpoints_.end()) continue;
    Endpoint* added = addAddressOf(config, address);
    if (added == nullptr) continue;
    // Like every endpoint at start: healthy until a check says otherwise.
    spdlog::info("cluster '{}': {} now also resolves to {}: endpoint added", config_.name, config.host,
                 address.host);
    if (health_checks_started_) added->startHealthChecks();
    changed = true;
  }
  if (changed) rebuildBalancer();
  sweepRemoved();
}

const EndpointConfig* Cluster::otherNameAnswering(const EndpointConfig& config, const SocketAddress& address) const {
  for (const auto& named : named_) {
    if (named.config == &config) continue;
    if (std::find(named.answer.begin(), named.answer.end(), address) != named.answer.end()) return named.config;
  }
  return nullptr;
}

void Cluster::sweepRemoved() {
  for (auto it = removed_.begin(); it != removed_.end();) {
    if (!(*it)->unused()) {
      ++it;
      continue;
    }
    spdlog::info("cluster '{}': removed endpoint {} ({}) is gone: its calls and connections have ended",
                 config_.name, (*it)->describe(), (*it)->host());
    // Deferred, as connections are: whatever is on the stack, it is not in use.
    dispatcher_.deferredDelete(std::move(*it));
    it = removed_.erase(it);
  }
}

void Cluster::startHealthChecks() {
  health_checks_started_ = true;
  for (auto& ep : endpoints_) ep->startHealthChecks();
}

void Cluster::adoptStateOf(Cluster& old) {
  for (auto& ep : endpoints_) {
    // dns_addresses "first": the reload's own lookup may answer in another
    // order; an address the old endpoint had and the answer still has is
    // kept, as a refresh would keep it.
    if (ep->oneOfMany() || !ep->config().isHostName()) continue;
    for (auto& old_ep : old.endpoints_) {
      const auto& answer = ep->config().addresses;
      if (old_ep->configKey() == ep->configKey() &&
          std::find(answer.begin(), answer.end(), old_ep->address()) != answer.end()) {
        ep->setAddress(old_ep->address());
        break;
      }
    }
  }
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

void Cluster::refreshHostNames() {
  if (dns_timer_ && !named_.empty()) refreshDns();
}

void Cluster::retire() {
  if (dns_timer_) dns_timer_->disable();
  named_.clear();
  health_checks_started_ = false;
  // The new config opens connections of its own: idle ones close now, busy
  // ones after their last call (a long stream keeping this config alive
  // would otherwise keep a connection to every endpoint it had used, until
  // idle_timeout_ms). A retry of one of this config's calls may still open
  // one, retired too.
  for (auto& ep : endpoints_) {
    ep->stopHealthChecks();
    ep->pool().retire();
  }
}

void Cluster::closeAll() {
  if (dns_timer_) dns_timer_->disable();
  named_.clear();  // answers still coming are dropped
  for (auto& ep : endpoints_) ep->close();
  for (auto& ep : removed_) ep->close();
}

}  // namespace sluice
