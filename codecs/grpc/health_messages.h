// grpc.health.v1 messages, encoded by hand: HealthCheckRequest is one string
// field (`service`), HealthCheckResponse one enum field (`status`). Not worth
// linking protobuf into the gateway for. Used both ways: the health checks the
// gateway sends its backends (upstream/health_checker) and the Check calls it
// answers itself (listeners/health_service).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice::health_messages {

inline constexpr std::string_view kCheckPath = "/grpc.health.v1.Health/Check";
inline constexpr std::string_view kWatchPath = "/grpc.health.v1.Health/Watch";

// HealthCheckResponse.ServingStatus.
enum class ServingStatus { Unknown = 0, Serving = 1, NotServing = 2, ServiceUnknown = 3 };

std::string encodeRequest(std::string_view service);
// The `service` of a HealthCheckRequest ("" when absent); nullopt if the bytes
// are not a well-formed message. Unknown fields are skipped, as protobuf
// does; groups (wire types 3 and 4, long deprecated) count as malformed.
std::optional<std::string> decodeRequest(std::string_view payload);

std::string encodeResponse(ServingStatus status);
// The `status` of a HealthCheckResponse as a number (1 = SERVING); nullopt if
// malformed.
std::optional<int> decodeResponseStatus(std::string_view payload);

}  // namespace sluice::health_messages
