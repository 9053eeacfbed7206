#include "listeners/gateway.h"

#include <signal.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/off_loop_work.h"
#include "core/open_file_limit.h"
#include "core/overload.h"
#include "core/registry.h"
#include "core/stats.h"
#include "core/thread_scheduling.h"
#include "core/user_code.h"
#include "listeners/connection_balancer.h"
#include "listeners/reload_resolver.h"
#include "listeners/stats_render.h"
#include "listeners/worker.h"
#include "upstream/cluster.h"
#include "upstream/cluster_manager.h"
#include "upstream/endpoint.h"

namespace sluice {
namespace {

void onSignalBridge(uv_signal_t* h, int signum) noexcept {
  if (h->data != nullptr) static_cast<Gateway*>(h->data)->onSignal(signum);
}
void freeSignal(uv_handle_t* h) noexcept { delete reinterpret_cast<uv_signal_t*>(h); }

// Keys whose values are secrets in any filter's config, including header
// names whose values a filter sets (metadata's `authorization`, `x-api-key`).
bool isSecretKey(const std::string& key) {
  static const std::regex kSecret("(secret|password|passwd|token|api[_-]?keys?|private|credential|authorization|cookie)",
                                  std::regex::icase);
  return std::regex_search(key, kSecret);
}

// A JSON Web Key's private or symmetric members (RFC 7518 §6): "k" of an
// inline HS256 key, "d", "p", ... of an RSA or EC private key.
bool isPrivateJwkMember(const std::string& key) {
  static const std::set<std::string> kPrivate = {"k", "d", "p", "q", "dp", "dq", "qi", "oth"};
  return kPrivate.count(key) != 0;
}

void redact(nlohmann::json& j) {
  if (j.is_object()) {
    const bool jwk = j.contains("kty");
    for (auto& [key, value] : j.items()) {
      // A switch or a number under such a name (forward_credentials: true)
      // is a setting an operator checks, not a secret.
      const bool setting = value.is_boolean() || value.is_number();
      if (!setting && (isSecretKey(key) || (jwk && isPrivateJwkMember(key)))) {
        value = "[redacted]";
      } else {
        redact(value);
      }
    }
  } else if (j.is_array()) {
    for (auto& v : j) redact(v);
  }
}

AdminLimits adminLimits(const GatewayConfig& config) {
  return {config.admin_max_connections, config.admin_request_timeout_ms, config.admin_max_pending_answer_bytes};
}

AdminResponse text(int status, std::string body) { return {status, "text/plain; charset=utf-8", std::move(body), ""}; }

// Raises RLIMIT_NOFILE to the hard limit; warns when even that is below what
// the listeners' max_connections could need.
void raiseOpenFileLimitFor(const GatewayConfig& config) {
  const OpenFileLimit limit = raiseOpenFileLimit();
  if (!limit.error.empty()) {
    spdlog::warn("could not raise the open-file limit from {}: {}", limit.before, limit.error);
  } else if (limit.after != limit.before) {
    spdlog::info("raised the open-file limit from {} to {} (the hard limit)", limit.before, limit.after);
  }
  uint64_t wanted = 0;
  for (const auto& listener : config.listeners) wanted += listener.max_connections;
  if (limit.after < wanted) {
    spdlog::warn("the open-file limit ({}) is below the listeners' max_connections ({} in all): past it, "
                 "connections are refused (raise the hard limit, e.g. LimitNOFILE= or ulimit -Hn)",
                 limit.after, wanted);
  }
}

}  // namespace

Gateway::Gateway(const FilterRegistry& registry, std::string config_file)
    : registry_(registry), config_file_(std::move(config_file)), method_paths_(std::make_unique<MethodPathBudget>()) {}

Gateway::~Gateway() {
  reload_resolver_.reset();  // its lookups' answers are dropped
  for (auto* h : signals_) {
    h->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(h), freeSignal);
  }
  signals_.clear();
  drain_poll_timer_.reset();
  drain_deadline_timer_.reset();
  drain_grace_timer_.reset();
  overload_monitor_.reset();
  admin_.reset();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  // Nothing may be posted to a worker any more (a report from a generation
  // torn down). Every config goes before any worker's loop does: a filter
  // factory may own timers on every loop, and its destructor closes them.
  workers_gone_ = true;
  for (auto& w : workers_) w->releaseConfig();
  config_.reset();
  workers_.clear();
}

