#include "core/stats.h"

#include <algorithm>
#include <array>
#include <stdexcept>

#include <fmt/format.h>

namespace sluice {

void Histogram::record(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].inc();
  count_.inc();
  sum_ns_.inc(static_cast<uint64_t>(seconds > 0 ? seconds * 1e9 : 0));
}

std::string_view localReplyReasonName(LocalReplyReason r) {
  switch (r) {
    case LocalReplyReason::NoRoute: return "no_route";
    case LocalReplyReason::UpstreamFailure: return "upstream_failure";
    case LocalReplyReason::Deadline: return "deadline";
    case LocalReplyReason::BadRequest: return "bad_request";
    case LocalReplyReason::MessageTooLarge: return "message_too_large";
    case LocalReplyReason::Filter: return "filter";
    case LocalReplyReason::Draining: return "draining";
    case LocalReplyReason::SlowReader: return "slow_reader";
    case LocalReplyReason::FilterError: return "filter_error";
    case LocalReplyReason::Fault: return "fault";
    case LocalReplyReason::Overload: return "overload";
    case LocalReplyReason::Count: break;
  }
  return "unknown";
}

namespace {

template <typename T, typename M>
T& findOrCreate(std::mutex& mutex, M& map, std::string_view name) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = map.find(name);
  if (it == map.end()) it = map.emplace(std::string(name), std::make_unique<T>()).first;
  return *it->second;
}

}  // namespace

ListenerStats& WorkerStats::listener(std::string_view name) {
  return findOrCreate<ListenerStats>(mutex_, listeners_, name);
}

ClusterStats& WorkerStats::cluster(std::string_view name) { return findOrCreate<ClusterStats>(mutex_, clusters_, name); }

namespace {
std::string endpointKey(std::string_view cluster, std::string_view endpoint) {
  std::string key(cluster);
  key += '\0';
  key += endpoint;
  return key;
}
}  // namespace

Gauge& WorkerStats::holdEndpointGauge(std::string_view cluster, std::string_view endpoint) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& held = endpoints_[endpointKey(cluster, endpoint)];
  if (!held) held = std::make_unique<HeldGauge>();
  ++held->holders;
  return held->gauge;
}

void WorkerStats::releaseEndpointGauge(std::string_view cluster, std::string_view endpoint) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = endpoints_.find(endpointKey(cluster, endpoint));
  if (it == endpoints_.end() || --it->second->holders > 0) return;
  endpoints_.erase(it);  // only read by key, under the lock: no reference outlives it
}

int64_t WorkerStats::endpointActive(std::string_view cluster, std::string_view endpoint) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = endpoints_.find(endpointKey(cluster, endpoint));
  return it == endpoints_.end() ? 0 : it->second->gauge.value();
}

namespace {
// Words promtool's lint refuses in a metric name (its type, an abbreviated
// unit), and "total", which the Prometheus name already ends with.
constexpr std::array<std::string_view, 20> kRefusedWords = {
    "counter", "gauge", "histogram", "summary", "untyped", "total", "s",  "ms", "us", "ns",
    "sec",     "b",     "kb",        "mb",      "gb",      "tb",    "pb", "m",  "h",  "d"};

std::string_view filterCounterNameProblem(std::string_view name) {
  if (name.empty() || name.size() > WorkerStats::kMaxFilterCounterNameBytes) return "is empty or too long";
  if (name[0] < 'a' || name[0] > 'z') return "does not start with a lower-case letter";
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return "has a character other than [a-z0-9_]";
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = std::min(name.find('_', start), name.size());
    std::string_view word = name.substr(start, end - start);
    if (word.empty()) return "has an empty word (\"__\" or a '_' at either end)";
    for (auto refused : kRefusedWords) {
      if (word == refused) return "has a word Prometheus names must not have (a metric type, \"total\", or an abbreviated unit: spell it out, as in \"seconds\")";
    }
    start = end + 1;
  }
  return {};
}
}  // namespace

