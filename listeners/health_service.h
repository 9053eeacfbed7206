// The gateway's own answer to grpc.health.v1.Health/Check on a listener with
// `health_service` (core/config.h HealthServiceConfig): what a Kubernetes
// gRPC probe or a load balancer's gRPC health check asks a server. Service ""
// is the gateway: SERVING unless it is draining or refusing calls (overload).
// A named service is SERVING when the gateway is and every one of its
// clusters has an endpoint available (healthy and not ejected), as this
// worker sees them; a service not configured is NOT_FOUND, as health.proto
// says. Watch is not answered here: it goes through the filters like any call.
#pragma once

#include <string>

#include "core/message.h"
#include "core/status.h"

namespace sluice {

class ClusterManager;
struct HealthServiceConfig;

struct HealthAnswer {
  StatusCode code = StatusCode::Ok;
  std::string message;  // for a code other than Ok
  std::string payload;  // the HealthCheckResponse, for Ok
};

// `gateway_serving`: not draining and not refusing calls.
HealthAnswer answerHealthCheck(const HealthServiceConfig& config, const Message& request, bool gateway_serving,
                               ClusterManager& clusters);

}  // namespace sluice
