// Renders the workers' stats, summed, as plain text (/stats) and in the
// Prometheus exposition format (/stats/prometheus).
#pragma once

#include <string>
#include <vector>

namespace sluice {

class ClusterManager;
class OverloadState;
class WorkerStats;

// "listener.grpc.downstream_cx_total: 3" lines, sorted by name. `overload`
// (may be null) adds the heap measured for overload and the actions on.
std::string renderStatsText(const std::vector<const WorkerStats*>& workers, const OverloadState* overload);
// Prometheus text format 0.0.4. Per-method call metrics follow
// go-grpc-prometheus (grpc_server_*); everything else is prefixed sluice_.
// `clusters` (the first worker's, whose view of health is shown) lists the
// endpoints; their calls in flight are summed over `workers`.
std::string renderPrometheus(const std::vector<const WorkerStats*>& workers, const ClusterManager* clusters,
                             const OverloadState* overload);

}  // namespace sluice
