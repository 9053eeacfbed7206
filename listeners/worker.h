// Worker: one event loop with its listeners and the config generation(s) its
// calls run on. The Gateway runs several (config "workers"), each on its own
// thread with its own listening sockets on the same ports (SO_REUSEPORT), its
// own upstream pools and its own stats; a connection lives on one worker.
//
// Owns, in destruction order: listeners (and their connections, whose streams
// hold their generation), the current generation, the stats, then the
// dispatcher. Runs on one thread; nothing in it is shared on the data path.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/dispatcher.h"
#include "core/stats.h"
#include "core/status.h"
#include "listeners/generation.h"
#include "upstream/health_role.h"

namespace sluice {

class ConnectionBalancer;
class GrpcListener;
class MethodPathBudget;
class OverloadState;

class Worker {
 public:
  // `balancers` holds one per configured listener, shared by every worker
  // (connection counts for max_connections, and their spread). `health_role`:
  // whether this worker runs the active health checks, and where it reports.
  // `overload` (process-wide, outlives the worker): whether new calls and
  // connections are refused.
  // `method_paths`: shared by every worker, outliving them (WorkerStats).
  Worker(GatewayConfigConstPtr config, const std::vector<std::unique_ptr<ConnectionBalancer>>& balancers,
         HealthRole health_role, const OverloadState& overload, MethodPathBudget& method_paths);
  ~Worker();

  // Binds every listener; an error names the listener that failed. `ports`,
  // when given, are the ports the first worker bound (for "port 0").
  Status start(const std::vector<uint16_t>* ports = nullptr);
  // (listener name, bound address) once started.
  std::vector<std::pair<std::string, SocketAddress>> boundListeners() const;
  // Runs the loop until every handle is closed (after shutdown(): until
  // only timers are left), on the calling thread, which takes the configured
  // scheduler slice.
  void run();

  // New streams use `config` from now on; running ones finish on theirs. The
  // listeners (names and addresses) must be the same as before.
  Status reload(GatewayConfigConstPtr config);
  // Graceful drain: stop accepting, GOAWAY every connection, refuse new streams.
  void startDrain();
  // drain_timeout_ms passed: calls still open end with UNAVAILABLE `why`.
  void endCallsForShutdown(const std::string& why);
  size_t activeStreams() const;
  size_t openConnections() const;
  // overload.reset_calls_percent: resets this worker's calls holding the
  // most message bytes (kMinResetCallBytes or more each), largest first,
  // until they held `bytes` (at least one, if any holds that much).
  void resetLargestCalls(uint64_t bytes);
  // Stops at once: closes connections and upstream pools, releases filters.
  void shutdown();
  // After run() has returned: drops the listeners and this worker's hold on
  // its config, whose filter factories may own timers on any worker's loop;
  // the Gateway does this for every worker before it destroys any of them.
  void releaseConfig();

  Dispatcher& dispatcher() { return *dispatcher_; }
  WorkerStats& stats() { return *stats_; }
  const OverloadState& overload() const { return overload_; }
  const GenerationPtr& current() const { return current_; }
  bool draining() const { return draining_; }

 private:
  // Asks the kernel for worker_sched_slice_us for the loop's thread (called
  // on it); logs what could not be done.
  void applySchedSlice(uint32_t slice_us);

  // First: every generation's clusters read it, to the last one's destruction.
  HealthRole health_role_;
  const OverloadState& overload_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<WorkerStats> stats_;
  GenerationPtr current_;
  std::vector<std::unique_ptr<GrpcListener>> listeners_;
  bool draining_ = false;
  bool shut_down_ = false;
  // The slice last asked for on the loop's thread; unset until run().
  std::optional<uint32_t> sched_slice_us_;
};

}  // namespace sluice