namespace {

// A top-level unsigned number of the config, if it is one in range (the
// loader reports it otherwise).
std::optional<uint64_t> topLevelNumber(const nlohmann::json& root, const char* key, uint64_t min, uint64_t max) {
  if (!root.is_object()) return std::nullopt;
  auto it = root.find(key);
  if (it == root.end() || !it->is_number_unsigned()) return std::nullopt;
  uint64_t v = it->get<uint64_t>();
  return v >= min && v <= max ? std::optional<uint64_t>(v) : std::nullopt;
}

}  // namespace

ReloadResolver::Answers Gateway::lookUpAtStart(const std::string& text) {
  auto root = nlohmann::json::parse(text, nullptr, false);  // invalid JSON: loading it reports the error
  if (root.is_discarded()) return {};
  std::vector<ReloadResolver::Name> names = endpointHostNames(root);
  if (names.empty()) return {};
  HostResolver::setMaxThreads(
      topLevelNumber(root, "dns_lookup_threads", 1, kMaxDnsLookupThreads).value_or(kDefaultDnsLookupThreads));
  const auto timeout = std::chrono::milliseconds(
      topLevelNumber(root, "reload_resolve_timeout_ms", 1, kMaxReloadResolveTimeoutMs).value_or(kDefaultReloadResolveTimeoutMs));
  // No worker runs yet: a loop of its own waits for the answers.
  Dispatcher dispatcher;
  ReloadResolver::Answers answers;
  ReloadResolver resolver(dispatcher, timeout, [&](ReloadResolver::Answers a) {
    answers = std::move(a);
    dispatcher.stop();
  });
  size_t lookups = resolver.start(names);
  if (lookups == 0) return {};  // no thread could start: loading resolves them
  spdlog::info("looking up {} host name(s) before loading {}", lookups, config_file_);
  dispatcher.run();
  return answers;
}

bool Gateway::load(ConfigErrors& errors) {
  auto text = readConfigFile(config_file_, errors);
  if (!text) return false;
  // Endpoint names are looked up all at once (not one after the other as the
  // config loads them): a config naming many hosts starts in the time of the
  // slowest lookup, bounded by reload_resolve_timeout_ms.
  ReloadResolver::Answers answers = lookUpAtStart(*text);
  config_ = loadConfig(*text, registry_, errors, answers.empty() ? HostLookup{} : ReloadResolver::lookupFrom(answers));
  if (!config_) return false;
  if (startup_log_level_ < 0) startup_log_level_ = static_cast<int>(spdlog::get_level());
  applyLogLevel();
  HostResolver::setMaxThreads(config_->dns_lookup_threads);
  return true;
}

size_t Gateway::workerCount(const GatewayConfig& config) {
  return config.workers != 0 ? config.workers : std::max(1u, std::thread::hardware_concurrency());
}

void Gateway::applyLogLevel() {
  if (!config_->log_level.empty()) {
    spdlog::set_level(spdlog::level::from_str(config_->log_level));
  } else if (startup_log_level_ >= 0) {
    spdlog::set_level(static_cast<spdlog::level::level_enum>(startup_log_level_));
  }
}

void Gateway::holdReloadSignals(bool hold) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &signals, nullptr);
}

