#include "core/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_reader.h"
#include "core/method_match.h"
#include "core/overload.h"
#include "core/registry.h"
#include "core/user_code.h"

namespace sluice {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxMessageLimit = 1ull << 30;  // HTTP/2 frames can carry it; memory cannot more

std::optional<SocketAddress> readAddress(JsonObject& obj, std::string_view key, bool allow_port_zero) {
  auto text = obj.string(key, true);
  if (!text) return std::nullopt;
  auto addr = parseSocketAddress(*text, allow_port_zero);
  if (!addr.isOk()) {
    obj.errors().add(obj.pathOf(key), addr.status().message());
    return std::nullopt;
  }
  return addr.value();
}

void readFilters(const json& filters, const std::string& path, const FilterRegistry& registry,
                 FilterBuildContext& ctx, ListenerConfig& listener) {
  if (filters.empty()) ctx.errors.add(path, "a listener needs at least one filter (the last one: proxy)");
  for (size_t i = 0; i < filters.size(); ++i) {
    std::string entry_path = jsonPath(path, i);
    JsonObject entry(filters[i], entry_path, ctx.errors);
    auto name = entry.string("name", true);
    const json* config = entry.value("config");
    entry.finish();
    if (!name) continue;
    const FilterConfigFactory* factory = registry.find(*name);
    if (factory == nullptr) {
      ctx.errors.add(entry.pathOf("name"),
                     fmt::format("unknown filter \"{}\" (known: {})", *name, registry.names()));
      continue;
    }
    bool last = i + 1 == filters.size();
    if (factory->isTerminal() != last) {
      ctx.errors.add(entry.pathOf("name"),
                     factory->isTerminal()
                         ? fmt::format("\"{}\" ends the chain: it must be the last filter", *name)
                         : fmt::format("the last filter must end the chain (e.g. \"proxy\"), not \"{}\"", *name));
    }
    static const json kNull;
    const std::string config_path = entry.pathOf("config");
    const size_t errors_before = ctx.errors.size();
    size_t before_it = 0;
    for (const auto& f : listener.filters) before_it += f.name == *name ? 1 : 0;
    ctx.reload_key = fmt::format("{}\n{}\n{}", listener.name, *name, before_it);
    FilterFactorySharedPtr built;
    try {
      built = factory->create(config != nullptr ? *config : kNull, config_path, ctx);
    } catch (...) {
      // A filter's own parser (nlohmann's get<>() throws on a wrong type):
      // an error to report, never the end of a gateway reloading its config.
      ctx.errors.add(config_path, fmt::format("filter \"{}\" failed reading its config: {}", *name,
                                              currentExceptionText()));
      continue;
    }
    if (built == nullptr && ctx.errors.size() == errors_before) {
      ctx.errors.add(config_path, fmt::format("filter \"{}\" refused its config without saying why", *name));
    }
    if (built) listener.filters.push_back({*name, std::move(built)});
  }
}

// A service name as a gRPC path carries it: letters, digits, '_', '.', '-'.
bool isServiceName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), isMethodNameChar);
}

HealthServiceConfig readHealthService(const json& value, const std::string& path, FilterBuildContext& ctx) {
  HealthServiceConfig health;
  JsonObject obj(value, path, ctx.errors);
  if (const json* services = obj.object("services")) {
    for (const auto& [name, clusters] : services->items()) {
      const std::string service_path = jsonPath(obj.pathOf("services"), name);
      if (!name.empty() && !isServiceName(name)) {
        ctx.errors.add(service_path, fmt::format("\"{}\" is not a service name (letters, digits, '_', '.', '-'; "
                                                 "\"\" is the gateway)", name));
        continue;
      }
      if (!clusters.is_array()) {
        ctx.errors.add(service_path, fmt::format("expected an array of cluster names, got {}", jsonTypeName(clusters)));
        continue;
      }
      std::vector<std::string>& names = health.services[name];
      for (size_t i = 0; i < clusters.size(); ++i) {
        const json& cluster = clusters[i];
        if (!cluster.is_string()) {
          ctx.errors.add(jsonPath(service_path, i), fmt::format("expected a cluster name, got {}", jsonTypeName(cluster)));
        } else if (ctx.cluster_names.count(cluster.get<std::string>()) == 0) {
          ctx.errors.add(jsonPath(service_path, i), fmt::format("unknown cluster \"{}\"", cluster.get<std::string>()));
        } else {
          names.push_back(cluster.get<std::string>());
        }
      }
    }
  }
  obj.finish();
  return health;
}

