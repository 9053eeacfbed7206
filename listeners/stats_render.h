// Renders the workers' stats, summed, as plain text (/stats) and in the
// Prometheus exposition format (/stats/prometheus).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/regex.h"

namespace sluice {

class ClusterManager;
class OverloadState;
class WorkerStats;

// "listener.grpc.downstream_cx_total: 3" lines, sorted by name. `overload`
// (may be null) adds the heap measured for overload and the actions on.
// With `clusters` (the running config's), a cluster a reload removed is
// shown only while it still has connections open: a deploy that names its
// clusters by version must not grow every scrape for ever.
std::string renderStatsText(const std::vector<const WorkerStats*>& workers, const OverloadState* overload = nullptr,
                            const ClusterManager* clusters = nullptr);
// Prometheus text format 0.0.4. Per-method call metrics follow
// go-grpc-prometheus (grpc_server_*); everything else is prefixed sluice_.
// `clusters` (the first worker's, whose view of health is shown) lists the
// endpoints; their calls in flight are summed over `workers`. Clusters a
// reload removed are left out as in renderStatsText.
std::string renderPrometheus(const std::vector<const WorkerStats*>& workers, const ClusterManager* clusters,
                             const OverloadState* overload = nullptr);

// The query of GET /stats and /stats/prometheus: `filter=REGEX` (RE2,
// percent-encoded, matched anywhere in a stat's name, or a Prometheus
// family's) and `usedonly` (/stats: only the values that are not 0).
struct StatsQuery {
  std::optional<Regex> filter;
  bool used_only = false;
};
// nullopt, with `error` saying why, for an unknown parameter or a pattern
// that does not compile.
std::optional<StatsQuery> parseStatsQuery(const std::string& query, std::string& error);
// The lines of renderStatsText's output that `query` keeps.
std::string filterStatsText(const std::string& text, const StatsQuery& query);
// The families of renderPrometheus's output whose name `query.filter` matches.
// Unfiltered, `text` itself comes back (moved: a scrape may be many MB).
std::string filterPrometheus(std::string text, const StatsQuery& query);

}  // namespace sluice