Status Gateway::start() {
  raiseOpenFileLimitFor(*config_);
  const size_t n = workerCount(*config_);
  for (size_t i = 0; i < config_->listeners.size(); ++i) balancers_.push_back(std::make_unique<ConnectionBalancer>());
  for (size_t i = 0; i < n; ++i) {
    workers_.push_back(std::make_unique<Worker>(config_, balancers_, healthRole(i, n), overload_, *method_paths_));
  }
  Status s = mainWorker().start();
  if (!s.isOk()) return s;
  // The others bind the very ports the first one got (port 0 picks one).
  std::vector<uint16_t> ports;
  for (const auto& [name, addr] : mainWorker().boundListeners()) ports.push_back(addr.port);
  for (size_t i = 1; i < n; ++i) {
    s = workers_[i]->start(&ports);
    if (!s.isOk()) return s;
  }
  for (const auto& [name, addr] : mainWorker().boundListeners()) {
    spdlog::info("listener '{}' listening on {} ({} worker(s))", name, addr.toString(), n);
  }
  if (config_->admin_address) {
    admin_ = std::make_unique<AdminListener>(mainWorker().dispatcher(), *this, *config_->admin_address,
                                             adminLimits(*config_));
    s = admin_->start();
    if (!s.isOk()) return s;
  }
  for (int signum : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) {
    auto* h = new uv_signal_t;
    uv_signal_init(mainWorker().dispatcher().loop(), h);
    h->data = this;
    uv_signal_start(h, onSignalBridge, signum);
    uv_unref(reinterpret_cast<uv_handle_t*>(h));  // signals alone don't keep the loop running
    signals_.push_back(h);
  }
  holdReloadSignals(false);  // one that came during start-up goes to its handler now
  overload_monitor_ = std::make_unique<OverloadMonitor>(
      mainWorker().dispatcher(), overload_, [this]() -> const OverloadConfig& { return config_->overload; },
      [this](uint64_t bytes) {
        // Each worker frees its share from its own calls; every check
        // measures again, so what one could not free others free next time.
        const uint64_t share = bytes / workers_.size() + 1;
        forEachWorker([share](Worker& w) { w.resetLargestCalls(share); });
      });
  overload_monitor_->check();
  started_ = true;
  return Status::ok();
}

bool Gateway::writeReadyFile(const std::string& path) const {
  nlohmann::json doc;
  doc["listeners"] = nlohmann::json::object();
  for (const auto& [name, addr] : mainWorker().boundListeners()) doc["listeners"][name] = addr.toString();
  if (admin_) doc["admin"] = admin_->boundAddress().toString();
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) return false;
    out << doc.dump() << "\n";
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

void Gateway::run() {
  for (size_t i = 1; i < workers_.size(); ++i) {
    threads_.emplace_back([w = workers_[i].get(), i] {
      nameCurrentThread(fmt::format("sluice-w{}", i));  // worker 0 is the process's own thread
      w->run();
    });
  }
  mainWorker().run();
  for (auto& t : threads_) t.join();
  threads_.clear();
  // Every worker has stopped: no filter runs any more. Each factory is closed
  // once, here, rather than by each worker while the others still use it.
  for (const auto& listener : config_->listeners) {
    for (const auto& filter : listener.filters) {
      runUserCode(fmt::format("filter \"{}\" closing", filter.name), [&] { filter.factory->close(); });
    }
  }
  // Retired factories may have left work to finish (lines of an old access
  // log): it is done before the process may exit.
  waitForOffLoopWork();
}

void Gateway::forEachWorker(const std::function<void(Worker&)>& fn) {
  for (size_t i = 1; i < workers_.size(); ++i) {
    Worker* w = workers_[i].get();
    w->dispatcher().post([w, fn] { fn(*w); });
  }
  fn(mainWorker());
}

int64_t Gateway::activeStreams() const {
  int64_t n = 0;
  for (const auto& w : workers_) {
    w->stats().forEachListener([&](const std::string&, const ListenerStats& s) { n += s.downstream_rq_active.value(); });
  }
  return n;
}

int64_t Gateway::openConnections() const {
  int64_t n = 0;
  for (const auto& w : workers_) {
    w->stats().forEachListener([&](const std::string&, const ListenerStats& s) { n += s.downstream_cx_active.value(); });
  }
  return n;
}

bool Gateway::ready() const { return started_ && !draining_ && !finished_; }

