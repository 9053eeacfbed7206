#include "listeners/worker.h"

#include <algorithm>
#include <atomic>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/thread_scheduling.h"
#include "core/overload.h"
#include "listeners/downstream_stream.h"
#include "listeners/grpc_listener.h"
#include "upstream/cluster_manager.h"

namespace sluice {

Worker::Worker(GatewayConfigConstPtr config, const std::vector<std::unique_ptr<ConnectionBalancer>>& balancers,
               HealthRole health_role, const OverloadState& overload, MethodPathBudget& method_paths)
    : health_role_(std::move(health_role)),
      overload_(overload),
      dispatcher_(std::make_unique<Dispatcher>()),
      stats_(std::make_unique<WorkerStats>()),
      current_(std::make_shared<Generation>(*dispatcher_, *stats_, std::move(config), health_role_)) {
  stats_->shareMethodPaths(&method_paths);
  dispatcher_->setIdleSpin(current_->config().worker_spin_polls, &stats_->loop());
  const auto& listeners = current_->config().listeners;
  for (size_t i = 0; i < listeners.size(); ++i) {
    listeners_.push_back(
        std::make_unique<GrpcListener>(*this, listeners[i].name, listeners[i].address, *balancers[i]));
  }
}

Worker::~Worker() {
  releaseConfig();
  dispatcher_.reset();
}

void Worker::releaseConfig() {
  shutdown();
  listeners_.clear();
  dispatcher_->drainPostedWork();
  current_.reset();
  dispatcher_->drainPostedWork();
}

Status Worker::start(const std::vector<uint16_t>* ports) {
  for (size_t i = 0; i < listeners_.size(); ++i) {
    Status s = listeners_[i]->start(ports != nullptr ? (*ports)[i] : 0);
    if (!s.isOk()) return s;
  }
  return Status::ok();
}

std::vector<std::pair<std::string, SocketAddress>> Worker::boundListeners() const {
  std::vector<std::pair<std::string, SocketAddress>> out;
  for (const auto& l : listeners_) out.emplace_back(l->name(), l->boundAddress());
  return out;
}

void Worker::resetLargestCalls(uint64_t bytes) {
  std::vector<std::pair<uint64_t, DownstreamStream*>> calls;
  for (const auto& l : listeners_) l->collectCallsHolding(kMinResetCallBytes, calls);
  std::sort(calls.begin(), calls.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  uint64_t freed = 0;
  // Resetting a call frees its memory but deletes nothing now (deferred):
  // the pointers stay good through the loop.
  for (const auto& [held, call] : calls) {
    if (freed >= bytes) break;
    if (call->resetForOverload(kMinResetCallBytes)) freed += held;
  }
}

void Worker::run() {
  applySchedSlice(current_->config().worker_sched_slice_us);
  dispatcher_->run();
}

void Worker::applySchedSlice(uint32_t slice_us) {
  bool first = !sched_slice_us_.has_value();
  sched_slice_us_ = slice_us;
  if (first && slice_us == 0) return;  // never touched: the kernel's default stands
  SchedSliceResult r = setCurrentThreadSlice(slice_us);
  // Every worker gets the same answer; one line per process is enough.
  static std::atomic<bool> explained{false};
  switch (r.kind) {
    case SchedSliceResult::Kind::Applied:
      spdlog::debug("worker thread: scheduler slice {} us", r.slice_ns / 1000);
      break;
    case SchedSliceResult::Kind::Unsupported:
      if (!explained.exchange(true)) {
        spdlog::info("worker_sched_slice_us {}: this kernel keeps its own slice (custom slices need Linux 6.12+)",
                     slice_us);
      }
      break;
    case SchedSliceResult::Kind::NotFairPolicy:
      if (!explained.exchange(true)) {
        spdlog::info("worker_sched_slice_us {}: the workers run under a real-time or idle policy, which has no "
                     "slice to set", slice_us);
      }
      break;
    case SchedSliceResult::Kind::Failed:  // e.g. a sandbox without sched_setattr
      if (!explained.exchange(true)) spdlog::warn("worker_sched_slice_us {}: {}", slice_us, r.error);
      break;
  }
}

Status Worker::reload(GatewayConfigConstPtr config) {
  const auto& old_listeners = current_->config().listeners;
  if (config->listeners.size() != old_listeners.size()) {
    return {StatusCode::FailedPrecondition, "config error at /listeners: listeners cannot be added or removed by a reload (restart instead)"};
  }
  for (size_t i = 0; i < old_listeners.size(); ++i) {
    const auto& a = old_listeners[i];
    const auto& b = config->listeners[i];
    if (a.name != b.name || a.address.toString() != b.address.toString()) {
      return {StatusCode::FailedPrecondition,
              fmt::format("config error at /listeners/{}: listener {} changed name or address ({} {} -> {} {}); "
                          "restart instead", i, i, a.name,
                          a.address.toString(), b.name, b.address.toString())};
    }
  }
  // The old generation stays alive in the streams still using it; the new
  // one keeps its unchanged clusters running and starts its changed ones
  // from what the old ones knew of the backends. The old ones stop their
  // health checks.
  auto next = std::make_shared<Generation>(*dispatcher_, *stats_, std::move(config), health_role_, current_.get());
  current_->retire(*next);
  current_ = std::move(next);
  dispatcher_->setIdleSpin(current_->config().worker_spin_polls, &stats_->loop());
  // Reloads run on the loop's thread; before run() there is nothing to change yet.
  uint32_t slice_us = current_->config().worker_sched_slice_us;
  if (sched_slice_us_.has_value() && *sched_slice_us_ != slice_us) applySchedSlice(slice_us);
  return Status::ok();
}

void Worker::startDrain() {
  if (draining_) return;
  draining_ = true;
  for (auto& l : listeners_) l->startDrain();
}

void Worker::endCallsForShutdown(const std::string& why) {
  for (auto& l : listeners_) l->endCallsForShutdown(why);
}

size_t Worker::activeStreams() const {
  size_t n = 0;
  for (const auto& l : listeners_) n += l->activeStreams();
  return n;
}

size_t Worker::openConnections() const {
  size_t n = 0;
  for (const auto& l : listeners_) n += l->connectionCount();
  return n;
}

void Worker::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (auto& l : listeners_) {
    l->stopAccepting();
    l->closeConnections();
  }
  dispatcher_->drainPostedWork();
  current_->close();
  dispatcher_->drainPostedWork();
  dispatcher_->endWhenOnlyTimersLeft();
}

}  // namespace sluice
