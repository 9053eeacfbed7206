#include "core/connection_timers.h"

#include <fmt/format.h>

namespace sluice {

ConnectionTimers::ConnectionTimers(Dispatcher& dispatcher, Callbacks& callbacks, uint32_t idle_ms,
                                   uint32_t keepalive_interval_ms, uint32_t keepalive_timeout_ms)
    : callbacks_(callbacks),
      idle_ms_(idle_ms),
      interval_ms_(keepalive_interval_ms),
      timeout_ms_(keepalive_timeout_ms),
      idle_timer_(dispatcher, [this] { callbacks_.onConnectionTimeout(fmt::format("idle for {} ms", idle_ms_)); }),
      keepalive_timer_(dispatcher, [this] { onKeepaliveTimer(); }) {}

void ConnectionTimers::start(size_t open_streams) {
  running_ = true;
  if (interval_ms_ > 0) keepalive_timer_.enable(std::chrono::milliseconds(interval_ms_));
  onStreamCountChanged(open_streams);
}

void ConnectionTimers::onStreamCountChanged(size_t open_streams) {
  if (!running_ || idle_ms_ == 0) return;
  if (open_streams > 0) {
    idle_timer_.disable();
  } else if (!idle_timer_.enabled()) {
    idle_timer_.enable(std::chrono::milliseconds(idle_ms_));
  }
}

void ConnectionTimers::onKeepaliveTimer() {
  if (ping_outstanding_) {
    callbacks_.onConnectionTimeout(fmt::format("no answer to a keepalive PING within {} ms", timeout_ms_));
    return;
  }
  ping_outstanding_ = true;
  callbacks_.sendKeepalivePing();
  keepalive_timer_.enable(std::chrono::milliseconds(timeout_ms_));
}

void ConnectionTimers::onPingAck() {
  if (!ping_outstanding_) return;
  ping_outstanding_ = false;
  if (running_ && interval_ms_ > 0) keepalive_timer_.enable(std::chrono::milliseconds(interval_ms_));
}

void ConnectionTimers::stop() {
  running_ = false;
  idle_timer_.disable();
  keepalive_timer_.disable();
}

}  // namespace sluice
