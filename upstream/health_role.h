// HealthRole: which worker runs a cluster's active health checks, and how the
// others learn the results.
//
// One worker (the Gateway's first) checks every endpoint and reports each
// result; the others run no checks and take its word (Cluster::
// applyHealthReport). A backend sees one check per interval, not one per
// worker, and every worker routes on the same view. Owned by the Worker, for
// every config generation it runs.
#pragma once

#include <functional>
#include <string>

namespace sluice {

struct HealthRole {
  // After every check on this worker: the cluster, the endpoint's key
  // (Endpoint::key()) and whether it is now healthy. Runs on this worker's
  // thread; empty when nobody else listens.
  using Report = std::function<void(const std::string& cluster, const std::string& endpoint_key, bool healthy)>;

  bool checks = true;  // this worker runs the checks
  Report report;
};

}  // namespace sluice
