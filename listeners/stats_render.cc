#include "listeners/stats_render.h"

#include <array>
#include <functional>
#include <iterator>
#include <tuple>
#include <map>
#include <set>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "core/allocation_counter.h"
#include "core/buffer_pool.h"
#include "core/overload.h"
#include "codecs/grpc/grpc_headers.h"
#include "core/stats.h"
#include "upstream/cluster.h"
#include "upstream/cluster_manager.h"
#include "upstream/endpoint.h"

namespace sluice {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

std::string escapeLabel(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string labelText(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += fmt::format("{}=\"{}\"", labels[i].first, escapeLabel(labels[i].second));
  }
  return out + "}";
}

std::string formatValue(double v) {
  if (v == static_cast<double>(static_cast<int64_t>(v))) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

// One metric family: HELP/TYPE once, then every sample, in the order first
// added. The format asks for that order: a histogram's buckets by rising
// `le`, each series' buckets, sum and count together (sorted by text, "+Inf"
// came first and "10" before "2.5").
class Family {
 public:
  Family(std::string name, std::string type, std::string help)
      : name_(std::move(name)), type_(std::move(type)), help_(std::move(help)) {}
  void add(const Labels& labels, double value, const std::string& suffix = "") {
    auto [it, added] = index_.try_emplace(name_ + suffix + labelText(labels), samples_.size());
    if (added) samples_.emplace_back(&it->first, 0);
    samples_[it->second].second += value;  // the workers' values summed per series
  }
  void render(std::string& out) const {
    if (samples_.empty()) return;
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name_, help_, name_, type_);
    for (const auto& [series, value] : samples_) out += fmt::format("{} {}\n", *series, formatValue(value));
  }

 private:
  std::string name_, type_, help_;
  std::unordered_map<std::string, size_t> index_;          // series text -> place in samples_
  std::vector<std::pair<const std::string*, double>> samples_;  // keys of index_ (stable)
};

// The per-method families (go-grpc-prometheus's names), summed over the
// workers first and then written series by series, each series' label text
// made once. Up to 1000 method paths make some 23,000 samples, which a
// Family keyed by sample text took tens of milliseconds to build on the
// first worker's loop, holding up its calls at every scrape.
class MethodFamilies {
 public:
  void add(const std::string& service, const std::string& method, const std::string& type, const MethodStats& s) {
    std::string key = service;
    key += '\0';
    key += method;
    key += '\0';
    key += type;
    auto [it, added] = index_.try_emplace(std::move(key), series_.size());
    if (added) {
      series_.emplace_back();
      series_.back().labels = fmt::format("grpc_method=\"{}\",grpc_service=\"{}\",grpc_type=\"{}\"",
                                          escapeLabel(method), escapeLabel(service), escapeLabel(type));
    }
    Totals& t = series_[it->second];
    t.started += s.started.value();
    for (size_t code = 0; code < t.handled.size(); ++code) t.handled[code] += s.handled[code].value();
    t.received += s.msg_received.value();
    t.sent += s.msg_sent.value();
    for (size_t i = 0; i < t.buckets.size(); ++i) t.buckets[i] += s.handling_seconds.bucket(i);
    t.sum += s.handling_seconds.sum();
  }

