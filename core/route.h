// Route: what the router decided for a stream, read by later filters (proxy).
// Owned by the router's config, which outlives every stream that uses it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace sluice {

struct RetryPolicy {
  std::vector<StatusCode> retry_on;  // statuses (from the backend or the gateway) worth another try
  uint32_t num_retries = 1;
  uint32_t per_try_timeout_ms = 0;   // 0: only the call's deadline
  uint32_t backoff_base_ms = 25;     // first retry waits up to this (full jitter), doubling each time
  uint32_t backoff_max_ms = 250;
  uint32_t replay_buffer_bytes = 64 * 1024;  // request bytes kept for replay; past it, no retry

  bool retriable(StatusCode code) const {
    for (auto c : retry_on) {
      if (c == code) return true;
    }
    return false;
  }
};

struct Route {
  std::string cluster;
  uint32_t timeout_ms = 0;  // caps the call's deadline (0: no cap)
  std::optional<RetryPolicy> retry;
};

}  // namespace sluice
