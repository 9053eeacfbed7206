// GatewayConfig: the parsed and validated JSON config.
//
// Built once by loadConfig(); immutable afterwards and shared (read-only) by
// every worker. Filter entries hold the factories their parsers built.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cluster_config.h"
#include "core/filter.h"
#include "core/socket_address.h"

namespace sluice {

class ConfigErrors;
class FilterRegistry;

struct FilterEntryConfig {
  std::string name;
  FilterFactorySharedPtr factory;
};

// How a listener's connections are spread over the workers.
enum class ConnectionBalance {
  Exact,   // the accepting worker hands each one to the worker with the fewest
  Kernel,  // wherever SO_REUSEPORT's hash puts it
};

// grpc.health.v1.Health/Check answered by the gateway itself on a listener
// (listeners/health_service.h): "" is the gateway; each named service is
// SERVING while every one of its clusters has an endpoint available.
struct HealthServiceConfig {
  std::map<std::string, std::vector<std::string>, std::less<>> services;
};

struct ListenerConfig {
  std::string name;
  SocketAddress address;
  uint32_t max_message_bytes = 16u << 20;
  std::vector<FilterEntryConfig> filters;
  // Limits, with production defaults (see the README).
  uint32_t max_connections = 10000;
  uint32_t max_concurrent_streams = 1024;     // per connection (SETTINGS_MAX_CONCURRENT_STREAMS)
  uint32_t max_header_list_bytes = 64 << 10;  // request headers of one call
  // Request headers one connection's open calls may hold, decoded (each
  // call keeps its headers to its end). HPACK lets ~150 bytes on the wire
  // stand for a 60 KB list, so without this a client could make one
  // connection hold max_concurrent_streams × max_header_list_bytes (64 MiB)
  // for the bytes of a few packets. The call that would pass it gets
  // RESOURCE_EXHAUSTED. At least max_header_list_bytes.
  uint64_t max_held_request_header_bytes = 4ull << 20;
  uint32_t stream_buffer_bytes = 256 << 10;   // per stream and direction before the sender is slowed
  // Memory one connection's calls may hold in request messages still
  // arriving (a message is reassembled whole before the filters see it); the
  // call that goes past it fails with RESOURCE_EXHAUSTED. 0: the default,
  // 4 × max_message_bytes.
  uint64_t max_incomplete_request_bytes = 0;
  uint64_t incompleteRequestLimit() const {
    return max_incomplete_request_bytes != 0 ? max_incomplete_request_bytes : 4ull * max_message_bytes;
  }
  // The same for response messages still arriving from backends: a backend
  // announcing a large message and sending it slowly (or never finishing it)
  // makes the call hold what arrived. 0: 4 × max_message_bytes.
  uint64_t max_incomplete_response_bytes = 0;
  uint64_t incompleteResponseLimit() const {
    return max_incomplete_response_bytes != 0 ? max_incomplete_response_bytes : 4ull * max_message_bytes;
  }
  // Response bytes one connection's calls may hold queued for the client
  // (each call's backend may send its whole window ahead of a client that
  // does not read); past it, a call so backed up is reset
  // (RST_STREAM ENHANCE_YOUR_CALM: RESOURCE_EXHAUSTED at the client).
  uint64_t max_buffered_response_bytes = 64ull << 20;
  // HTTP/2 receive windows granted to clients. A stream's window bounds what
  // a client may send ahead of the backend; the connection's is returned at
  // once (see "Data path and flow control" in the README).
  uint32_t initial_stream_window_bytes = 1 << 20;
  uint32_t initial_connection_window_bytes = 16 << 20;
  uint32_t connection_buffer_bytes = 1 << 20; // output queued for one client's socket
  uint32_t idle_timeout_ms = 300000;          // a connection with no stream; 0: never
  // From accept to the client's whole HTTP/2 preface (its magic and first
  // SETTINGS); 0: no limit. A connection that never speaks would otherwise
  // hold its place under max_connections until the keepalive gives up on it.
  uint32_t preface_timeout_ms = 10000;
  uint32_t stream_idle_timeout_ms = 0;        // a stream with no message either way; 0: never
  uint32_t keepalive_interval_ms = 60000;     // PING clients this often; 0: never
  uint32_t keepalive_timeout_ms = 20000;      // ... and drop them if unanswered
  uint32_t rst_stream_burst = 1000;           // RST_STREAMs a client may send at once ...
  uint32_t rst_stream_rate = 33;              // ... and per second after that
  uint32_t max_pending_acks = 1000;           // PING/SETTINGS acks owed to a client that does not read
  ConnectionBalance connection_balance = ConnectionBalance::Exact;
  // x-request-id (core/request_id.h): give a call without one a fresh id;
  // keep an id the client sent (else replace it, or without generate_request_id
  // remove it); copy the id into the response's headers for the client.
  bool generate_request_id = true;
  bool preserve_external_request_id = true;
  bool always_set_request_id_in_response = false;
  std::optional<HealthServiceConfig> health_service;  // off unless configured
};

// worker_spin_polls. In interleaved runs on a 2-core machine shared with the
// client and backend, 4, 8 and 16 gave the same unary throughput, 15-20% above
// 0, and no change at one call in flight (README, Performance). Past 1024 a
// worker could spin for milliseconds.
constexpr uint32_t kDefaultWorkerSpinPolls = 8;
constexpr uint32_t kDefaultDnsLookupThreads = 16;
constexpr uint32_t kMaxDnsLookupThreads = 1024;
constexpr uint32_t kDefaultReloadResolveTimeoutMs = 30000;
constexpr uint32_t kMaxReloadResolveTimeoutMs = 3600000;
constexpr uint32_t kMaxWorkerSpinPolls = 1024;

// worker_sched_slice_us (core/thread_scheduling.h). The kernel accepts 100 us
// to 100 ms. In interleaved runs on a 2-core machine shared with the client and
// backend, 200 us cut h2load's unary p99 by a third and raised its calls/s by
// 15%, and cost grpc++ unary 3-7% of its calls/s (README, Performance).
constexpr uint32_t kDefaultWorkerSchedSliceUs = 200;
constexpr uint32_t kMinWorkerSchedSliceUs = 100;
constexpr uint32_t kMaxWorkerSchedSliceUs = 100000;

// The top-level "overload" object (core/overload.h).
struct OverloadConfig {
  uint64_t max_heap_bytes = 0;  // 0: off
  // Shares of max_heap_bytes (1–100) at or past which new calls are answered
  // UNAVAILABLE, and new connections closed as they are accepted.
  uint32_t refuse_calls_percent = 95;
  uint32_t refuse_connections_percent = 98;
  // At or past it, each worker resets its calls holding the most message
  // bytes (at least kMinResetCallBytes each) until what they hold would
  // bring the heap back under the share.
  uint32_t reset_calls_percent = 100;
  uint32_t check_interval_ms = 100;

