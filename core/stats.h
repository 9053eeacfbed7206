// Stats: the gateway's counters, gauges and histograms.
//
// Each worker owns one WorkerStats and is its only writer, so updates are plain
// relaxed atomic stores (no lock prefix, no contention); readers (the admin
// endpoint, any thread) load them and sum over workers. Named sections
// (listeners, clusters, per-method call stats) are created on first use under a
// mutex and never removed, so a pointer to one stays valid for the worker's life.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace sluice {

class Counter {
 public:
  void inc(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void add(int64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void inc() { add(1); }
  void dec() { add(-1); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Fixed log-scale buckets (seconds), the same everywhere so that Prometheus
// can aggregate across gateways.
class Histogram {
 public:
  static constexpr std::array<double, 16> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,   0.5,   1,      2.5,   5,    10,   30,    60};
  void record(double seconds);
  uint64_t bucket(size_t i) const { return buckets_[i].value(); }  // i == kBounds.size(): +Inf
  uint64_t count() const { return count_.value(); }
  double sum() const { return static_cast<double>(sum_ns_.value()) / 1e9; }

 private:
  std::array<Counter, kBounds.size() + 1> buckets_;  // not cumulative
  Counter count_;
  Counter sum_ns_;
};

// Why the gateway answered a call itself.
enum class LocalReplyReason {
  NoRoute,
  UpstreamFailure,
  Deadline,
  BadRequest,
  MessageTooLarge,
  Filter,
  FilterError,  // a filter threw (core/user_code.h)
  Draining,
  SlowReader,  // reset: the client's connection buffered past max_buffered_response_bytes
  Fault,       // an abort the fault filter injected on purpose
  Overload,    // refused or reset: the heap is past overload.refuse_calls_percent or reset_calls_percent
  Count
};
std::string_view localReplyReasonName(LocalReplyReason r);

struct ListenerStats {
  Counter downstream_cx_total;
  Gauge downstream_cx_active;
  Counter downstream_cx_refused;  // over a connection limit
  Counter downstream_cx_overload_refused;  // closed as accepted: the heap is past overload.refuse_connections_percent
  Counter downstream_cx_preface_timeout;   // closed: no HTTP/2 preface within preface_timeout_ms
  Gauge downstream_cx_tx_bytes_buffered;   // written to clients, not yet taken by their kernels
  Counter downstream_rq_total;
  Gauge downstream_rq_active;
  Counter downstream_rq_refused;  // while draining or for overload (not nghttp2's own refusals)
  Counter downstream_protocol_errors;
  Counter downstream_idle_stream_resets;  // RST_STREAM for streams the client never opened, ignored
  std::array<Counter, static_cast<size_t>(LocalReplyReason::Count)> local_replies;
};

struct ClusterStats {
  Counter upstream_cx_total;
  Counter upstream_cx_connect_fail;
  Gauge upstream_cx_active;
  Counter upstream_rq_total;
  Counter upstream_rq_retry;
  Counter upstream_rq_unsent;  // attempts no backend saw (no endpoint, breaker, backoff, connect failure)
  Counter upstream_rq_reset;
  Counter upstream_rq_overflow;  // refused by a circuit breaker
  Counter upstream_rq_retry_overflow;  // retries not made: the retry budget was used up
  Counter health_check_success;
  Counter health_check_failure;
  Counter outlier_ejections;
  Counter lb_healthy_panic;  // attempts routed in panic (too few endpoints available)
};

// How a worker's event loop waited for work (worker_spin_polls; see
// core/dispatcher.h).
struct LoopStats {
  Counter spin_polls;            // polls made instead of going to sleep
  Counter spin_polls_with_work;  // ... that found work: a sleep and a wake-up saved
};

// go-grpc-prometheus's server metrics for one (service, method, type).
struct MethodStats {
  Counter started;
  std::array<Counter, 17> handled;  // by grpc-status code
  Counter msg_received;
  Counter msg_sent;
  Histogram handling_seconds;
  // This series' call type, set when it is made (the worker's alone). Types
  // only widen, so a finished call that shows nothing new here need not
  // look its path up again (WorkerStats::learnType takes the lock).
  bool type_known = false;  // "unknown": every finished OK call is looked at
  bool client_streams = false;
  bool server_streams = false;
  bool widenedBy(bool client, bool server) const {
    return !type_known || (client && !client_streams) || (server && !server_streams);
  }
};

// The method paths given series of their own, over every worker: at most
// WorkerStats::kMaxMethodPaths in all, so that the scrape, which lists each
// path once however many workers counted it, stays bounded with 8 workers as
// with 1. A path one worker admitted, the others admit too. Asked only when
// a worker first sees a path (under its own lock), so one mutex is enough.
class MethodPathBudget {
 public:
  // `proven`: its backend answered a call of it (see PathAdmission). A path
  // admitted unproven is proven by a later call's admit(path, true).
  bool admit(std::string_view path, bool proven);

 private:
  std::mutex mutex_;
  std::map<std::string, bool, std::less<>> paths_;  // path -> proven
  size_t unproven_ = 0;
};

// How a call's path may get a series of its own, when it has none yet.
enum class PathAdmission {
  Known,     // only if it has one already (the call has not shown anything)
  Unproven,  // every filter let the call through, but no backend answered it
             // (it timed out, was cancelled, found no endpoint): at most
             // kMaxUnprovenMethodPaths such paths, so that made-up names
             // sent with a tiny deadline cannot take every series
  Proven,    // its backend answered (headers, or a status but UNIMPLEMENTED)
};

class WorkerStats {
 public:
  // Shares `budget` (which outlives this) with the process's other workers.
  void shareMethodPaths(MethodPathBudget* budget) { path_budget_ = budget; }
  using MethodKey = std::tuple<std::string, std::string, std::string>;  // service, method, type
  ListenerStats& listener(std::string_view name);
  ClusterStats& cluster(std::string_view name);
  // Calls in flight on one endpoint of a cluster, `endpoint` its key
  // (Endpoint::key()); shared by the worker's config generations, so a
  // call that started before a reload still counts. Held by each Endpoint
  // object of that key, and forgotten when the last lets go (an address
  // churning under dns_addresses "all" must not grow the map for good).
  // Read with endpointActive(), which adds nothing for an unknown endpoint.
  Gauge& holdEndpointGauge(std::string_view cluster, std::string_view endpoint);
  void releaseEndpointGauge(std::string_view cluster, std::string_view endpoint);
  int64_t endpointActive(std::string_view cluster, std::string_view endpoint) const;
  size_t endpointGaugeCount() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return endpoints_.size();
  }
  MethodStats& method(std::string_view service, std::string_view method, std::string_view type);
  LoopStats& loop() { return loop_; }
  const LoopStats& loop() const { return loop_; }
  // The stats a new call of `path` counts into: those of the call type
  // learned for it ("unary", "client_stream", "server_stream", "bidi_stream";
  // "unknown" at first: the gateway has no .proto, so it learns the type from
  // the messages of finished calls, and only ever widens it: a streaming
  // method's call that sent one message does not make it "unary" again).
  // No allocation once the path is known.
  // A path not seen before gets its own series only when `admit` (its call
  // passed every filter, routed and authorised, and its backend did not
  // answer UNIMPLEMENTED), else nullptr. Past
  // kMaxMethodPaths distinct paths, and for paths longer than
  // kMaxMethodPathBytes, calls count under service and method kOtherMethod:
  // a client spraying made-up method names must not grow the gateway's
  // memory or its metrics without bound, nor take the series of methods
  // first called after it.
  // `unproven` (optional): set to whether the path's series is still
  // unproven, so that a call proving it can say so (admit Proven again).
  MethodStats* methodForCall(std::string_view path, std::string_view service, std::string_view method,
                             PathAdmission admit, bool* unproven = nullptr);
  // Where calls of paths without their own series count.
  MethodStats& otherMethod();
  static constexpr size_t kMaxMethodPaths = 1000;
  static constexpr size_t kMaxUnprovenMethodPaths = 100;
  static constexpr size_t kMaxMethodPathBytes = 512;
  static constexpr std::string_view kOtherMethod = "(other)";
  // What a finished OK call of `path` showed: more than one message each way or not.
  void learnType(std::string_view path, bool client_streams, bool server_streams);

  // A counter of a filter's own, by name: `fault_delays_injected` is
  // `filter.fault_delays_injected` in /stats and
  // `sluice_filter_fault_delays_injected_total` in Prometheus, summed over
  // workers. Created on first use (under the lock: look it up once per call,
  // not per message) and never removed. Count only on this worker's thread
  // (in hooks, timers and CallHandle work), never from a thread of your own:
  // counters are single-writer. A name is words of [a-z0-9] joined by '_',
  // starting with a letter, at most kMaxFilterCounterNameBytes long, and
  // without the words promtool's lint refuses (a metric type such as
  // "counter", "total", an abbreviated unit such as "ms"); another name
  // throws std::invalid_argument, a filter's bug: a hook that throws ends its
  // call with INTERNAL. Past kMaxFilterCounters names, new ones count under
  // kOtherFilterCounter, so a filter naming counters after what clients send
  // cannot grow the gateway.
  Counter& filterCounter(std::string_view name);
  static constexpr size_t kMaxFilterCounters = 256;
  static constexpr size_t kMaxFilterCounterNameBytes = 64;
  static constexpr std::string_view kOtherFilterCounter = "other";

  // Readers: visit every section (under the creation lock).
  template <typename F> void forEachListener(F f) const { visit(listeners_, f); }
  template <typename F> void forEachCluster(F f) const { visit(clusters_, f); }
  template <typename F> void forEachFilterCounter(F f) const { visit(filter_counters_, f); }
  // f(cluster, endpoint key, calls in flight) for every endpoint gauge held,
  // also of endpoints a reload removed whose calls still run.
  template <typename F> void forEachEndpointActive(F f) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [key, held] : endpoints_) {
      const size_t cut = key.find('\0');
      f(std::string_view(key).substr(0, cut), std::string_view(key).substr(cut + 1), held->gauge.value());
    }
  }
  // Visits the method series outside the lock, which new calls of the worker
  // take: a scrape formatting thousands of series must not hold them up.
  // (Series are never removed, and a map's nodes stay where they are.)
  template <typename F> void forEachMethod(F f) const {
    std::vector<std::pair<const MethodKey*, const MethodStats*>> series;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      series.reserve(methods_.size());
      for (const auto& [key, stats] : methods_) series.emplace_back(&key, stats.get());
    }
    for (const auto& [key, stats] : series) f(std::get<0>(*key), std::get<1>(*key), std::get<2>(*key), *stats);
  }

 private:
  template <typename M, typename F> void visit(const M& m, F f) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [name, stats] : m) f(name, *stats);
  }

  mutable std::mutex mutex_;
  LoopStats loop_;
  std::map<std::string, std::unique_ptr<ListenerStats>, std::less<>> listeners_;
  std::map<std::string, std::unique_ptr<ClusterStats>, std::less<>> clusters_;
  struct HeldGauge {
    Gauge gauge;
    uint32_t holders = 0;
  };
  std::map<std::string, std::unique_ptr<HeldGauge>, std::less<>> endpoints_;  // by "cluster\0endpoint"
  std::map<std::string, std::unique_ptr<Counter>, std::less<>> filter_counters_;
  std::map<MethodKey, std::unique_ptr<MethodStats>> methods_;
  struct PathEntry {
    std::string learned = "unknown";
    MethodStats* current = nullptr;
    bool proven = false;
  };
  size_t unproven_paths_ = 0;
  std::map<std::string, PathEntry, std::less<>> paths_;
  MethodStats* other_ = nullptr;  // the kOtherMethod series, once made
  MethodPathBudget* path_budget_ = nullptr;
  MethodStats& methodLocked(std::string_view service, std::string_view method, std::string_view type);
  MethodStats& otherLocked();
};

}  // namespace sluice
