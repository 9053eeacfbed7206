// WorkerContext: what one worker thread offers its streams and filters: the
// event loop and the upstream clusters (each worker has its own pools).
#pragma once

namespace sluice {

class Dispatcher;
class ClusterManager;
class WorkerStats;

class WorkerContext {
 public:
  virtual ~WorkerContext() = default;
  virtual Dispatcher& dispatcher() = 0;
  virtual ClusterManager& clusterManager() = 0;
  virtual WorkerStats& stats() = 0;
};

}  // namespace sluice