  bool enabled() const { return max_heap_bytes != 0; }
  uint64_t refuseCallsAt() const { return max_heap_bytes / 100 * refuse_calls_percent; }
  uint64_t refuseConnectionsAt() const { return max_heap_bytes / 100 * refuse_connections_percent; }
  uint64_t resetCallsAt() const { return max_heap_bytes / 100 * reset_calls_percent; }
};

struct GatewayConfig {
  std::vector<ListenerConfig> listeners;
  std::vector<ClusterConfig> clusters;
  std::string log_level;  // empty: keep the command line's
  std::optional<SocketAddress> admin_address;  // the admin listener; off when absent
  // Admin connections open at once; past it new ones are closed at once (the
  // admin loop is worker 0's: a flood must not take its descriptors and time).
  uint32_t admin_max_connections = 32;
  // From accept to the answer written: a client slower than this is cut off.
  uint32_t admin_request_timeout_ms = 5000;
  // Answers written but not yet read by their clients, all admin connections
  // together; past it a request gets 503 (slow scrapers of a large /stats).
  uint64_t admin_max_pending_answer_bytes = 32 << 20;
  uint32_t drain_timeout_ms = 10000;
  // How long a reload waits for its host names' lookups (ReloadResolver); a
  // name not answered by then makes the reload fail like one that does not
  // resolve, so a resolver that hangs cannot block every later reload.
  uint32_t reload_resolve_timeout_ms = kDefaultReloadResolveTimeoutMs;
  // Host name lookups the process runs at once, each on a thread of its own
  // (core/host_resolver.h); more wait their turn.
  uint32_t dns_lookup_threads = kDefaultDnsLookupThreads;
  uint32_t workers = 0;  // worker threads; 0: one per core
  // Polls a worker's loop makes before sleeping (core/dispatcher.h).
  uint32_t worker_spin_polls = kDefaultWorkerSpinPolls;
  // The scheduler slice each worker thread asks for; 0: the kernel's default.
  uint32_t worker_sched_slice_us = kDefaultWorkerSchedSliceUs;
  // The heap bound over every client together; off by default.
  OverloadConfig overload;
  std::string source_text;  // the JSON as loaded, for /config_dump

  const ClusterConfig* findCluster(std::string_view name) const;
};
using GatewayConfigConstPtr = std::shared_ptr<const GatewayConfig>;

// Parses `text` (JSON). On mistakes adds every one found to `errors` (each
// naming its JSON path) and returns nullptr. Endpoint host names go through
// `lookup` (empty: resolved on the spot, blocking).
// The log levels the config's log_level and --log-level take (spdlog's
// names, without its aliases "warning" and "err").
inline constexpr const char* kLogLevelNames = "trace, debug, info, warn, error, critical, off";
bool isLogLevelName(std::string_view name);

GatewayConfigConstPtr loadConfig(const std::string& text, const FilterRegistry& registry,
                                 ConfigErrors& errors, const HostLookup& lookup = {});
// The file's text; nullopt (and an error) when it cannot be read.
std::optional<std::string> readConfigFile(const std::string& file, ConfigErrors& errors);
GatewayConfigConstPtr loadConfigFile(const std::string& file, const FilterRegistry& registry,
                                     ConfigErrors& errors);

}  // namespace sluice
