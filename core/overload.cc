#include "core/overload.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/allocation_counter.h"
#include "core/buffer_pool.h"
#include "core/json_reader.h"
#include "core/timer.h"


namespace sluice {
namespace {

constexpr uint64_t kMinMaxHeapBytes = 1 << 20;
constexpr uint64_t kMaxMaxHeapBytes = uint64_t{1} << 50;

constexpr uint64_t kOffMarginPercent = 2;

double mib(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

// Logs an action turning on (a warning) or off.
void logChange(bool on, const char* action, const char* key, uint32_t percent, uint64_t heap, uint64_t max) {
  if (on) {
    spdlog::warn("overload: heap {:.1f} MiB is past {}% of overload.max_heap_bytes ({:.1f} MiB, {}): {}", mib(heap),
                 percent, mib(max), key, action);
  } else {
    spdlog::info("overload: heap {:.1f} MiB is {}% of overload.max_heap_bytes (or half the share) below {}% ({:.1f} MiB, {}): {} again",
                 mib(heap), kOffMarginPercent, percent, mib(max), key, action);
  }
}

}  // namespace

OverloadConfig readOverloadConfig(JsonObject& obj) {
  OverloadConfig c;
  if (auto n = obj.unsignedInt("max_heap_bytes", kMinMaxHeapBytes, kMaxMaxHeapBytes, true)) c.max_heap_bytes = *n;
  if (auto p = obj.unsignedInt("refuse_calls_percent", 1, 100)) c.refuse_calls_percent = static_cast<uint32_t>(*p);
  if (auto p = obj.unsignedInt("refuse_connections_percent", 1, 100)) {
    c.refuse_connections_percent = static_cast<uint32_t>(*p);
  }
  if (auto p = obj.unsignedInt("reset_calls_percent", 1, 100)) c.reset_calls_percent = static_cast<uint32_t>(*p);
  if (auto t = obj.unsignedInt("check_interval_ms", 10, 60000)) c.check_interval_ms = static_cast<uint32_t>(*t);
  obj.finish();
  return c;
}

uint64_t heapBytesHeldByCalls() {
  const uint64_t heap = allocation_counter::heapBytesInUse();
  const uint64_t pooled = buffer_pool::pooledBytes();
  return heap > pooled ? heap - pooled : 0;
}

void OverloadState::update(uint64_t heap_bytes, const OverloadConfig& config) {
  heap_bytes_.store(heap_bytes, std::memory_order_relaxed);
  max_heap_bytes_.store(config.max_heap_bytes, std::memory_order_relaxed);
  // On at the share, off only once the heap is kOffMarginPercent of the
  // maximum below it: a heap hovering at the share (or one sample at a
  // buffer's brief peak as it grows) does not flip the action every check.
  const uint64_t margin = config.max_heap_bytes / 100 * kOffMarginPercent;
  // A small share has less room below it than the margin: under 4% the
  // margin is half the share, or an action on at 1% or 2% would never turn off.
  auto action = [&](bool on, uint64_t at) { return on ? heap_bytes + std::min(margin, at / 2) >= at : heap_bytes >= at; };
  const bool calls = action(refusingCalls(), config.refuseCallsAt());
  const bool connections = action(refusingConnections(), config.refuseConnectionsAt());
  const bool resets = heap_bytes >= config.resetCallsAt();  // each check on its own: it frees what it finds
  if (calls != refusingCalls()) {
    logChange(calls, calls ? "refusing new calls (UNAVAILABLE)" : "accepting new calls", "refuse_calls_percent",
              config.refuse_calls_percent, heap_bytes, config.max_heap_bytes);
    refusing_calls_.store(calls, std::memory_order_relaxed);
  }
  if (connections != refusingConnections()) {
    logChange(connections, connections ? "closing new connections as they are accepted" : "accepting new connections",
              "refuse_connections_percent", config.refuse_connections_percent, heap_bytes, config.max_heap_bytes);
    refusing_connections_.store(connections, std::memory_order_relaxed);
  }
  if (resets != resetting_calls_) {
    if (resets) {
      logChange(true, "resetting the calls that hold the most", "reset_calls_percent", config.reset_calls_percent,
                heap_bytes, config.max_heap_bytes);
    } else {
      spdlog::info("overload: heap {:.1f} MiB is below {}% of overload.max_heap_bytes ({:.1f} MiB, "
                   "reset_calls_percent): no more calls reset",
                   mib(heap_bytes), config.reset_calls_percent, mib(config.max_heap_bytes));
    }
    resetting_calls_ = resets;
  }
  // What the calls reset now should free: down to the share less the margin.
  bytes_to_free_ = resets ? heap_bytes - (config.resetCallsAt() - std::min(margin, config.resetCallsAt() / 2)) : 0;
}

void OverloadState::clear() {
  if (refusingCalls() || refusingConnections()) spdlog::info("overload: no longer configured; accepting calls and connections");
  refusing_calls_.store(false, std::memory_order_relaxed);
  refusing_connections_.store(false, std::memory_order_relaxed);
  resetting_calls_ = false;
  bytes_to_free_ = 0;
  heap_bytes_.store(0, std::memory_order_relaxed);
  max_heap_bytes_.store(0, std::memory_order_relaxed);
}

OverloadMonitor::OverloadMonitor(Dispatcher& dispatcher, OverloadState& state, CurrentConfig current,
                                 ResetCalls reset_calls, std::function<uint64_t()> measure)
    : state_(state),
      current_(std::move(current)),
      reset_calls_(std::move(reset_calls)),
      measure_(std::move(measure)),
      timer_(std::make_unique<Timer>(dispatcher, [this] { check(); })) {}

OverloadMonitor::~OverloadMonitor() = default;

void OverloadMonitor::check() {
  if (stopped_) return;
  const OverloadConfig& config = current_();
  if (!config.enabled()) {
    state_.clear();
    timer_->disable();
    return;
  }
  // Armed first: a measure that throws (logged by the timer) must not end
  // the checks with an action left on.
  timer_->enable(std::chrono::milliseconds(config.check_interval_ms));
  state_.update(measure_(), config);
  if (state_.bytesToFree() > 0 && reset_calls_) reset_calls_(state_.bytesToFree());
}

void OverloadMonitor::stop() {
  stopped_ = true;
  timer_->disable();
}

}  // namespace sluice
