// The gateway's own answers to grpc.health.v1.Health on a listener with
// `health_service` (core/config.h HealthServiceConfig): what a Kubernetes
// gRPC probe, a load balancer's gRPC health check (Check) or a gRPC client's
// own health checking (Watch, gRFC A17) asks a server. Service "" is the
// gateway: SERVING unless it is draining or refusing calls (overload). A
// named service is SERVING when the gateway is and every one of its
// clusters has an endpoint available (healthy and not ejected), as this
// worker sees them. A service not configured is NOT_FOUND for Check and
// SERVICE_UNKNOWN for Watch, as health.proto says.
#pragma once

#include <string>
#include <string_view>

#include "codecs/grpc/health_messages.h"
#include "core/message.h"
#include "core/status.h"

namespace sluice {

class ClusterManager;
struct HealthServiceConfig;

// The service a Check or Watch request asks about, or why it cannot be read
// (`code` other than Ok, with `message`).
struct HealthRequest {
  StatusCode code = StatusCode::Ok;
  std::string message;
  std::string service;
};
HealthRequest readHealthRequest(const Message& request);

// What a Check for a service the config does not list answers (NOT_FOUND).
std::string unknownServiceMessage(std::string_view service);

// `gateway_serving`: not draining and not refusing calls. A service the
// config does not have is ServiceUnknown.
health_messages::ServingStatus servingStatus(const HealthServiceConfig& config, std::string_view service,
                                             bool gateway_serving, ClusterManager& clusters);

}  // namespace sluice
