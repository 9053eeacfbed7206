// ClusterConfig: one upstream cluster as configured: endpoints (with weights),
// load-balancing policy, health checking, outlier detection, circuit breakers
// and connection-pool settings. Parsed once; immutable.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/socket_address.h"

namespace sluice {

class ConfigErrors;

enum class LbPolicy { RoundRobin, LeastRequest, Random, RingHash };

struct EndpointConfig {
  std::string host;       // as written: an IP literal or a host name
  SocketAddress address;  // resolved at load time (host names are re-resolved later)
  // A host name's every address at load time, `address` first (see
  // ClusterConfig::DnsAddresses); an IP literal's is `address` alone.
  std::vector<SocketAddress> addresses;
  uint32_t weight = 1;
  bool isHostName() const { return address.host != host; }
  // "host:port" as written: names the endpoint across workers and reloads.
  std::string key() const { return host + ":" + std::to_string(address.port); }
};

struct HealthCheckConfig {
  uint32_t interval_ms = 5000;
  uint32_t timeout_ms = 1000;
  uint32_t unhealthy_threshold = 2;
  uint32_t healthy_threshold = 1;
  std::string service;  // grpc.health.v1 HealthCheckRequest.service
};

struct OutlierDetectionConfig {
  uint32_t consecutive_failures = 5;
  uint32_t base_ejection_ms = 30000;
  uint32_t max_ejection_percent = 10;
};

// The range a configured HTTP/2 receive window may take: from the protocol's
// initial 65,535 bytes (a connection window cannot shrink below it) to its
// maximum, 2^31 - 1.
inline constexpr uint64_t kMinWindow = 65535;
inline constexpr uint64_t kMaxWindow = (1ull << 31) - 1;

struct CircuitBreakerConfig {
  uint32_t max_connections = 1024;
  uint32_t max_pending_streams = 4096;
  uint32_t max_requests = 65536;
  // Retry budget (Envoy's): calls waiting for or running a retry, at most
  // this percentage of the requests in flight, or min_retry_concurrency when
  // that is more. Retries past it are not made: a failing backend is not
  // sent a second wave of every call.
  uint32_t retry_budget_percent = 20;
  uint32_t min_retry_concurrency = 3;
};

struct ClusterConfig {
  std::string name;
  // The cluster's JSON object as read (compact, keys sorted): a reload keeps
  // the running cluster, its connections, counts and lookups, when this is
  // unchanged (ClusterManager), as Envoy keeps a cluster its update leaves
  // alone.
  std::string source;
  LbPolicy lb_policy = LbPolicy::RoundRobin;
  std::string hash_header;  // ring_hash: the request header whose value picks the endpoint
  std::vector<EndpointConfig> endpoints;
  uint32_t connect_timeout_ms = 5000;
  uint32_t idle_timeout_ms = 300000;      // close an upstream connection idle this long
  // PING an upstream connection this often (0: off, the default). gRPC
  // servers allow a PING only every 5 min by default (2 h with no call open)
  // and answer more with GOAWAY ENHANCE_YOUR_CALM, closing the connection
  // and its calls: turn it on only for backends configured to permit it.
  uint32_t keepalive_interval_ms = 0;
  uint32_t keepalive_timeout_ms = 10000;  // and close it if the PING is not answered
  uint32_t dns_refresh_ms = 30000;        // re-resolve host-name endpoints
  // What a host name's addresses become (Envoy's LOGICAL_DNS and STRICT_DNS
  // clusters). First: one endpoint, which connects to the first address (a
  // name for one backend, or a load balancer). All: an endpoint per address,
  // added and removed as the answers change (a Kubernetes headless service).
  enum class DnsAddresses { First, All };
  DnsAddresses dns_addresses = DnsAddresses::First;
  // Streams one upstream connection carries before the pool opens another
  // (the backend's SETTINGS_MAX_CONCURRENT_STREAMS applies too); 0: only the
  // backend's. More connections spread the calls over more backend threads.
  uint32_t max_concurrent_streams = 0;
  // Streams one upstream connection opens before it is retired: new calls go
  // to a fresh connection and it closes once its calls are done. 0: only the
  // protocol's limit, the 2^30 stream IDs a client has (kMaxStreamsPerConnection),
  // which a busy connection to a backend that never sends GOAWAY reaches in
  // about a day at 10,000 calls/s.
  uint32_t max_requests_per_connection = 0;
  static constexpr uint32_t kMaxStreamsPerConnection = 1u << 30;
  // Connections per endpoint (per worker) that calls are spread over, the
  // least busy first; another opens only while all are carrying calls.
  uint32_t connections_per_endpoint = 1;
  // HTTP/2 receive windows granted to the backend. The stream window is what
  // a backend may send ahead of a slow client, so it bounds the gateway's
  // memory per call; larger than the listener's by default because backends
  // write in bursts of what the window allows, and each burst costs a wakeup
  // of the backend, the gateway and the client (8 MiB streamed ~5% faster
  // than 1 MiB through a 2-core benchmark; 256 KiB ~30% slower).
  uint32_t initial_stream_window_bytes = 8 << 20;
  // What every call's stream starts with (SETTINGS_INITIAL_WINDOW_SIZE): the
  // rest of initial_stream_window_bytes is lent to a call that streams, by
  // its client's connection (StreamContext::reserveResponseWindow), so that
  // a client holding many calls open cannot make the gateway hold a whole
  // window for each. Small answers never need more.
  static constexpr uint32_t kBaseStreamWindow = 256 << 10;
  uint32_t baseStreamWindow() const { return std::min(initial_stream_window_bytes, kBaseStreamWindow); }
  uint32_t initial_connection_window_bytes = 16 << 20;
  std::optional<HealthCheckConfig> health_check;
  std::optional<OutlierDetectionConfig> outlier_detection;
  CircuitBreakerConfig circuit_breakers;
  // Panic routing (Envoy's healthy panic threshold): when fewer than this
  // percentage of the endpoints are available (healthy and not ejected),
  // calls go to every endpoint as if all were: health checks pointed at the
  // wrong service, or one backend ejected from a cluster of one, must not
  // turn into a whole cluster answering "no healthy endpoint". 0: off.
  uint32_t panic_threshold_percent = 50;
};

// How an endpoint's host name becomes addresses while a config loads (never
// none). Empty: lookUpHostNow(), which blocks; a reload passes the answers it
// got off the loop beforehand (listeners/reload_resolver.h). A failure's
// message is the config error: it names the host and says why.
using HostLookup = std::function<StatusOr<std::vector<SocketAddress>>(const std::string& host, uint16_t port)>;

// resolveHost() on the spot, failing with hostNotFound().
StatusOr<std::vector<SocketAddress>> lookUpHostNow(const std::string& host, uint16_t port);
// The error for a name the resolver says does not exist: cannot resolve host "name".
Status hostNotFound(const std::string& host);

// Reads one entry of "clusters" at JSON pointer `path`; mistakes go to `errors`.
ClusterConfig readClusterConfig(const nlohmann::json& value, const std::string& path, ConfigErrors& errors,
                                const HostLookup& lookup = {});

// The distinct (host name, port) pairs among the endpoints of `root`'s
// "clusters": what loading `root` would resolve. IP literals and malformed
// entries are left out (loading reports those), and so are the clusters
// `running` has unchanged (the same `source`): a reload keeps those as they
// run, with their own lookups (ClusterManager).
std::vector<std::pair<std::string, uint16_t>> endpointHostNames(const nlohmann::json& root,
                                                                const std::vector<ClusterConfig>& running = {});

}  // namespace sluice
