// Gateway configs for the e2e tests, built as JSON so each test states only
// what it cares about. Every listener binds 127.0.0.1:0; the real port comes
// back through the ready file (GatewayProcess::port).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sluice::test {

inline constexpr uint64_t kDefaultMaxMessageBytes = 16u << 20;

// {"match": {kind: value}, "cluster": cluster}; kind is "service", "method" or "prefix".
nlohmann::json route(const std::string& kind, const std::string& value, const std::string& cluster);
nlohmann::json cluster(const std::string& name, const std::vector<std::string>& endpoints);

// One listener "grpc" with the router (these routes) and the proxy.
nlohmann::json gatewayConfig(const nlohmann::json& routes, const nlohmann::json& clusters,
                             uint64_t maxMessageBytes = kDefaultMaxMessageBytes);

// Everything ("/" prefix) to one cluster holding `endpoint`.
nlohmann::json catchAllConfig(const std::string& endpoint, const std::string& clusterName = "echo");

}  // namespace sluice::test
