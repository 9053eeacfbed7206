#include "upstream/endpoint.h"

#include "core/stats.h"
#include "upstream/cluster.h"
#include "upstream/connection_pool.h"
#include "upstream/health_checker.h"

namespace sluice {

std::string Endpoint::keyFor(const EndpointConfig& config, const SocketAddress& address, bool one_of_many) {
  return one_of_many ? config.key() + "/" + address.host : config.key();
}

Endpoint::Endpoint(Dispatcher& dispatcher, Cluster& cluster, const EndpointConfig& config,
                   const SocketAddress& address, bool one_of_many, WorkerStats& stats)
    : dispatcher_(dispatcher),
      cluster_(cluster),
      config_(config),
      address_(address),
      address_text_(address.toString()),
      key_(keyFor(config, address, one_of_many)),
      one_of_many_(one_of_many),
      stats_(stats),
      cluster_name_(cluster.name()),
      active_gauge_(stats.holdEndpointGauge(cluster_name_, key_)) {
  pool_ = std::make_unique<ConnectionPool>(dispatcher, *this);
  if (cluster.checksHealth()) {
    health_checker_ = std::make_unique<HealthChecker>(dispatcher, *this, *cluster.config().health_check);
  }
}

Endpoint::~Endpoint() {
  close();
  // Not cluster_.name(): a removed endpoint's deferred deletion may come
  // after its cluster's (a reload retiring the generation).
  stats_.releaseEndpointGauge(cluster_name_, key_);
}

void Endpoint::onRequestStarted() {
  ++active_requests_;
  active_gauge_.inc();
}

void Endpoint::onRequestFinished() {
  --active_requests_;
  active_gauge_.dec();
}

void Endpoint::startHealthChecks() {
  if (health_checker_) health_checker_->start();
}

void Endpoint::recordCallResult(bool success) {
  if (success) {
    consecutive_failures_ = 0;
    return;
  }
  ++consecutive_failures_;
  const auto& od = cluster_.config().outlier_detection;
  if (od && consecutive_failures_ >= od->consecutive_failures) {
    cluster_.onEndpointFailing(*this);
    consecutive_failures_ = 0;
  }
}

void Endpoint::stopHealthChecks() { health_checker_.reset(); }

void Endpoint::moveTo(const SocketAddress& address) {
  setAddress(address);
  // Another backend: healthy until a check says otherwise (as every endpoint
  // starts), not ejected for what the old one did.
  active_healthy_ = true;
  ejected_until_ = {};
  ejections_ = 0;
  consecutive_failures_ = 0;
  pool_->onAddressChanged();
  // After the pool: the check it starts goes to the new address.
  if (health_checker_) health_checker_->restart();
}

void Endpoint::onHealthReport(bool healthy) {
  active_healthy_ = healthy;
  last_health_report_ = Clock::now();
  // The checking worker has it now: its word wins over a check of our own.
  if (!cluster_.checksHealth()) health_checker_.reset();
}

void Endpoint::checkLocally() {
  if (health_checker_ || removed_ || !cluster_.config().health_check) return;
  health_checker_ = std::make_unique<HealthChecker>(dispatcher_, *this, *cluster_.config().health_check);
  health_checker_->start();
}

void Endpoint::remove() {
  removed_ = true;
  health_checker_.reset();
  // Calls waiting on a connect still under way go elsewhere: the address
  // left the name's answer, often because its backend went away.
  pool_->retire(WaitingCalls::Withdraw);
}

bool Endpoint::unused() const { return removed_ && holders_ == 0 && pool_->connectionCount() == 0; }

void Endpoint::adoptStateOf(Endpoint& old) {
  pool_->adoptBackoffOf(*old.pool_);
  if (cluster_.config().health_check && old.cluster_.config().health_check) active_healthy_ = old.active_healthy_;
  if (cluster_.config().outlier_detection) {
    ejected_until_ = old.ejected_until_;
    ejections_ = old.ejections_;
    consecutive_failures_ = old.consecutive_failures_;
  }
}

void Endpoint::close() {
  health_checker_.reset();
  if (pool_) pool_->closeAll();
}

}  // namespace sluice
