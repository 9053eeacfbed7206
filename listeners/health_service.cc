#include "listeners/health_service.h"

#include <fmt/format.h>

#include "codecs/grpc/health_messages.h"
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

HealthAnswer answerHealthCheck(const HealthServiceConfig& config, const Message& request, bool gateway_serving,
                               ClusterManager& clusters) {
  using health_messages::ServingStatus;
  if (request.compressed) {
    // What a gRPC server answers a message in an encoding it does not read.
    return {StatusCode::Unimplemented, "the gateway reads health check requests uncompressed only", ""};
  }
  auto service = health_messages::decodeRequest(request.payload);
  if (!service) return {StatusCode::Internal, "malformed HealthCheckRequest", ""};
  auto it = config.services.find(*service);
  if (it == config.services.end() && !service->empty()) {
    // The client's bytes, clipped: they go back in a header.
    constexpr size_t kShown = 128;
    std::string_view shown = std::string_view(*service).substr(0, kShown);
    return {StatusCode::NotFound,
            fmt::format("unknown service \"{}\"{}", shown, service->size() > kShown ? " (clipped)" : ""), ""};
  }
  bool serving = gateway_serving;
  if (serving && it != config.services.end()) {
    for (const std::string& name : it->second) {
      Cluster* cluster = clusters.find(name);
      if (cluster == nullptr || !hasAvailableEndpoint(*cluster)) {
        serving = false;
        break;
      }
    }
  }
  return {StatusCode::Ok, "", health_messages::encodeResponse(serving ? ServingStatus::Serving : ServingStatus::NotServing)};
}

}  // namespace sluice