ListenerConfig readListener(const json& value, const std::string& path, const FilterRegistry& registry,
                            FilterBuildContext& ctx) {
  ListenerConfig listener;
  JsonObject obj(value, path, ctx.errors);
  listener.name = obj.name("name");
  if (auto addr = readAddress(obj, "address", true)) listener.address = *addr;
  if (auto m = obj.unsignedInt("max_message_bytes", 1, kMaxMessageLimit)) {
    listener.max_message_bytes = static_cast<uint32_t>(*m);
  }
  if (const json* filters = obj.array("filters", true)) {
    readFilters(*filters, obj.pathOf("filters"), registry, ctx, listener);
  }
  auto limit = [&](std::string_view key, uint32_t& field, uint64_t min, uint64_t max) {
    if (auto v = obj.unsignedInt(key, min, max)) field = static_cast<uint32_t>(*v);
  };
  constexpr uint64_t kDayMs = 24ull * 3600 * 1000;
  limit("max_connections", listener.max_connections, 1, 10000000);
  limit("max_concurrent_streams", listener.max_concurrent_streams, 1, 1u << 20);
  limit("max_header_list_bytes", listener.max_header_list_bytes, 1024, 16u << 20);
  if (auto v = obj.unsignedInt("max_held_request_header_bytes", listener.max_header_list_bytes, 1ull << 40)) {
    listener.max_held_request_header_bytes = *v;
  }
  limit("stream_buffer_bytes", listener.stream_buffer_bytes, 16 << 10, 1u << 30);
  // At least one whole message of the largest size, or such calls could never complete.
  if (auto v = obj.unsignedInt("max_incomplete_response_bytes", listener.max_message_bytes, 1ull << 40)) {
    listener.max_incomplete_response_bytes = *v;
  }
  if (auto v = obj.unsignedInt("max_incomplete_request_bytes", listener.max_message_bytes, 1ull << 40)) {
    listener.max_incomplete_request_bytes = *v;
  }
  limit("connection_buffer_bytes", listener.connection_buffer_bytes, 16 << 10, 1u << 30);
  if (auto v = obj.unsignedInt("max_buffered_response_bytes", 64 << 10, 1ull << 40)) {
    listener.max_buffered_response_bytes = *v;
  }
  limit("initial_stream_window_bytes", listener.initial_stream_window_bytes, kMinWindow, kMaxWindow);
  limit("initial_connection_window_bytes", listener.initial_connection_window_bytes, kMinWindow, kMaxWindow);
  limit("idle_timeout_ms", listener.idle_timeout_ms, 0, kDayMs);
  limit("preface_timeout_ms", listener.preface_timeout_ms, 0, kDayMs);
  limit("stream_idle_timeout_ms", listener.stream_idle_timeout_ms, 0, kDayMs);
  limit("keepalive_interval_ms", listener.keepalive_interval_ms, 0, kDayMs);
  limit("keepalive_timeout_ms", listener.keepalive_timeout_ms, 1, kDayMs);
  limit("rst_stream_burst", listener.rst_stream_burst, 1, 1000000);
  limit("rst_stream_rate", listener.rst_stream_rate, 1, 1000000);
  limit("max_pending_acks", listener.max_pending_acks, 1, 1000000);
  if (auto balance = obj.string("connection_balance")) {
    if (*balance == "exact") listener.connection_balance = ConnectionBalance::Exact;
    else if (*balance == "kernel") listener.connection_balance = ConnectionBalance::Kernel;
    else ctx.errors.add(obj.pathOf("connection_balance"), fmt::format("unknown balance \"{}\" (known: exact, kernel)", *balance));
  }
  if (auto v = obj.boolean("generate_request_id")) listener.generate_request_id = *v;
  if (auto v = obj.boolean("preserve_external_request_id")) listener.preserve_external_request_id = *v;
  if (auto v = obj.boolean("always_set_request_id_in_response")) listener.always_set_request_id_in_response = *v;
  if (const json* health = obj.object("health_service")) {
    listener.health_service = readHealthService(*health, obj.pathOf("health_service"), ctx);
  }
  obj.finish();
  return listener;
}

