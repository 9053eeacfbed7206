#include "listeners/health_service.h"

#include <fmt/format.h>

#include "core/config.h"
#include "upstream/cluster.h"
#include "upstream/cluster_manager.h"
#include "upstream/endpoint.h"

namespace sluice {
namespace {

bool hasAvailableEndpoint(Cluster& cluster) {
  const auto now = Endpoint::Clock::now();
  for (const auto& endpoint : cluster.endpoints()) {
    if (!endpoint->removed() && endpoint->available(now)) return true;
  }
  return false;
}

}  // namespace

HealthRequest readHealthRequest(const Message& request) {
  if (request.compressed) {
    // What a gRPC server answers a message in an encoding it does not read.
    return {StatusCode::Unimplemented, "the gateway reads health check requests uncompressed only", ""};
  }
  auto service = health_messages::decodeRequest(request.payload);
  if (!service) return {StatusCode::Internal, "malformed HealthCheckRequest", ""};
  return {StatusCode::Ok, "", std::move(*service)};
}

std::string unknownServiceMessage(std::string_view service) {
  // The client's bytes, clipped: they go back in a header.
  constexpr size_t kShown = 128;
  return fmt::format("unknown service \"{}\"{}", service.substr(0, kShown),
                     service.size() > kShown ? " (clipped)" : "");
}

health_messages::ServingStatus servingStatus(const HealthServiceConfig& config, std::string_view service,
                                             bool gateway_serving, ClusterManager& clusters) {
  using health_messages::ServingStatus;
  auto it = config.services.find(service);
  if (it == config.services.end() && !service.empty()) return ServingStatus::ServiceUnknown;
  if (!gateway_serving) return ServingStatus::NotServing;
  if (it != config.services.end()) {
    for (const std::string& name : it->second) {
      Cluster* cluster = clusters.find(name);
      if (cluster == nullptr || !hasAvailableEndpoint(*cluster)) return ServingStatus::NotServing;
    }
  }
  return ServingStatus::Serving;
}

}  // namespace sluice