void Gateway::onSignal(int signum) {
  if (signum == SIGUSR1) {
    if (finished_) return;  // the filters have closed their files
    spdlog::info("{}: reopening log files", strsignal(signum));
    reopenLogs();
    return;
  }
  if (signum == SIGHUP) {
    if (finished_ || draining_) {
      spdlog::info("SIGHUP ignored: the gateway is {}", finished_ ? "stopping" : "draining");
      return;
    }
    if (reload_resolver_) {
      // The reload under way read the file before this signal: read it again after.
      spdlog::info("SIGHUP while a reload looks up host names: reloading again once it is done");
      reload_again_ = true;
      return;
    }
    reload({});
    return;
  }
  if (draining_) {
    spdlog::warn("second signal ({}): stopping now", strsignal(signum));
    stopNow();
    return;
  }
  startDrain(strsignal(signum));
}

void Gateway::startDrain(const std::string& why) {
  if (draining_ || finished_) return;
  draining_ = true;
  spdlog::info("{}: draining {} active stream(s) on {} connection(s), up to {} ms", why, activeStreams(),
               openConnections(), config_->drain_timeout_ms);
  forEachWorker([](Worker& w) { w.startDrain(); });
  drain_poll_timer_ = std::make_unique<Timer>(mainWorker().dispatcher(), [this] { checkDrained(); });
  drain_poll_timer_->enable(std::chrono::milliseconds(50));
  drain_deadline_timer_ = std::make_unique<Timer>(mainWorker().dispatcher(), [this] { onDrainTimeout(); });
  drain_deadline_timer_->enable(std::chrono::milliseconds(config_->drain_timeout_ms));
}

void Gateway::onDrainTimeout() {
  // Each call still open gets a status saying why it ended, not a socket
  // closed under it: a client that reads has it (and the final GOAWAY) in
  // a round trip, and its connection closes, which checkDrained() sees. One
  // that does not read is closed after kDrainTimeoutGrace all the same.
  spdlog::warn("drain timeout: ending {} stream(s) still active with UNAVAILABLE", activeStreams());
  const std::string why = fmt::format("the gateway is shutting down: drain_timeout_ms ({}) passed before the call ended",
                                      config_->drain_timeout_ms);
  forEachWorker([why](Worker& w) { w.endCallsForShutdown(why); });
  drain_grace_timer_ = std::make_unique<Timer>(mainWorker().dispatcher(), [this] {
    spdlog::warn("closing {} connection(s) whose clients did not read their calls' end", openConnections());
    finish();
  });
  drain_grace_timer_->enable(kDrainTimeoutGrace);
}

void Gateway::checkDrained() {
  if (openConnections() == 0) {
    spdlog::info("drained: no connection left");
    finish();
    return;
  }
  if (++drain_ticks_ % 20 == 0) spdlog::info("draining: {} active stream(s)", activeStreams());
  drain_poll_timer_->enable(std::chrono::milliseconds(50));
}

void Gateway::stopNow() { finish(); }

void Gateway::finish() {
  if (finished_) return;
  finished_ = true;
  if (drain_poll_timer_) drain_poll_timer_->disable();
  if (drain_deadline_timer_) drain_deadline_timer_->disable();
  if (drain_grace_timer_) drain_grace_timer_->disable();
  if (admin_) admin_->stop();
  if (overload_monitor_) overload_monitor_->stop();
  // A reload still looking up host names would keep the loop (its timers)
  // and so the process alive until reload_resolve_timeout_ms; it is moot now.
  reload_again_ = false;
  if (reload_resolver_) mainWorker().dispatcher().deferredDelete(std::move(reload_resolver_));
  forEachWorker([](Worker& w) { w.shutdown(); });
  // A third SIGTERM/SIGINT now kills at once; SIGUSR1 and SIGHUP stay caught
  // (ignored), so log rotation or config management cannot kill a gateway
  // that is finishing.
  for (auto* h : signals_) {
    if (h->signum != SIGUSR1 && h->signum != SIGHUP) uv_signal_stop(h);
  }
}

