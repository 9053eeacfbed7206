// WorkerContext: what one worker thread offers its streams and filters: the
// event loop and the upstream clusters (each worker has its own pools).
// One object per worker *and config*: a reload gives the worker's new calls a
// new one (its clusters are the new config's), so its address is no key for
// state kept per worker across reloads; dispatcher() and stats() are the
// worker's own and stay the same.
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