Counter& WorkerStats::filterCounter(std::string_view name) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = filter_counters_.find(name);
  if (it != filter_counters_.end()) return *it->second;
  // Checked once, when first asked for: a name in the map has passed.
  if (auto problem = filterCounterNameProblem(name); !problem.empty()) {
    throw std::invalid_argument(fmt::format("filter counter name \"{}\" {}", name, problem));
  }
  if (filter_counters_.size() >= kMaxFilterCounters) name = kOtherFilterCounter;
  return *filter_counters_.try_emplace(std::string(name), std::make_unique<Counter>()).first->second;
}

MethodStats& WorkerStats::method(std::string_view service, std::string_view method, std::string_view type) {
  std::lock_guard<std::mutex> lock(mutex_);
  return methodLocked(service, method, type);
}

MethodStats& WorkerStats::methodLocked(std::string_view service, std::string_view method, std::string_view type) {
  auto key = std::make_tuple(std::string(service), std::string(method), std::string(type));
  auto it = methods_.find(key);
  if (it == methods_.end()) {
    auto stats = std::make_unique<MethodStats>();
    // "(other)" counts paths whose type nobody learns: nothing to look up.
    stats->type_known = type != "unknown" || service == kOtherMethod;
    stats->client_streams = type == "client_stream" || type == "bidi_stream" || service == kOtherMethod;
    stats->server_streams = type == "server_stream" || type == "bidi_stream" || service == kOtherMethod;
    it = methods_.emplace(std::move(key), std::move(stats)).first;
  }
  return *it->second;
}

bool MethodPathBudget::admit(std::string_view path, bool proven) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = paths_.find(path); it != paths_.end()) {
    if (proven && !it->second) {
      it->second = true;
      --unproven_;
    }
    return true;
  }
  if (paths_.size() >= WorkerStats::kMaxMethodPaths) return false;
  if (!proven && unproven_ >= WorkerStats::kMaxUnprovenMethodPaths) return false;
  paths_.emplace(std::string(path), proven);
  if (!proven) ++unproven_;
  return true;
}

MethodStats* WorkerStats::methodForCall(std::string_view path, std::string_view service, std::string_view method,
                                        PathAdmission admit, bool* unproven) {
  std::lock_guard<std::mutex> lock(mutex_);
  const bool proven = admit == PathAdmission::Proven;
  auto it = paths_.find(path);
  if (it == paths_.end()) {
    if (admit == PathAdmission::Known) return nullptr;
    // With a budget shared by the workers, it alone bounds unproven paths
    // (another worker may have proven one this worker still counts).
    if (paths_.size() >= kMaxMethodPaths || path.size() > kMaxMethodPathBytes ||
        (!proven && path_budget_ == nullptr && unproven_paths_ >= kMaxUnprovenMethodPaths) ||
        (path_budget_ != nullptr && !path_budget_->admit(path, proven))) {
      return &otherLocked();
    }
    it = paths_.emplace(std::string(path), PathEntry{}).first;
    it->second.proven = proven;
    if (!proven) ++unproven_paths_;
  } else if (proven && !it->second.proven) {
    it->second.proven = true;
    --unproven_paths_;
    if (path_budget_ != nullptr) path_budget_->admit(path, true);
  }
  if (unproven != nullptr) *unproven = !it->second.proven;
  if (it->second.current == nullptr) it->second.current = &methodLocked(service, method, it->second.learned);
  return it->second.current;
}

MethodStats& WorkerStats::otherMethod() {
  std::lock_guard<std::mutex> lock(mutex_);
  return otherLocked();
}

MethodStats& WorkerStats::otherLocked() {
  if (other_ == nullptr) other_ = &methodLocked(kOtherMethod, kOtherMethod, "unknown");
  return *other_;
}

void WorkerStats::learnType(std::string_view path, bool client_streams, bool server_streams) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = paths_.find(path);
  if (it == paths_.end()) return;
  const std::string& learned = it->second.learned;
  client_streams = client_streams || learned == "client_stream" || learned == "bidi_stream";
  server_streams = server_streams || learned == "server_stream" || learned == "bidi_stream";
  const std::string_view type = client_streams && server_streams ? "bidi_stream"
                                : client_streams                  ? "client_stream"
                                : server_streams                  ? "server_stream"
                                                                  : "unary";
  if (learned == type) return;
  it->second.learned = std::string(type);
  it->second.current = nullptr;  // made by the next call, so no empty series appears
}

}  // namespace sluice