void Gateway::reopenLogs() {
  auto reopen = [](const GatewayConfig& config) {
    for (const auto& listener : config.listeners) {
      for (const auto& filter : listener.filters) {
        runUserCode(fmt::format("filter \"{}\" reopening its logs", filter.name),
                    [&] { filter.factory->reopenLogs(); });
      }
    }
  };
  reopen(*config_);
  for (const auto& retired : retired_configs_) {
    if (auto config = retired.lock()) reopen(*config);
  }
}

Status Gateway::configErrorsStatus(const ConfigErrors& errors) const {
  std::string detail = errors.format();
  if (!detail.empty() && detail.back() == '\n') detail.pop_back();
  return {StatusCode::InvalidArgument, fmt::format("{} error(s) in {}:\n{}", errors.size(), config_file_, detail)};
}

void Gateway::reload(ReloadDone done) {
  auto report = [this, done = std::move(done)](const Status& s) {
    if (!s.isOk()) spdlog::error("reload refused, the old config keeps serving: {}", s.message());
    if (done) done(s);
  };
  if (draining_ || finished_) return report({StatusCode::Unavailable, "the gateway is shutting down"});
  if (reload_resolver_) {
    return report({StatusCode::Aborted, "another reload is still looking up host names; try again once it is done"});
  }
  ConfigErrors errors;
  auto text = readConfigFile(config_file_, errors);
  if (!text) return report(configErrorsStatus(errors));
  std::vector<ReloadResolver::Name> names;
  auto root = nlohmann::json::parse(*text, nullptr, false);  // invalid JSON: loading it reports the error
  // The names of clusters the reload leaves unchanged are not looked up: it
  // keeps those clusters running, with their own lookups (and starts a
  // refresh of them), so a name that stopped resolving cannot refuse it.
  // Loading reads the running config's answers for them.
  if (!root.is_discarded()) names = endpointHostNames(root, config_->clusters);
  ReloadResolver::Answers running = runningAnswers(*config_);
  if (names.empty()) return report(applyReload(*text, ReloadResolver::lookupFrom(running)));
  auto resolver = std::make_unique<ReloadResolver>(
      mainWorker().dispatcher(), std::chrono::milliseconds(config_->reload_resolve_timeout_ms),
      [this, text = *text, report, running = std::move(running)](ReloadResolver::Answers answers) {
        mainWorker().dispatcher().deferredDelete(std::move(reload_resolver_));
        answers.insert(running.begin(), running.end());  // the fresh answer wins where both have a name
        report(applyReload(text, ReloadResolver::lookupFrom(answers)));
        if (reload_again_) {
          reload_again_ = false;
          reload({});
        }
      });
  size_t lookups = resolver->start(names);
  if (lookups == 0) return report(applyReload(*text, {}));  // no thread could start: loading resolves
  spdlog::info("reload: looking up {} host name(s) before loading {}", lookups, config_file_);
  reload_resolver_ = std::move(resolver);
}

ReloadResolver::Answers Gateway::runningAnswers(const GatewayConfig& config) {
  ReloadResolver::Answers answers;
  for (const auto& c : config.clusters) {
    for (const auto& ep : c.endpoints) {
      if (ep.isHostName()) answers.emplace(ReloadResolver::Name{ep.host, ep.address.port}, ep.addresses);
    }
  }
  return answers;
}

Status Gateway::applyReload(const std::string& text, const HostLookup& lookup) {
  if (draining_ || finished_) return {StatusCode::Unavailable, "the gateway is shutting down"};
  ConfigErrors errors;
  auto config = loadConfig(text, registry_, errors, lookup);
  if (!config) return configErrorsStatus(errors);
  if (config->admin_address.has_value() != config_->admin_address.has_value() ||
      (config->admin_address && config->admin_address->toString() != config_->admin_address->toString())) {
    return {StatusCode::FailedPrecondition, "config error at /admin: the admin address cannot change on reload (restart instead)"};
  }
  if (const size_t wanted = workerCount(*config); wanted != workers_.size()) {
    return {StatusCode::FailedPrecondition,
            fmt::format("config error at /workers: workers cannot change on reload ({} running, {} in the new "
                        "config; restart instead)",
                        workers_.size(), wanted)};
  }
  // The main worker checks the new config against the running listeners;
  // the others then take it too.
  Status s = mainWorker().reload(config);
  if (!s.isOk()) return s;
  for (size_t i = 1; i < workers_.size(); ++i) {
    Worker* w = workers_[i].get();
    w->dispatcher().post([w, config] { (void)w->reload(config); });
  }
  if (admin_) admin_->setLimits(adminLimits(*config));
  std::erase_if(retired_configs_, [](const auto& c) { return c.expired(); });
  retired_configs_.push_back(config_);
  config_ = std::move(config);
  applyLogLevel();
  HostResolver::setMaxThreads(config_->dns_lookup_threads);
  if (overload_monitor_) overload_monitor_->check();  // the new overload settings, at once
  spdlog::info("config reloaded from {}", config_file_);
  return Status::ok();
}

