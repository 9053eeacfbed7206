// Overload: the process's heap measured against `overload.max_heap_bytes`,
// and what the gateway stops doing past each share of it (Envoy's overload
// manager with its fixed-heap monitor). Every per-connection limit bounds one
// client; this bounds them all together, whatever the number of clients.
//
// One thread measures (OverloadMonitor, on worker 0's loop); every worker
// reads the outcome (OverloadState) with a relaxed load per new call or
// connection: nothing on the data path waits for the measurement.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/config.h"

namespace sluice {

class Dispatcher;
class JsonObject;
class Timer;

// Reads the "overload" object (its path in `obj`'s errors).
OverloadConfig readOverloadConfig(JsonObject& obj);

// The heap in use (allocation_counter::heapBytesInUse) less the message
// buffers the workers' pools keep for reuse, which no call holds: after a
// burst a pool stays full, and must not keep calls refused.
uint64_t heapBytesHeldByCalls();

// The last measurement and the actions it turned on. Written by the monitor's
// thread only; read from any.
class OverloadState {
 public:
  bool refusingCalls() const { return refusing_calls_.load(std::memory_order_relaxed); }
  bool refusingConnections() const { return refusing_connections_.load(std::memory_order_relaxed); }
  uint64_t heapBytes() const { return heap_bytes_.load(std::memory_order_relaxed); }
  uint64_t maxHeapBytes() const { return max_heap_bytes_.load(std::memory_order_relaxed); }
  bool enabled() const { return maxHeapBytes() != 0; }

  // Past reset_calls_percent at the last check: how many bytes the calls
  // reset now should hold, in all, to bring the heap back under it; else 0.
  // Monitor's thread only.
  uint64_t bytesToFree() const { return bytes_to_free_; }

  // Takes a measurement against `config`; logs each action turned on or off.
  void update(uint64_t heap_bytes, const OverloadConfig& config);
  // overload removed from the config: every action off.
  void clear();

 private:
  std::atomic<bool> refusing_calls_{false};
  std::atomic<bool> refusing_connections_{false};
  std::atomic<uint64_t> heap_bytes_{0};
  std::atomic<uint64_t> max_heap_bytes_{0};
  bool resetting_calls_ = false;
  uint64_t bytes_to_free_ = 0;
};

// A call holds at least this many bytes of messages to be reset for overload:
// the calls that hold the heap, not the many small ones (Envoy's default
// minimum for reset_high_memory_stream).
constexpr uint64_t kMinResetCallBytes = 1 << 20;

// Measures every check_interval_ms of the config `current` returns (re-read at
// each check, so a reload applies) and updates `state`. Runs on `dispatcher`'s
// loop; stop() before that loop is to end.
class OverloadMonitor {
 public:
  using CurrentConfig = std::function<const OverloadConfig&()>;
  // Called at each check past reset_calls_percent with the bytes to free.
  using ResetCalls = std::function<void(uint64_t bytes)>;
  OverloadMonitor(Dispatcher& dispatcher, OverloadState& state, CurrentConfig current, ResetCalls reset_calls,
                  std::function<uint64_t()> measure = heapBytesHeldByCalls);
  ~OverloadMonitor();
  // Measures now, and from then on at the interval (or not at all while the
  // config has no overload); call again after a reload.
  void check();
  void stop();

 private:
  OverloadState& state_;
  CurrentConfig current_;
  ResetCalls reset_calls_;
  std::function<uint64_t()> measure_;
  std::unique_ptr<Timer> timer_;
  bool stopped_ = false;
};

}  // namespace sluice