template <typename T>
void checkUniqueNames(const std::vector<T>& items, const std::string& path, ConfigErrors& errors) {
  std::set<std::string> seen;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].name.empty()) continue;
    if (!seen.insert(items[i].name).second) {
      errors.add(jsonPath(jsonPath(path, i), "name"), fmt::format("duplicate name \"{}\"", items[i].name));
    }
  }
}

// Whether two listening addresses would share incoming connections: the same
// port and the same IP, or a wildcard on either side ("::" also takes IPv4
// unless the socket is IPv6-only, which ours are not). Two gRPC listeners
// there would each get a random share of the connections (SO_REUSEPORT), so
// some callers would run another listener's filters.
// Addresses are compared as bytes, IPv4 in its IPv6-mapped form, so that
// "[::ffff:127.0.0.1]" meets "127.0.0.1" (a dual-stack socket bound to it
// takes that address's IPv4 connections) and "[::0:1]" meets "[::1]".
bool addressesOverlap(const SocketAddress& a, const SocketAddress& b) {
  if (a.port != b.port) return false;
  auto bytes = [](const SocketAddress& s) {
    std::array<uint8_t, 16> out{};
    if (s.ipv6) {
      inet_pton(AF_INET6, s.host.c_str(), out.data());
    } else {
      out[10] = out[11] = 0xff;
      inet_pton(AF_INET, s.host.c_str(), out.data() + 12);
    }
    return out;
  };
  const auto x = bytes(a), y = bytes(b);
  constexpr std::array<uint8_t, 16> kAny6{};                                    // "::"
  constexpr std::array<uint8_t, 16> kAny4{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};  // "0.0.0.0"
  auto mappedV4 = [](const std::array<uint8_t, 16>& v) {
    return std::all_of(v.begin(), v.begin() + 10, [](uint8_t c) { return c == 0; }) && v[10] == 0xff && v[11] == 0xff;
  };
  if (x == kAny6 || y == kAny6) return true;
  if (mappedV4(x) != mappedV4(y)) return false;
  return x == y || x == kAny4 || y == kAny4;
}

void checkDistinctAddresses(const GatewayConfig& config, ConfigErrors& errors) {
  struct Bound {
    std::string what;
    const SocketAddress* address;
  };
  std::vector<Bound> seen;
  if (config.admin_address) seen.push_back({"the admin listener", &*config.admin_address});
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& listener = config.listeners[i];
    if (listener.address.port == 0) continue;  // unset (already an error) or a port the kernel picks
    for (const Bound& other : seen) {
      if (!addressesOverlap(listener.address, *other.address)) continue;
      errors.add(jsonPath(jsonPath("/listeners", i), "address"),
                 fmt::format("{} overlaps {} at {}: connections would be split between them", listener.address.toString(),
                             other.what, other.address->toString()));
      break;
    }
    seen.push_back({fmt::format("listener \"{}\"", listener.name), &listener.address});
  }
}

}  // namespace