HealthRole Gateway::healthRole(size_t worker, size_t workers) {
  // The first worker checks; every result goes to the others' loops, where
  // each applies it to its current config's endpoint of that key. Any
  // worker's ejection goes to every worker's loop the same way, its own
  // included. workers_ is complete, and no longer changes, by the time a
  // check finishes or a call fails.
  HealthRole role;
  role.checks = worker == 0;
  if (worker == 0 && workers > 1) {
    role.report = [this](const std::string& cluster, const std::string& key, const SocketAddress& address,
                         bool healthy) {
      postToClusters(0, cluster,
                     [key, address, healthy](Cluster& c) { c.applyHealthReport(key, address, healthy); });
    };
  }
  // To every worker, this one included: a call still finishing on an older
  // config's cluster may be what ejected the endpoint, and the current
  // config's cluster here must hear of it too.
  role.share_ejection = [this](const std::string& cluster, const std::string& key, const SocketAddress& address,
                               Endpoint::Clock::time_point until) {
    postToClusters(kNoWorker, cluster,
                   [key, address, until](Cluster& c) { c.applyEjectionReport(key, address, until); });
  };
  return role;
}

void Gateway::postToClusters(size_t except, const std::string& cluster, std::function<void(Cluster&)> apply) {
  if (workers_gone_) return;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (i == except) continue;
    Worker* w = workers_[i].get();
    w->dispatcher().post([w, cluster, apply] {
      if (Cluster* c = w->current()->clusterManager().find(cluster)) apply(*c);
    });
  }
}

std::string Gateway::clustersJson() const {
  nlohmann::json out = nlohmann::json::array();
  auto now = Endpoint::Clock::now();
  // Calls in flight by endpoint, every worker's, also on endpoints a reload
  // removed (listed apart, so that draining a backend by removing it shows
  // its last calls end).
  std::map<std::pair<std::string, std::string>, int64_t> active_by_endpoint;
  for (const auto& w : workers_) {
    w->stats().forEachEndpointActive([&](std::string_view cluster, std::string_view endpoint, int64_t active) {
      active_by_endpoint[{std::string(cluster), std::string(endpoint)}] += active;
    });
  }
  // The main worker's view: its health checks and any worker's ejections are every worker's.
  for (const auto& c : mainWorker().current()->clusterManager().clusters()) {
    nlohmann::json cj;
    cj["name"] = c->name();
    cj["active_requests"] = c->active_requests;
    cj["active_retries"] = c->active_retries;
    cj["connections"] = c->connections;
    cj["endpoints"] = nlohmann::json::array();
    for (const auto& ep : c->endpoints()) {
      nlohmann::json e;
      e["address"] = ep->describe();
      e["host"] = ep->host();
      e["weight"] = ep->weight();
      e["healthy"] = ep->available(now);
      e["health_check"] = ep->activeHealthy() ? "healthy" : "unhealthy";
      e["ejected"] = ep->ejected(now);
      e["ejections"] = ep->ejections();
      auto it = active_by_endpoint.find({c->name(), ep->key()});
      e["active_requests"] = it == active_by_endpoint.end() ? 0 : it->second;
      if (it != active_by_endpoint.end()) active_by_endpoint.erase(it);
      cj["endpoints"].push_back(std::move(e));
    }
    cj["removed_endpoints"] = nlohmann::json::array();
    for (const auto& [key, active] : active_by_endpoint) {
      if (key.first != c->name() || active == 0) continue;
      cj["removed_endpoints"].push_back({{"endpoint", key.second}, {"active_requests", active}});
    }
    out.push_back(std::move(cj));
  }
  return out.dump(2) + "\n";
}