  void render(std::string& out) const {
    if (series_.empty()) return;
    auto to = std::back_inserter(out);
    auto header = [&](const char* name, const char* type, const char* help) {
      fmt::format_to(to, "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    };
    header("grpc_server_started_total", "counter", "Total number of RPCs started on the server.");
    for (const Totals& t : series_) fmt::format_to(to, "grpc_server_started_total{{{}}} {}\n", t.labels, t.started);
    // Only the codes a series has seen (and no family without any).
    bool any_handled = false;
    for (const Totals& t : series_) {
      for (uint64_t n : t.handled) any_handled = any_handled || n != 0;
    }
    if (any_handled) {
      header("grpc_server_handled_total", "counter",
             "Total number of RPCs completed on the server, regardless of success or failure.");
      for (const Totals& t : series_) {
        for (size_t code = 0; code < t.handled.size(); ++code) {
          if (t.handled[code] == 0) continue;
          fmt::format_to(to, "grpc_server_handled_total{{grpc_code=\"{}\",{}}} {}\n",
                         statusCodeName(static_cast<StatusCode>(code)), t.labels, t.handled[code]);
        }
      }
    }
    header("grpc_server_msg_received_total", "counter", "Total number of RPC stream messages received on the server.");
    for (const Totals& t : series_) fmt::format_to(to, "grpc_server_msg_received_total{{{}}} {}\n", t.labels, t.received);
    header("grpc_server_msg_sent_total", "counter", "Total number of gRPC stream messages sent by the server.");
    for (const Totals& t : series_) fmt::format_to(to, "grpc_server_msg_sent_total{{{}}} {}\n", t.labels, t.sent);
    header("grpc_server_handling_seconds", "histogram",
           "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.");
    for (const Totals& t : series_) {
      // Buckets by rising le, then sum and count: the format wants a
      // series' samples together. _count is the +Inf bucket's value, not
      // the histogram's own count: a scrape running while another worker
      // records may see one updated and not the other, and the format has
      // the two equal.
      uint64_t cumulative = 0;
      for (size_t i = 0; i < t.buckets.size(); ++i) {
        cumulative += t.buckets[i];
        fmt::format_to(to, "grpc_server_handling_seconds_bucket{{{},le=\"{}\"}} {}\n", t.labels, bucketBound(i),
                       cumulative);
      }
      fmt::format_to(to, "grpc_server_handling_seconds_sum{{{}}} {}\n", t.labels, formatValue(t.sum));
      fmt::format_to(to, "grpc_server_handling_seconds_count{{{}}} {}\n", t.labels, cumulative);
    }
  }

 private:
  struct Totals {
    std::string labels;  // grpc_method="…",grpc_service="…",grpc_type="…"
    uint64_t started = 0;
    std::array<uint64_t, std::tuple_size_v<decltype(MethodStats::handled)>> handled{};
    uint64_t received = 0;
    uint64_t sent = 0;
    std::array<uint64_t, Histogram::kBounds.size() + 1> buckets{};  // not cumulative
    double sum = 0;
  };
  // A histogram bucket's le: its bound as fmt writes it, or +Inf.
  static const std::string& bucketBound(size_t i) {
    static const auto bounds = [] {
      std::array<std::string, Histogram::kBounds.size() + 1> b;
      for (size_t j = 0; j < Histogram::kBounds.size(); ++j) b[j] = fmt::format("{}", Histogram::kBounds[j]);
      b.back() = "+Inf";
      return b;
    }();
    return bounds[i];
  }

  std::unordered_map<std::string, size_t> index_;  // service, method, type joined by NULs -> place in series_
  std::vector<Totals> series_;                    // in the order first seen
};

// The fixed set of families, in output order.
struct Families {
  MethodFamilies methods;
  std::map<std::string, Family> sluice;  // by metric name

  Family& gateway(const std::string& name, const std::string& type, const std::string& help) {
    auto it = sluice.find(name);
    if (it == sluice.end()) it = sluice.emplace(name, Family(name, type, help)).first;
    return it->second;
  }
};

void addListenerStats(Families& f, const std::string& name, const ListenerStats& s) {
  Labels l = {{"listener", name}};
  f.gateway("sluice_downstream_cx_total", "counter", "Downstream connections accepted.").add(l, s.downstream_cx_total.value());
  f.gateway("sluice_downstream_cx_active", "gauge", "Downstream connections open.").add(l, s.downstream_cx_active.value());
  f.gateway("sluice_downstream_cx_refused_total", "counter", "Downstream connections refused by a limit.").add(l, s.downstream_cx_refused.value());
  f.gateway("sluice_downstream_cx_overload_refused_total", "counter",
            "Downstream connections closed as accepted: the heap was past overload.refuse_connections_percent.")
      .add(l, s.downstream_cx_overload_refused.value());
  f.gateway("sluice_downstream_cx_tx_bytes_buffered", "gauge",
            "Bytes written to downstream connections that their sockets have not taken yet, held in the gateway "
            "(at most connection_buffer_bytes per connection).")
      .add(l, s.downstream_cx_tx_bytes_buffered.value());
  f.gateway("sluice_downstream_cx_preface_timeout_total", "counter",
            "Downstream connections closed for sending no HTTP/2 preface within preface_timeout_ms.")
      .add(l, s.downstream_cx_preface_timeout.value());
  f.gateway("sluice_downstream_rq_total", "counter", "Downstream streams (calls) started.").add(l, s.downstream_rq_total.value());
  f.gateway("sluice_downstream_rq_active", "gauge", "Downstream streams (calls) in progress.").add(l, s.downstream_rq_active.value());
  f.gateway("sluice_downstream_rq_refused_total", "counter", "Downstream calls refused while draining or for overload (streams past max_concurrent_streams are refused by the HTTP/2 layer, not counted here).").add(l, s.downstream_rq_refused.value());
  f.gateway("sluice_downstream_protocol_errors_total", "counter", "Downstream connections closed for an HTTP/2 protocol error.").add(l, s.downstream_protocol_errors.value());
  f.gateway("sluice_downstream_idle_stream_resets_total", "counter",
            "RST_STREAM frames for streams the client never opened, ignored as gRPC servers do (gRPC C-core sends "
            "them for calls cancelled before their headers went out).")
      .add(l, s.downstream_idle_stream_resets.value());
  for (size_t i = 0; i < s.local_replies.size(); ++i) {
    Labels lr = {{"listener", name}, {"reason", std::string(localReplyReasonName(static_cast<LocalReplyReason>(i)))}};
    f.gateway("sluice_local_replies_total", "counter", "Calls answered by the gateway itself, by reason.").add(lr, s.local_replies[i].value());
  }
}

void addClusterStats(Families& f, const std::string& name, const ClusterStats& s) {
  Labels l = {{"cluster", name}};
  auto c = [&](const char* metric, const char* help, uint64_t v) { f.gateway(metric, "counter", help).add(l, v); };
  c("sluice_upstream_cx_total", "Upstream connections opened.", s.upstream_cx_total.value());
  c("sluice_upstream_cx_connect_fail_total", "Upstream connects that failed or timed out.", s.upstream_cx_connect_fail.value());
  f.gateway("sluice_upstream_cx_active", "gauge", "Upstream connections open.").add(l, s.upstream_cx_active.value());
  c("sluice_upstream_rq_total", "Upstream attempts (calls and retries).", s.upstream_rq_total.value());
  c("sluice_upstream_rq_retry_total", "Upstream retries.", s.upstream_rq_retry.value());
  c("sluice_upstream_rq_unsent_total",
    "Upstream attempts that failed before a backend saw them (no endpoint, circuit breaker, reconnect backoff, "
    "failed connect).",
    s.upstream_rq_unsent.value());
  c("sluice_upstream_rq_reset_total", "Upstream streams the backend reset (RST_STREAM) before they completed.",
    s.upstream_rq_reset.value());
  c("sluice_upstream_rq_overflow_total", "Calls refused by a circuit breaker.", s.upstream_rq_overflow.value());
  c("sluice_upstream_rq_retry_overflow_total", "Retries not made: the cluster's retry budget was used up.",
    s.upstream_rq_retry_overflow.value());
  c("sluice_health_check_success_total", "Active health checks that passed.", s.health_check_success.value());
  c("sluice_health_check_failure_total", "Active health checks that failed.", s.health_check_failure.value());
  c("sluice_outlier_ejections_total", "Endpoints ejected by outlier detection.", s.outlier_ejections.value());
  c("sluice_lb_healthy_panic_total", "Attempts routed ignoring endpoint health (panic_threshold_percent).",
    s.lb_healthy_panic.value());
}

// The clusters whose stats are shown: the running config's, and those a
// reload removed that still have connections open on some worker. Every
// name when `clusters` is null.
std::function<bool(const std::string&)> clusterShown(const std::vector<const WorkerStats*>& workers,
                                                     const ClusterManager* clusters) {
  if (clusters == nullptr) return [](const std::string&) { return true; };
  std::set<std::string> shown;
  for (const auto& c : clusters->clusters()) shown.insert(c->name());
  for (const WorkerStats* w : workers) {
    w->forEachCluster([&](const std::string& n, const ClusterStats& s) {
      if (s.upstream_cx_active.value() != 0) shown.insert(n);
    });
  }
  return [shown = std::move(shown)](const std::string& name) { return shown.count(name) != 0; };
}

}  // namespace

std::string renderPrometheus(const std::vector<const WorkerStats*>& workers, const ClusterManager* clusters,
                             const OverloadState* overload) {
  Families f;
  const auto shown = clusterShown(workers, clusters);
  for (const WorkerStats* w : workers) {
    w->forEachListener([&](const std::string& n, const ListenerStats& s) { addListenerStats(f, n, s); });
    w->forEachCluster([&](const std::string& n, const ClusterStats& s) {
      if (shown(n)) addClusterStats(f, n, s);
    });
    w->forEachMethod([&](const std::string& svc, const std::string& m, const std::string& t, const MethodStats& s) {
      f.methods.add(svc, m, t, s);
    });
    w->forEachFilterCounter([&](const std::string& n, const Counter& c) {
      f.gateway("sluice_filter_" + n + "_total", "counter", "Counted by a filter (WorkerStats::filterCounter).")
          .add({}, static_cast<double>(c.value()));
    });
  }
  // Calls in flight by endpoint, on every worker, summed; those of endpoints
  // the current config does not have (a reload removed them, their calls
  // still run) are shown too, marked removed, so that an operator draining
  // a backend by removing it sees its last calls end.
  std::map<std::pair<std::string, std::string>, int64_t> active_by_endpoint;
  for (const WorkerStats* w : workers) {
    w->forEachEndpointActive([&](std::string_view cluster, std::string_view endpoint, int64_t active) {
      active_by_endpoint[{std::string(cluster), std::string(endpoint)}] += active;
    });
  }
  if (clusters != nullptr) {
    auto now = Endpoint::Clock::now();
    for (const auto& c : clusters->clusters()) {
      for (const auto& ep : c->endpoints()) {
        // `endpoint` as configured (unique in its cluster, so two entries
        // that resolve to one address stay two series), `address` as connected.
        Labels l = {{"cluster", c->name()}, {"endpoint", ep->key()}, {"address", ep->describe()}};
        f.gateway("sluice_endpoint_healthy", "gauge",
                  "1 if the endpoint takes new calls (healthy, not ejected), as the first worker sees it.")
            .add(l, ep->available(now) ? 1 : 0);
        auto it = active_by_endpoint.find({c->name(), ep->key()});
        const int64_t active = it == active_by_endpoint.end() ? 0 : it->second;
        if (it != active_by_endpoint.end()) active_by_endpoint.erase(it);
        f.gateway("sluice_endpoint_rq_active", "gauge", "Calls in flight on the endpoint, on every worker.")
            .add(l, active);
      }
    }
  }
  for (const auto& [key, active] : active_by_endpoint) {
    if (active == 0) continue;  // held by a retired config's idle endpoint: nothing to see
    Labels l = {{"cluster", key.first}, {"endpoint", key.second}, {"address", "removed"}};
    f.gateway("sluice_endpoint_rq_active", "gauge", "Calls in flight on the endpoint, on every worker.").add(l, active);
  }
  uint64_t spin_polls = 0, spin_polls_with_work = 0;
  for (const WorkerStats* w : workers) {
    spin_polls += w->loop().spin_polls.value();
    spin_polls_with_work += w->loop().spin_polls_with_work.value();
  }
  f.gateway("sluice_loop_spin_polls_total", "counter", "Polls the workers' loops made instead of sleeping.")
      .add({}, static_cast<double>(spin_polls));
  f.gateway("sluice_loop_spin_polls_with_work_total", "counter", "Polls instead of sleeping that found work.")
      .add({}, static_cast<double>(spin_polls_with_work));
  if (auto allocations = allocation_counter::current()) {
    f.gateway("sluice_process_allocations_total", "counter", "Heap allocations made by the gateway process.")
        .add({}, static_cast<double>(*allocations));
  }
  // Always, so that overload.max_heap_bytes can be chosen from what a
  // gateway holds under its usual load.
  f.gateway("sluice_process_heap_bytes", "gauge",
            "Heap allocated and not freed, as the allocator counts it (in sluice: its C++ allocations).")
      .add({}, static_cast<double>(allocation_counter::heapBytesInUse()));
  f.gateway("sluice_process_pooled_buffer_bytes", "gauge",
            "Message buffers the workers keep for reuse: part of the heap, held by no call.")
      .add({}, static_cast<double>(buffer_pool::pooledBytes()));
  if (overload != nullptr && overload->enabled()) {
    auto g = [&](const char* name, const char* help, double v) { f.gateway(name, "gauge", help).add({}, v); };
    g("sluice_overload_heap_bytes", "Heap in use at the last overload check.", static_cast<double>(overload->heapBytes()));
    g("sluice_overload_max_heap_bytes", "overload.max_heap_bytes.", static_cast<double>(overload->maxHeapBytes()));
    g("sluice_overload_refusing_calls", "1 while new calls are refused (overload.refuse_calls_percent).",
      overload->refusingCalls() ? 1 : 0);
    g("sluice_overload_refusing_connections",
      "1 while new connections are closed as accepted (overload.refuse_connections_percent).",
      overload->refusingConnections() ? 1 : 0);
  }
  std::string out;
  f.methods.render(out);
  for (const auto& [_, fam] : f.sluice) fam.render(out);
  return out;
}

std::string renderStatsText(const std::vector<const WorkerStats*>& workers, const OverloadState* overload,
                            const ClusterManager* clusters) {
  std::map<std::string, int64_t> values;
  const auto shown = clusterShown(workers, clusters);
  for (size_t i = 0; i < workers.size(); ++i) {
    // Per worker too: how evenly connections are spread (connection_balance).
    workers[i]->forEachListener([&](const std::string& n, const ListenerStats& s) {
      values[fmt::format("worker.{}.listener.{}.downstream_cx_active", i, n)] = s.downstream_cx_active.value();
    });
  }
  for (const WorkerStats* w : workers) {
    w->forEachListener([&](const std::string& n, const ListenerStats& s) {
      auto p = "listener." + n + ".";
      values[p + "downstream_cx_total"] += s.downstream_cx_total.value();
      values[p + "downstream_cx_active"] += s.downstream_cx_active.value();
      values[p + "downstream_cx_refused"] += s.downstream_cx_refused.value();
      values[p + "downstream_cx_overload_refused"] += s.downstream_cx_overload_refused.value();
      values[p + "downstream_cx_preface_timeout"] += s.downstream_cx_preface_timeout.value();
      values[p + "downstream_cx_tx_bytes_buffered"] += s.downstream_cx_tx_bytes_buffered.value();
      values[p + "downstream_rq_total"] += s.downstream_rq_total.value();
      values[p + "downstream_rq_active"] += s.downstream_rq_active.value();
      values[p + "downstream_rq_refused"] += s.downstream_rq_refused.value();
      values[p + "downstream_protocol_errors"] += s.downstream_protocol_errors.value();
      values[p + "downstream_idle_stream_resets"] += s.downstream_idle_stream_resets.value();
      for (size_t i = 0; i < s.local_replies.size(); ++i) {
        values[p + "local_reply." + std::string(localReplyReasonName(static_cast<LocalReplyReason>(i)))] +=
            s.local_replies[i].value();
      }
    });
    w->forEachCluster([&](const std::string& n, const ClusterStats& s) {
      if (!shown(n)) return;
      auto p = "cluster." + n + ".";
      values[p + "upstream_cx_total"] += s.upstream_cx_total.value();
      values[p + "upstream_cx_connect_fail"] += s.upstream_cx_connect_fail.value();
      values[p + "upstream_cx_active"] += s.upstream_cx_active.value();
      values[p + "upstream_rq_total"] += s.upstream_rq_total.value();
      values[p + "upstream_rq_retry"] += s.upstream_rq_retry.value();
      values[p + "upstream_rq_unsent"] += s.upstream_rq_unsent.value();
      values[p + "upstream_rq_reset"] += s.upstream_rq_reset.value();
      values[p + "upstream_rq_overflow"] += s.upstream_rq_overflow.value();
      values[p + "upstream_rq_retry_overflow"] += s.upstream_rq_retry_overflow.value();
      values[p + "health_check.success"] += s.health_check_success.value();
      values[p + "health_check.failure"] += s.health_check_failure.value();
      values[p + "outlier.ejections"] += s.outlier_ejections.value();
      values[p + "lb_healthy_panic"] += s.lb_healthy_panic.value();
    });
    w->forEachMethod([&](const std::string& svc, const std::string& m, const std::string&, const MethodStats& s) {
      auto p = "grpc." + svc + "." + m + ".";
      values[p + "started"] += s.started.value();
      for (size_t code = 0; code < s.handled.size(); ++code) {
        if (s.handled[code].value() > 0) {
          values[p + "handled." + std::string(statusCodeName(static_cast<StatusCode>(code)))] += s.handled[code].value();
        }
      }
      values[p + "msg_received"] += s.msg_received.value();
      values[p + "msg_sent"] += s.msg_sent.value();
    });
    w->forEachFilterCounter([&](const std::string& n, const Counter& c) {
      values["filter." + n] += static_cast<int64_t>(c.value());
    });
  }
  for (const WorkerStats* w : workers) {
    values["loop.spin_polls"] += static_cast<int64_t>(w->loop().spin_polls.value());
    values["loop.spin_polls_with_work"] += static_cast<int64_t>(w->loop().spin_polls_with_work.value());
  }
  if (auto allocations = allocation_counter::current()) values["process.allocations"] = static_cast<int64_t>(*allocations);
  values["process.heap_bytes"] = static_cast<int64_t>(allocation_counter::heapBytesInUse());
  values["process.pooled_buffer_bytes"] = static_cast<int64_t>(buffer_pool::pooledBytes());
  if (overload != nullptr && overload->enabled()) {
    values["overload.heap_bytes"] = static_cast<int64_t>(overload->heapBytes());
    values["overload.max_heap_bytes"] = static_cast<int64_t>(overload->maxHeapBytes());
    values["overload.refusing_calls"] = overload->refusingCalls() ? 1 : 0;
    values["overload.refusing_connections"] = overload->refusingConnections() ? 1 : 0;
  }
  std::string out;
  for (const auto& [k, v] : values) out += fmt::format("{}: {}\n", k, v);
  return out;
}

std::optional<StatsQuery> parseStatsQuery(const std::string& query, std::string& error) {
  StatsQuery out;
  size_t start = 0;
  while (start <= query.size() && !query.empty()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const std::string_view param = std::string_view(query).substr(start, end - start);
    const size_t eq = param.find('=');
    const std::string_view key = param.substr(0, eq);
    const std::string value = eq == std::string_view::npos ? "" : grpc_headers::percentDecode(param.substr(eq + 1));
    if (key == "filter") {
      if (eq == std::string_view::npos) {
        error = "filter needs a pattern: filter=REGEX";
        return std::nullopt;
      }
      if (out.filter) {
        error = "filter given twice";
        return std::nullopt;
      }
      out.filter = Regex::compile(value, error);
      if (!out.filter) return std::nullopt;
    } else if (key == "usedonly") {
      // A flag, as in Envoy; "usedonly=0" or "=false" must not turn it on.
      if (value == "0" || value == "false") {
        out.used_only = false;
      } else if (value.empty() || value == "1" || value == "true") {
        out.used_only = true;
      } else {
        error = fmt::format("usedonly takes no value, or 1/true or 0/false, not \"{}\"", value);
        return std::nullopt;
      }
    } else if (!param.empty()) {  // "a&&b" and a trailing '&' leave empty ones
      error = fmt::format("unknown parameter \"{}\" (known: filter=REGEX, usedonly)", key);
      return std::nullopt;
    }
    start = end + 1;
  }
  return out;
}

std::string filterStatsText(const std::string& text, const StatsQuery& query) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line = std::string_view(text).substr(start, end - start);
    const size_t colon = line.rfind(": ");
    const std::string_view name = line.substr(0, colon);
    const bool keep = (!query.filter || query.filter->search(name)) &&
                      (!query.used_only || colon == std::string_view::npos || line.substr(colon + 2) != "0");
    if (keep) {
      out += line;
      out += '\n';
    }
    start = end + 1;
  }
  return out;
}

std::string filterPrometheus(std::string text, const StatsQuery& query) {
  if (!query.filter) return text;
  // Families are "# HELP name ...", "# TYPE name ...", then their samples.
  std::string out;
  bool keep = false;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line = std::string_view(text).substr(start, end - start);
    if (line.starts_with("# HELP ")) {
      const std::string_view rest = line.substr(7);
      keep = query.filter->search(rest.substr(0, rest.find(' ')));
    }
    if (keep) {
      out += line;
      out += '\n';
    }
    start = end + 1;
  }
  return out;
}

}  // namespace sluice
