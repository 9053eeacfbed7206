// Generation: one loaded config as a worker runs it: the config itself, and the
// clusters (pools, health checks) built from it.
//
// Owned jointly by the worker (while it is the current config) and by every
// stream that started under it (a call finishes on the routes, filters and
// clusters it began with). After a reload the old generation lives on until its
// last stream ends; then the pools of the clusters only it held close and it
// lets go of the config (whose filter factories are destroyed with the last
// generation holding it). Clusters the reload left unchanged go on in the
// new generation (ClusterManager).
#pragma once

#include <memory>
#include <string_view>

#include "core/config.h"
#include "core/worker_context.h"

namespace sluice {

struct HealthRole;

class Generation final : public WorkerContext {
 public:
  // `previous`: the generation a reload replaces; its clusters pass on what
  // they knew of their endpoints (health, ejection, backoff).
  // `health_role`: the worker's (upstream/health_role.h), outliving it.
  Generation(Dispatcher& dispatcher, WorkerStats& stats, GatewayConfigConstPtr config, const HealthRole& health_role,
             Generation* previous = nullptr);
  ~Generation() override;

  Dispatcher& dispatcher() override { return dispatcher_; }
  ClusterManager& clusterManager() override { return *clusters_; }
  WorkerStats& stats() override { return stats_; }

  const GatewayConfig& config() const { return *config_; }
  const GatewayConfigConstPtr& configPtr() const { return config_; }
  const ListenerConfig* listener(std::string_view name) const;
  // Gateway shutdown: close upstream connections now.
  void close();
  // A reload replaced it with `successor`: the clusters the successor did
  // not keep run no more health checks or DNS refreshes; the calls still
  // running on it finish on their connections.
  void retire(const Generation& successor);
  bool retired() const { return retired_; }

 private:
  Dispatcher& dispatcher_;
  WorkerStats& stats_;
  GatewayConfigConstPtr config_;
  std::unique_ptr<ClusterManager> clusters_;
  bool closed_ = false;
  bool retired_ = false;
};
using GenerationPtr = std::shared_ptr<Generation>;

}  // namespace sluice
