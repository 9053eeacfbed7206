// HealthRole: which worker runs a cluster's active health checks, and how the
// others learn the results; and how workers share outlier ejections.
//
// One worker (the Gateway's first) checks every endpoint and reports each
// result; the others run no checks and take its word (Cluster::
// applyHealthReport). A backend sees one check per interval, not one per
// worker, and every worker routes on the same view. Owned by the Worker, for
// every config generation it runs.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "core/socket_address.h"

namespace sluice {

struct HealthRole {
  // After every check on this worker: the cluster, the endpoint's key
  // (Endpoint::key()) and address (under one key, "host:port" with
  // dns_addresses "first", workers may briefly hold different addresses),
  // and whether it is now healthy. Runs on this worker's thread; empty when
  // nobody else listens.
  using Report = std::function<void(const std::string& cluster, const std::string& endpoint_key,
                                    const SocketAddress& address, bool healthy)>;

  bool checks = true;  // this worker runs the checks
  Report report;

  // Outlier ejection (passive health): every worker counts its own calls'
  // failures, and the first to eject an endpoint posts it to every worker
  // (itself included, for its current config if an older one decided),
  // which eject it until the same time (Cluster::applyEjectionReport). A
  // failing backend then costs consecutive_failures calls on one worker,
  // not on each. Runs on this worker's thread; empty in tests.
  // The endpoint's key and its address: under one key ("host:port" with
  // dns_addresses "first"), workers may briefly hold different addresses.
  using EjectionReport = std::function<void(const std::string& cluster, const std::string& endpoint_key,
                                            const SocketAddress& address, std::chrono::steady_clock::time_point until)>;
  EjectionReport share_ejection;
};

}  // namespace sluice
