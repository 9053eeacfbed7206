// AccessLogFilter: writes one JSON line per finished call (or per sampled
// one: AccessLogConfig::logs), from onStreamDone
// (which runs exactly once, whether the call succeeded, failed locally, or was
// cancelled). Nothing is recorded before the end: the line is built from the
// StreamContext's counters and final status.
#pragma once

#include <string>

#include "core/filter.h"
#include "filters/access_log/config.h"

namespace sluice::filters::access_log {

class AccessLogFilter : public Filter {
 public:
  AccessLogFilter(const AccessLogConfig& config, LogSink& sink) : config_(config), sink_(sink) {}

  void onStreamDone(StreamContext& ctx) override;

 private:
  const AccessLogConfig& config_;
  LogSink& sink_;
};

// The line (with its trailing '\n') for a finished call; `now` is when it ended.
std::string formatLine(const AccessLogConfig& config, StreamContext& ctx,
                       std::chrono::steady_clock::time_point now);

}  // namespace sluice::filters::access_log