std::string Gateway::configDumpJson() const {
  nlohmann::json j = nlohmann::json::parse(config_->source_text, nullptr, false);
  redact(j);
  return j.dump(2) + "\n";
}

void Gateway::handleAdmin(const std::string& method, const std::string& path, const std::string& query,
                          AdminReply reply) {
  if (path != "/reload" || method != "POST") {
    reply(answerAdmin(method, path, query));
    return;
  }
  reload([reply = std::move(reply)](const Status& s) {
    if (s.isOk()) {
      reply(text(200, "reloaded\n"));
      return;
    }
    // Another reload under way is a conflict to retry; a gateway shutting
    // down is unavailable (nothing is wrong with the config); anything else
    // is the config's fault.
    const int status = s.code() == StatusCode::Aborted              ? 409
                       : s.code() == StatusCode::Unavailable        ? 503
                                                                    : 400;
    reply(text(status, fmt::format("reload refused, the old config keeps serving:\n{}\n", s.message())));
  });
}

AdminResponse Gateway::answerAdmin(const std::string& method, const std::string& path, const std::string& query) {
  struct Route {
    const char* path;
    const char* method;
  };
  static const Route kRoutes[] = {{"/stats", "GET"},       {"/stats/prometheus", "GET"}, {"/ready", "GET"},
                                  {"/healthz", "GET"},     {"/clusters", "GET"},         {"/config_dump", "GET"},
                                  {"/drain", "POST"},      {"/reload", "POST"},          {"/", "GET"}};
  const Route* route = nullptr;
  for (const auto& r : kRoutes) {
    if (path == r.path) route = &r;
  }
  if (route == nullptr) return text(404, fmt::format("no admin endpoint {}\n", path));
  bool head_like = method == "HEAD" && std::string(route->method) == "GET";
  if (method != route->method && !head_like) {
    AdminResponse r = text(405, fmt::format("{} needs {}\n", path, route->method));
    r.allow = std::string(route->method) == "GET" ? "GET, HEAD" : route->method;  // every GET answers HEAD too
    return r;
  }
  std::vector<const WorkerStats*> stats;
  for (const auto& w : workers_) stats.push_back(&w->stats());
  if (path == "/stats" || path == "/stats/prometheus") {
    std::string error;
    auto stats_query = parseStatsQuery(query, error);
    if (stats_query && stats_query->used_only && path != "/stats") {
      stats_query.reset();
      error = "usedonly is for /stats (Prometheus wants every series, zeros included)";
    }
    if (!stats_query) return text(400, fmt::format("{}: {}\n", path, error));
    const ClusterManager& clusters = mainWorker().current()->clusterManager();
    if (path == "/stats") return text(200, filterStatsText(renderStatsText(stats, &overload_, &clusters), *stats_query));
    return {200, "text/plain; version=0.0.4; charset=utf-8",
            filterPrometheus(renderPrometheus(stats, &clusters, &overload_),
                             *stats_query),
            ""};
  }
  if (path == "/ready") {
    if (ready() && overload_.refusingConnections()) return text(503, "overloaded\n");
    return ready() ? text(200, "ready\n") : text(503, draining_ ? "draining\n" : "not ready\n");
  }
  if (path == "/healthz") return text(200, "ok\n");
  if (path == "/clusters") return {200, "application/json", clustersJson(), ""};
  if (path == "/config_dump") return {200, "application/json", configDumpJson(), ""};
  if (path == "/drain") {
    startDrain("POST /drain");
    return text(200, fmt::format("draining {} active stream(s)\n", activeStreams()));
  }
  return text(200,
              "sluice admin: /stats /stats/prometheus /ready /healthz /clusters /config_dump "
              "POST /drain POST /reload\n");
}

}  // namespace sluice
