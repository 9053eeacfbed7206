#include "upstream/load_balancer.h"

#include <algorithm>
#include <iterator>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <xxhash.h>

#include "upstream/endpoint.h"

namespace sluice {
namespace {

uint32_t totalWeight(const std::vector<Endpoint*>& eps) {
  uint32_t t = 0;
  for (auto* e : eps) t += e->weight();
  return t;
}

// Smooth weighted round robin (nginx's): each endpoint is picked in
// proportion to its weight, interleaved rather than in bursts.
class RoundRobin : public LoadBalancer {
 public:
  Endpoint* pick(const std::vector<Endpoint*>& candidates, const std::string*) override {
    int64_t total = 0;
    Endpoint* best = nullptr;
    for (auto* e : candidates) {
      e->rr_current += e->weight();
      total += e->weight();
      if (best == nullptr || e->rr_current > best->rr_current) best = e;
    }
    best->rr_current -= total;
    return best;
  }
};

class WeightedRandom : public LoadBalancer {
 public:
  Endpoint* pick(const std::vector<Endpoint*>& candidates, const std::string*) override {
    return pickWeighted(candidates, rng_);
  }
  static Endpoint* pickWeighted(const std::vector<Endpoint*>& candidates, std::minstd_rand& rng) {
    uint32_t total = totalWeight(candidates);
    uint32_t r = std::uniform_int_distribution<uint32_t>(0, total - 1)(rng);
    for (auto* e : candidates) {
      if (r < e->weight()) return e;
      r -= e->weight();
    }
    return candidates.back();
  }

 private:
  std::minstd_rand rng_{std::random_device{}()};
};

// Power of two choices: two weighted-random candidates, the one with fewer
// requests in flight per unit of weight wins.
class LeastRequest : public LoadBalancer {
 public:
  Endpoint* pick(const std::vector<Endpoint*>& candidates, const std::string*) override {
    if (candidates.size() == 1) return candidates[0];
    Endpoint* a = WeightedRandom::pickWeighted(candidates, rng_);
    Endpoint* b = WeightedRandom::pickWeighted(candidates, rng_);
    if (a == b) {
      // Retry once for a distinct second choice.
      b = WeightedRandom::pickWeighted(candidates, rng_);
    }
    // a.active / a.weight <= b.active / b.weight, without division.
    uint64_t la = uint64_t{a->activeRequests()} * b->weight();
    uint64_t lb = uint64_t{b->activeRequests()} * a->weight();
    return la <= lb ? a : b;
  }

 private:
  std::minstd_rand rng_{std::random_device{}()};
};

// Consistent hashing on a ring of virtual nodes (more nodes for heavier
// endpoints): the same key lands on the same endpoint while it is available,
// and only its keys move when it is not.
class RingHash : public LoadBalancer {
 public:
  explicit RingHash(const std::vector<Endpoint*>& all) {
    // A fixed number of nodes per unit of weight, so that an endpoint's
    // nodes do not depend on the others: adding or removing one (a reload, a
    // DNS answer) moves only its own keys. (Sized from the total weight, as
    // Envoy's minimum ring size does, every endpoint's count changed with the
    // set while it was small, and about 10% of keys moved between endpoints
    // that stayed.) 512 make two endpoints a 1024-node ring, each taking its
    // share within a few percent. Scaled down past kMaxNodes, so that a big
    // cluster of heavy endpoints (1000 × weight 1000) costs a bounded ring
    // per worker, still in proportion to the weights (there, changes move
    // some keys between endpoints that stayed).
    // Weights count in units of their greatest common divisor: 100/100/100
    // is 1/1/1, the same shares at a hundredth of the ring (a config's
    // round weights made rings of many MB per worker, rebuilt at each reload).
    constexpr uint64_t kNodesPerWeight = 512;
    constexpr uint64_t kMaxNodes = 1 << 16;
    uint64_t unit = 0;
    for (auto* e : all) unit = std::gcd(unit, uint64_t{e->weight()});
    if (unit == 0) unit = 1;
    uint64_t weights = 0;
    for (auto* e : all) weights += e->weight() / unit;
    const uint64_t per_weight = kNodesPerWeight;
    const uint64_t total = per_weight * weights;
    ring_.reserve(std::min<uint64_t>(total, kMaxNodes + all.size()));
    std::string label;
    for (auto* e : all) {
      uint64_t wanted = per_weight * (e->weight() / unit);
      uint32_t nodes = static_cast<uint32_t>(total <= kMaxNodes ? wanted : std::max<uint64_t>(1, wanted * kMaxNodes / total));
      for (uint32_t i = 0; i < nodes; ++i) {
        label.clear();
        fmt::format_to(std::back_inserter(label), "{}_{}", e->key(), i);
        ring_.emplace_back(XXH64(label.data(), label.size(), 0), e);
      }
    }
    // A sorted array, not a map: built on every worker at each reload or DNS
    // change, and up to 65,536 nodes now, one allocation and a sort cost less
    // than a tree's allocation per node, and 16 bytes a node instead of
    // about 64. Stable, so that two nodes of one hash keep their order (the
    // endpoints', as listed), as the map kept it.
    std::stable_sort(ring_.begin(), ring_.end(), [](const Node& a, const Node& b) { return a.first < b.first; });
  }
  Endpoint* pick(const std::vector<Endpoint*>& candidates, const std::string* key) override {
    if (key == nullptr) return random_.pick(candidates, nullptr);
    uint64_t h = XXH64(key->data(), key->size(), 0);
    auto it = std::lower_bound(ring_.begin(), ring_.end(), h, [](const Node& n, uint64_t v) { return n.first < v; });
    for (size_t n = 0; n < ring_.size(); ++n, ++it) {
      if (it == ring_.end()) it = ring_.begin();
      if (std::find(candidates.begin(), candidates.end(), it->second) != candidates.end()) return it->second;
    }
    return candidates.front();
  }

 private:
  using Node = std::pair<uint64_t, Endpoint*>;
  std::vector<Node> ring_;  // sorted by hash
  WeightedRandom random_;
};

}  // namespace

LoadBalancerPtr makeLoadBalancer(LbPolicy policy, const std::vector<Endpoint*>& all_endpoints) {
  switch (policy) {
    case LbPolicy::RoundRobin: return std::make_unique<RoundRobin>();
    case LbPolicy::LeastRequest: return std::make_unique<LeastRequest>();
    case LbPolicy::Random: return std::make_unique<WeightedRandom>();
    case LbPolicy::RingHash: return std::make_unique<RingHash>(all_endpoints);
  }
  return std::make_unique<RoundRobin>();
}

}  // namespace sluice