bool isLogLevelName(std::string_view name) {
  static constexpr std::string_view kNames[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

const ClusterConfig* GatewayConfig::findCluster(std::string_view name) const {
  for (const auto& c : clusters) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

GatewayConfigConstPtr loadConfig(const std::string& text, const FilterRegistry& registry,
                                 ConfigErrors& errors, const HostLookup& lookup) {
  json root;
  if (!parseConfigJson(text, root, errors)) return nullptr;
  auto config = std::make_shared<GatewayConfig>();
  JsonObject obj(root, "", errors);
  if (auto level = obj.string("log_level")) {
    if (!isLogLevelName(*level)) {
      errors.add("/log_level", fmt::format("unknown log level \"{}\" (known: {})", *level, kLogLevelNames));
    }
    config->log_level = *level;
  }
  if (const json* admin = obj.object("admin")) {
    JsonObject a(*admin, "/admin", errors);
    if (auto addr = readAddress(a, "address", true)) config->admin_address = *addr;
    if (auto n = a.unsignedInt("max_connections", 1, 100000)) config->admin_max_connections = static_cast<uint32_t>(*n);
    if (auto t = a.unsignedInt("request_timeout_ms", 1, 3600000)) {
      config->admin_request_timeout_ms = static_cast<uint32_t>(*t);
    }
    if (auto b = a.unsignedInt("max_pending_answer_bytes", 1024, uint64_t{1} << 32)) {
      config->admin_max_pending_answer_bytes = *b;
    }
    a.finish();
  }
  if (auto d = obj.unsignedInt("drain_timeout_ms", 0, 3600000)) config->drain_timeout_ms = static_cast<uint32_t>(*d);
  if (auto t = obj.unsignedInt("reload_resolve_timeout_ms", 1, kMaxReloadResolveTimeoutMs)) {
    config->reload_resolve_timeout_ms = static_cast<uint32_t>(*t);
  }
  if (auto n = obj.unsignedInt("dns_lookup_threads", 1, kMaxDnsLookupThreads)) config->dns_lookup_threads = static_cast<uint32_t>(*n);
  if (auto w = obj.unsignedInt("workers", 0, 256)) config->workers = static_cast<uint32_t>(*w);
  if (auto p = obj.unsignedInt("worker_spin_polls", 0, kMaxWorkerSpinPolls)) {
    config->worker_spin_polls = static_cast<uint32_t>(*p);
  }
  if (auto us = obj.unsignedInt("worker_sched_slice_us", 0, kMaxWorkerSchedSliceUs)) {
    if (*us != 0 && *us < kMinWorkerSchedSliceUs) {
      errors.add(obj.pathOf("worker_sched_slice_us"),
                 fmt::format("{} is below the kernel's minimum slice, {} us (0 keeps the kernel's default)", *us,
                             kMinWorkerSchedSliceUs));
    } else {
      config->worker_sched_slice_us = static_cast<uint32_t>(*us);
    }
  }
  if (const json* overload = obj.object("overload")) {
    JsonObject o(*overload, "/overload", errors);
    config->overload = readOverloadConfig(o);
  }
  // Clusters first: routes name them.
  std::set<std::string> cluster_names;
  if (const json* clusters = obj.array("clusters", true)) {
    for (size_t i = 0; i < clusters->size(); ++i) {
      config->clusters.push_back(readClusterConfig((*clusters)[i], jsonPath("/clusters", i), errors, lookup));
      cluster_names.insert(config->clusters.back().name);
    }
    checkUniqueNames(config->clusters, "/clusters", errors);
  }
  FilterBuildContext ctx{errors, cluster_names};
  if (const json* listeners = obj.array("listeners", true)) {
    if (listeners->empty()) errors.add("/listeners", "at least one listener is needed");
    for (size_t i = 0; i < listeners->size(); ++i) {
      config->listeners.push_back(readListener((*listeners)[i], jsonPath("/listeners", i), registry, ctx));
    }
    checkUniqueNames(config->listeners, "/listeners", errors);
    checkDistinctAddresses(*config, errors);
  }
  obj.finish();
  if (!errors.empty()) return nullptr;
  config->source_text = text;
  return config;
}

std::optional<std::string> readConfigFile(const std::string& file, ConfigErrors& errors) {
  return readJsonFile(file, "config file", "", errors);
}

GatewayConfigConstPtr loadConfigFile(const std::string& file, const FilterRegistry& registry,
                                     ConfigErrors& errors) {
  auto text = readConfigFile(file, errors);
  return text ? loadConfig(*text, registry, errors) : nullptr;
}

}  // namespace sluice
