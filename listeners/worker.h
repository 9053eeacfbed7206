// Worker: one event loop with its listeners and its upstream clusters.
//
// Owns, in destruction order: listeners (and their connections), the cluster
// manager (and its pools), then the dispatcher. Holds the config alive for
// everything built from it. Runs on one thread; nothing in it is shared.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/dispatcher.h"
#include "core/status.h"
#include "core/worker_context.h"

namespace sluice {

class GrpcListener;

class Worker final : public WorkerContext {
 public:
  explicit Worker(GatewayConfigConstPtr config);
  ~Worker() override;

  // Binds every listener; an error names the listener that failed.
  Status start();
  // (listener name, bound address) once started.
  std::vector<std::pair<std::string, SocketAddress>> boundListeners() const;
  // Runs the loop until shutdown() let every handle close.
  void run();
  // Stops accepting, closes connections and upstream pools, releases filters.
  void shutdown();

  Dispatcher& dispatcher() override { return *dispatcher_; }
  ClusterManager& clusterManager() override { return *clusters_; }

 private:
  GatewayConfigConstPtr config_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<ClusterManager> clusters_;
  std::vector<std::unique_ptr<GrpcListener>> listeners_;
  bool shut_down_ = false;
};

}  // namespace sluice
