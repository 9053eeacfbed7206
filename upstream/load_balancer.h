// LoadBalancer: picks the endpoint for a new stream among a cluster's
// available endpoints, by the cluster's lb_policy, honouring weights.
//
// Owned by its Cluster; one per worker, so its state needs no locks.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string_view>
#include <vector>

#include "core/cluster_config.h"

namespace sluice {

class Endpoint;

class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;
  // `candidates` is never empty. `hash_key` is the ring_hash header's value
  // (nullptr when absent or unused).
  virtual Endpoint* pick(const std::vector<Endpoint*>& candidates, const std::string* hash_key) = 0;
};
using LoadBalancerPtr = std::unique_ptr<LoadBalancer>;

// Builds the balancer for `policy` over all of the cluster's endpoints.
LoadBalancerPtr makeLoadBalancer(LbPolicy policy, const std::vector<Endpoint*>& all_endpoints);

}  // namespace sluice
