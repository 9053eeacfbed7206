#include "core/cluster_config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/headers.h"
#include "core/json_reader.h"

namespace sluice {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxMs = 24ull * 3600 * 1000;
constexpr uint64_t kMinDnsRefreshMs = 100;

enum class HostPortError { None, NotHostPort, BadPort };

// Splits "name:port" (IP literals are parsed before this).
HostPortError splitHostPort(const std::string& text, std::string& host, uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || text[0] == '[') return HostPortError::NotHostPort;
  std::string_view port_text = std::string_view(text).substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
      value > 65535) {
    return HostPortError::BadPort;
  }
  host = text.substr(0, colon);
  port = static_cast<uint16_t>(value);
  return HostPortError::None;
}

}  // namespace

Status hostNotFound(const std::string& host) {
  return Status(StatusCode::NotFound, fmt::format("cannot resolve host \"{}\"", host));
}

StatusOr<std::vector<SocketAddress>> lookUpHostNow(const std::string& host, uint16_t port) {
  auto addresses = resolveHost(host, port);
  if (addresses.empty()) return hostNotFound(host);
  return addresses;
}

namespace {

std::optional<EndpointConfig> readEndpointAddress(const std::string& text, const std::string& path,
                                                  ConfigErrors& errors, const HostLookup& lookup) {
  // IP literals parse directly; anything else is "host:port" resolved now.
  auto literal = parseSocketAddress(text, false);
  if (literal.isOk()) return EndpointConfig{literal->host, literal.value(), {literal.value()}, 1};
  std::string host;
  uint16_t port = 0;
  switch (splitHostPort(text, host, port)) {
    case HostPortError::NotHostPort:
      errors.add(path, literal.status().message());
      return std::nullopt;
    case HostPortError::BadPort:
      errors.add(path, fmt::format("\"{}\": port must be a number from 1 to 65535", text));
      return std::nullopt;
    case HostPortError::None:
      break;
  }
  // A number that is not a strict IPv4 literal ("010.001.002.003", "1234",
  // "0x7f.1") would reach getaddrinfo, which reads it the old inet_aton way:
  // octal, hexadecimal, or a single number (010.1.2.3 is 8.1.2.3).
  in_addr numeric{};
  if (inet_aton(host.c_str(), &numeric) != 0 ||
      std::all_of(host.begin(), host.end(), [](char ch) { return ch == '.' || (ch >= '0' && ch <= '9'); })) {
    errors.add(path, fmt::format("\"{}\" is neither an IPv4 address as written (four numbers 0-255, no leading "
                                 "zeros) nor a host name", host));
    return std::nullopt;
  }
  auto resolved = lookup ? lookup(host, port) : lookUpHostNow(host, port);
  if (!resolved.isOk() || resolved->empty()) {
    errors.add(path, resolved.isOk() ? hostNotFound(host).message() : resolved.status().message());
    return std::nullopt;
  }
  return EndpointConfig{host, resolved->front(), resolved.value(), 1};
}

// An endpoint's address text: the string itself or its "address"; null when neither.
const std::string* endpointAddressText(const json& ep) {
  if (ep.is_string()) return ep.get_ptr<const std::string*>();
  if (!ep.is_object()) return nullptr;
  auto it = ep.find("address");
  return it != ep.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

std::optional<EndpointConfig> readEndpoint(const json& ep, const std::string& path, ConfigErrors& errors,
                                           const HostLookup& lookup) {
  if (ep.is_string()) return readEndpointAddress(ep.get<std::string>(), path, errors, lookup);
  if (!ep.is_object()) {
    errors.add(path, fmt::format("expected an address string or an object, got {}", ep.type_name()));
    return std::nullopt;
  }
  JsonObject obj(ep, path, errors);
  auto address = obj.string("address", true);
  auto weight = obj.unsignedInt("weight", 1, 1000);
  obj.finish();
  if (!address) return std::nullopt;
  auto out = readEndpointAddress(*address, obj.pathOf("address"), errors, lookup);
  if (out && weight) out->weight = static_cast<uint32_t>(*weight);
  return out;
}

template <typename T>
void readMs(JsonObject& obj, std::string_view key, T& field, uint64_t min = 1) {
  if (auto v = obj.unsignedInt(key, min, kMaxMs)) field = static_cast<T>(*v);
}

HealthCheckConfig readHealthCheck(const json& value, const std::string& path, ConfigErrors& errors) {
  HealthCheckConfig hc;
  JsonObject obj(value, path, errors);
  readMs(obj, "interval_ms", hc.interval_ms);
  readMs(obj, "timeout_ms", hc.timeout_ms);
  if (auto v = obj.unsignedInt("unhealthy_threshold", 1, 1000)) hc.unhealthy_threshold = static_cast<uint32_t>(*v);
  if (auto v = obj.unsignedInt("healthy_threshold", 1, 1000)) hc.healthy_threshold = static_cast<uint32_t>(*v);
  if (auto v = obj.string("service")) hc.service = *v;
  obj.finish();
  if (hc.timeout_ms > hc.interval_ms) {
    // Point at the key the user wrote: an interval alone meets the default timeout.
    if (value.is_object() && value.contains("timeout_ms")) {
      errors.add(obj.pathOf("timeout_ms"), fmt::format("timeout_ms ({}) must not exceed interval_ms ({})",
                                                       hc.timeout_ms, hc.interval_ms));
    } else {
      errors.add(obj.pathOf("interval_ms"),
                 fmt::format("interval_ms ({}) is below timeout_ms ({}, the default): set timeout_ms too",
                             hc.interval_ms, hc.timeout_ms));
    }
  }
  return hc;
}

OutlierDetectionConfig readOutlier(const json& value, const std::string& path, ConfigErrors& errors) {
  OutlierDetectionConfig od;
  JsonObject obj(value, path, errors);
  if (auto v = obj.unsignedInt("consecutive_failures", 1, 1000000)) od.consecutive_failures = static_cast<uint32_t>(*v);
  readMs(obj, "base_ejection_ms", od.base_ejection_ms);
  if (auto v = obj.unsignedInt("max_ejection_percent", 0, 100)) od.max_ejection_percent = static_cast<uint32_t>(*v);
  obj.finish();
  return od;
}

CircuitBreakerConfig readBreakers(const json& value, const std::string& path, ConfigErrors& errors) {
  CircuitBreakerConfig cb;
  JsonObject obj(value, path, errors);
  if (auto v = obj.unsignedInt("max_connections", 1, 1000000)) cb.max_connections = static_cast<uint32_t>(*v);
  if (auto v = obj.unsignedInt("max_pending_streams", 1, 10000000)) cb.max_pending_streams = static_cast<uint32_t>(*v);
  if (auto v = obj.unsignedInt("max_requests", 1, 10000000)) cb.max_requests = static_cast<uint32_t>(*v);
  if (const json* budget = obj.object("retry_budget")) {
    JsonObject b(*budget, obj.pathOf("retry_budget"), errors);
    if (auto v = b.unsignedInt("budget_percent", 0, 100)) cb.retry_budget_percent = static_cast<uint32_t>(*v);
    if (auto v = b.unsignedInt("min_retry_concurrency", 0, 10000000)) cb.min_retry_concurrency = static_cast<uint32_t>(*v);
    b.finish();
  }
  obj.finish();
  return cb;
}

}  // namespace

ClusterConfig readClusterConfig(const json& value, const std::string& path, ConfigErrors& errors,
                                const HostLookup& lookup) {
  ClusterConfig cluster;
  JsonObject obj(value, path, errors);
  cluster.name = obj.name("name");
  cluster.source = value.dump();
  if (auto policy = obj.string("lb_policy")) {
    if (*policy == "round_robin") cluster.lb_policy = LbPolicy::RoundRobin;
    else if (*policy == "least_request") cluster.lb_policy = LbPolicy::LeastRequest;
    else if (*policy == "random") cluster.lb_policy = LbPolicy::Random;
    else if (*policy == "ring_hash") cluster.lb_policy = LbPolicy::RingHash;
    else {
      errors.add(obj.pathOf("lb_policy"), fmt::format("unknown policy \"{}\" (known: round_robin, "
                                                      "least_request, random, ring_hash)", *policy));
    }
  }
  if (auto h = obj.string("hash_header")) {
    cluster.hash_header = headerName(*h);  // "X-User-Id" means x-user-id
    if (cluster.lb_policy != LbPolicy::RingHash) {
      errors.add(obj.pathOf("hash_header"), "only lb_policy \"ring_hash\" hashes on a header");
    } else if (!isValidMetadataKey(cluster.hash_header)) {
      // No request could carry it: every call would fall back to a random endpoint.
      errors.add(obj.pathOf("hash_header"), fmt::format("\"{}\" is not a metadata key", *h));
    } else if (auto why = whyNotACallerKey(cluster.hash_header); !why.empty()) {
      // Each call would hash to an endpoint of its own: nothing sticks.
      errors.add(obj.pathOf("hash_header"), fmt::format("\"{}\" keeps no caller on one endpoint: {}", *h, why));
    }
  }
  if (cluster.lb_policy == LbPolicy::RingHash && cluster.hash_header.empty()) {
    errors.add(obj.pathOf("hash_header"), "ring_hash needs the request header to hash on");
  }
  readMs(obj, "connect_timeout_ms", cluster.connect_timeout_ms);
  readMs(obj, "idle_timeout_ms", cluster.idle_timeout_ms);
  readMs(obj, "keepalive_interval_ms", cluster.keepalive_interval_ms, 0);
  readMs(obj, "keepalive_timeout_ms", cluster.keepalive_timeout_ms);
  // Faster than this is a resolver under constant load, never a fresher answer.
  readMs(obj, "dns_refresh_ms", cluster.dns_refresh_ms, kMinDnsRefreshMs);
  if (auto v = obj.string("dns_addresses")) {
    if (*v == "first") cluster.dns_addresses = ClusterConfig::DnsAddresses::First;
    else if (*v == "all") cluster.dns_addresses = ClusterConfig::DnsAddresses::All;
    else errors.add(obj.pathOf("dns_addresses"), fmt::format("unknown value \"{}\" (known: first, all)", *v));
  }
  if (auto v = obj.unsignedInt("max_concurrent_streams", 0, 1u << 31)) {
    cluster.max_concurrent_streams = static_cast<uint32_t>(*v);
  }
  if (auto v = obj.unsignedInt("max_requests_per_connection", 0, ClusterConfig::kMaxStreamsPerConnection)) {
    cluster.max_requests_per_connection = static_cast<uint32_t>(*v);
  }
  if (auto v = obj.unsignedInt("connections_per_endpoint", 1, 1024)) {
    cluster.connections_per_endpoint = static_cast<uint32_t>(*v);
  }
  if (auto v = obj.unsignedInt("initial_stream_window_bytes", kMinWindow, kMaxWindow)) {
    cluster.initial_stream_window_bytes = static_cast<uint32_t>(*v);
  }
  if (auto v = obj.unsignedInt("initial_connection_window_bytes", kMinWindow, kMaxWindow)) {
    cluster.initial_connection_window_bytes = static_cast<uint32_t>(*v);
  }
  if (const json* eps = obj.array("endpoints", true)) {
    if (eps->empty()) errors.add(obj.pathOf("endpoints"), "a cluster needs at least one endpoint");
    std::set<std::pair<std::string, uint16_t>> listed;  // host and port of each endpoint read
    for (size_t i = 0; i < eps->size(); ++i) {
      const std::string path = jsonPath(obj.pathOf("endpoints"), i);
      if (auto ep = readEndpoint((*eps)[i], path, errors, lookup)) {
        // The same endpoint twice would be two pools and two health views of
        // one backend under one name in the metrics; a share of the traffic
        // is what `weight` is for. (Two names for one address stay apart:
        // the names may part later.)
        if (!listed.emplace(ep->host, ep->address.port).second) {
          errors.add(path, fmt::format("endpoint {}:{} is listed twice in this cluster; give one entry a weight "
                                       "instead",
                                       ep->host, ep->address.port));
          continue;
        }
        cluster.endpoints.push_back(std::move(*ep));
      }
    }
  }
  if (const json* hc = obj.object("health_check")) {
    cluster.health_check = readHealthCheck(*hc, obj.pathOf("health_check"), errors);
  }
  if (const json* od = obj.object("outlier_detection")) {
    cluster.outlier_detection = readOutlier(*od, obj.pathOf("outlier_detection"), errors);
  }
  if (const json* cb = obj.object("circuit_breakers")) {
    cluster.circuit_breakers = readBreakers(*cb, obj.pathOf("circuit_breakers"), errors);
  }
  if (auto v = obj.unsignedInt("panic_threshold_percent", 0, 100)) {
    cluster.panic_threshold_percent = static_cast<uint32_t>(*v);
  }
  obj.finish();
  return cluster;
}

std::vector<std::pair<std::string, uint16_t>> endpointHostNames(const json& root,
                                                                const std::vector<ClusterConfig>& running) {
  std::vector<std::pair<std::string, uint16_t>> names;
  auto clusters = root.is_object() ? root.find("clusters") : root.end();
  if (!root.is_object() || clusters == root.end() || !clusters->is_array()) return names;
  for (const auto& cluster : *clusters) {
    auto eps = cluster.is_object() ? cluster.find("endpoints") : cluster.end();
    if (!cluster.is_object() || eps == cluster.end() || !eps->is_array()) continue;
    if (!running.empty()) {
      const std::string source = cluster.dump();
      if (std::any_of(running.begin(), running.end(), [&](const ClusterConfig& c) { return c.source == source; })) {
        continue;
      }
    }
    for (const auto& ep : *eps) {
      const std::string* text = endpointAddressText(ep);
      if (text == nullptr || parseSocketAddress(*text, false).isOk()) continue;
      std::pair<std::string, uint16_t> name;
      if (splitHostPort(*text, name.first, name.second) != HostPortError::None) continue;
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
    }
  }
  return names;
}

}  // namespace sluice
