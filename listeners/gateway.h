// Gateway: the whole process's runtime: config loading, the worker, the admin
// endpoint, signals, graceful drain and live reload. The `sluice` binary and
// embedding applications create one, after registering their filters.
//
// Lifecycle: load() -> start() -> run() (returns once stopped). SIGTERM/SIGINT
// or POST /drain start a graceful drain (GOAWAY, active streams finish up to
// drain_timeout_ms, late streams get UNAVAILABLE); a second signal stops at
// once. SIGHUP or POST /reload reload the config file: new streams use the new
// routes, filters and clusters; a config with errors is refused and logged.
// SIGUSR1 asks every filter factory to reopen its log files (log rotation).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/config_errors.h"
#include "core/overload.h"
#include "core/status.h"
#include "core/timer.h"
#include "listeners/admin_listener.h"
#include "listeners/reload_resolver.h"
#include "upstream/health_role.h"

struct uv_signal_s;

namespace sluice {

class Cluster;
class ConnectionBalancer;
class FilterRegistry;
class MethodPathBudget;
class Worker;

class Gateway final : public AdminHandler {
 public:
  Gateway(const FilterRegistry& registry, std::string config_file);
  ~Gateway() override;

  // Reads and validates the config file; false with every error in `errors`.
  bool load(ConfigErrors& errors);
  // Raises the process's open-file limit to its hard limit (a process-wide
  // change, logged), binds listeners and the admin endpoint, installs signal
  // handlers.
  Status start();
  // SIGHUP and SIGUSR1 are never fatal, but until start() installs their
  // handlers (after the config is loaded, its host names looked up, its ports
  // bound: seconds, with a slow resolver) the default action would end the
  // process. A main holds them (true) before it starts any thread; start()
  // lets them through (false), and one sent meanwhile is handled then.
  static void holdReloadSignals(bool hold);
  // Writes {"listeners":{NAME:"IP:PORT"},"admin":"IP:PORT"} atomically.
  bool writeReadyFile(const std::string& path) const;
  void run();

  void startDrain(const std::string& why);
  void stopNow();
  // Reloads the config file (SIGHUP, POST /reload). Its endpoints' host names
  // are looked up off the loop first (ReloadResolver), so a slow resolver
  // delays the reload, not the calls; `done` (may be empty) gets the outcome
  // on worker 0's loop, which is also logged. One reload at a time: another
  // asked for meanwhile is refused with ABORTED (a SIGHUP meanwhile is kept
  // and reloads again once the first is done).
  using ReloadDone = std::function<void(const Status&)>;
  void reload(ReloadDone done);
  // FilterFactory::reopenLogs() on every filter of the current config, and of
  // older configs still serving calls started before a reload.
  void reopenLogs();
  bool ready() const;

  void handleAdmin(const std::string& method, const std::string& path, const std::string& query,
                   AdminReply reply) override;
  void onSignal(int signum);  // libuv bridge only

 private:
  void checkDrained();
  void onDrainTimeout();
  // Loads `text` as the new config (host names through `lookup`) and hands
  // it to every worker.
  Status applyReload(const std::string& text, const HostLookup& lookup);
  // The addresses `config` loaded its endpoints' host names with: what a
  // reload loads the clusters it keeps with, without looking them up.
  static ReloadResolver::Answers runningAnswers(const GatewayConfig& config);
  // Before the first load: looks every endpoint host name of `text` up at
  // once, on a loop of its own; the answers for loading it.
  ReloadResolver::Answers lookUpAtStart(const std::string& text);
  Status configErrorsStatus(const ConfigErrors& errors) const;
  // Every admin endpoint but POST /reload, which answers later.
  AdminResponse answerAdmin(const std::string& method, const std::string& path, const std::string& query);
  Worker& mainWorker() const { return *workers_[0]; }
  // `fn` on every worker's own thread (at once for the main worker).
  void forEachWorker(const std::function<void(Worker&)>& fn);
  // Summed over workers from their stats (safe from any thread).
  int64_t activeStreams() const;
  int64_t openConnections() const;
  void finish();
  std::string clustersJson() const;
  // Worker `worker` of `workers`: the first runs the health checks and
  // reports each result to the others, which run none; each posts its
  // outlier ejections to every worker (itself included: its current config).
  HealthRole healthRole(size_t worker, size_t workers);
  // Runs `apply` on the loop of every worker but `except` (kNoWorker: every
  // one), on its current config's cluster named `cluster` (if it has one).
  static constexpr size_t kNoWorker = SIZE_MAX;
  void postToClusters(size_t except, const std::string& cluster, std::function<void(Cluster&)> apply);
  std::string configDumpJson() const;
  // workers from the config, or one per core.
  static size_t workerCount(const GatewayConfig& config);
  // The config's log_level, or the command line's when it has none.
  void applyLogLevel();

  const FilterRegistry& registry_;
  std::string config_file_;
  GatewayConfigConstPtr config_;
  // Configs replaced by reloads; alive while calls that began on them run.
  std::vector<std::weak_ptr<const GatewayConfig>> retired_configs_;
  // Read by every worker: declared before them, so that it outlives them.
  OverloadState overload_;
  // The workers' method series, bounded together; declared before workers_,
  // which use it until they are gone.
  std::unique_ptr<MethodPathBudget> method_paths_;
  std::unique_ptr<OverloadMonitor> overload_monitor_;  // on worker 0's loop
  // workers_[0] runs on the caller's thread (with the admin endpoint and the
  // signals); the others each on a thread of their own.
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> workers_gone_{false};  // set as ~Gateway starts destroying them
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<ConnectionBalancer>> balancers_;  // per listener; outlive the workers
  std::unique_ptr<AdminListener> admin_;
  // A reload waiting for its host names; declared after admin_ and the
  // workers so that it goes first (its answer uses both).
  std::unique_ptr<ReloadResolver> reload_resolver_;
  bool reload_again_ = false;  // a SIGHUP came while reload_resolver_ was busy
  // The log level before any config set one (the command line's), which a
  // reloaded config without log_level goes back to. An spdlog level.
  int startup_log_level_ = -1;
  std::vector<uv_signal_s*> signals_;
  TimerPtr drain_poll_timer_;
  TimerPtr drain_deadline_timer_;
  // After drain_timeout_ms, the calls still open were ended with a status:
  // how long their clients have to read it before the sockets close.
  TimerPtr drain_grace_timer_;
  static constexpr std::chrono::milliseconds kDrainTimeoutGrace{1000};
  bool started_ = false;
  bool draining_ = false;
  bool finished_ = false;
  int drain_ticks_ = 0;
};

}  // namespace sluice
