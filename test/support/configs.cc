#include "test/support/configs.h"

namespace sluice::test {

nlohmann::json route(const std::string& kind, const std::string& value, const std::string& cluster) {
  return {{"match", {{kind, value}}}, {"cluster", cluster}};
}

nlohmann::json cluster(const std::string& name, const std::vector<std::string>& endpoints) {
  return {{"name", name}, {"endpoints", endpoints}};
}

nlohmann::json gatewayConfig(const nlohmann::json& routes, const nlohmann::json& clusters,
                             uint64_t maxMessageBytes) {
  nlohmann::json filters = nlohmann::json::array();
  filters.push_back({{"name", "router"}, {"config", {{"routes", routes}}}});
  filters.push_back({{"name", "proxy"}});
  nlohmann::json listener = {{"name", "grpc"},
                             {"address", "127.0.0.1:0"},
                             {"max_message_bytes", maxMessageBytes},
                             {"filters", filters}};
  return {{"listeners", nlohmann::json::array({listener})}, {"clusters", clusters}};
}

nlohmann::json catchAllConfig(const std::string& endpoint, const std::string& clusterName) {
  return gatewayConfig(nlohmann::json::array({route("prefix", "/", clusterName)}),
                       nlohmann::json::array({cluster(clusterName, {endpoint})}));
}

}  // namespace sluice::test
