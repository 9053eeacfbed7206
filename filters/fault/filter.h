// FaultFilter: injects the first matching rule's faults into a call at its
// request headers, before any later filter or the backend sees it: a delay
// (the call waits, its deadline still running) and then an abort (a
// trailers-only reply with the rule's status). Each fault applies to its
// `percent` of the calls, drawn per call. For chaos testing: how clients
// cope with a slow or failing service, without touching the service.
#pragma once

#include "core/filter.h"
#include "core/status.h"
#include "core/timer.h"
#include "filters/fault/config.h"

namespace sluice::filters::fault {

class FaultFilter : public Filter {
 public:
  FaultFilter(const FaultConfig& config, ActiveFaults& active) : config_(config), active_(active) {}
  ~FaultFilter() override;

  FilterStatus onRequestHeaders(StreamContext& ctx) override;
  void onStreamDone(StreamContext& ctx) override;

 private:
  void onDelayDone(StreamContext& ctx);
  void abort(StreamContext& ctx);
  // Takes a place among the active delays; false (counted) when they are full.
  bool admitDelay(StreamContext& ctx);
  void releaseDelay();

  const FaultConfig& config_;
  ActiveFaults& active_;
  const AbortFault* abort_ = nullptr;  // set once drawn
  StatusCode abort_code_ = StatusCode::Unavailable;
  TimerPtr delay_timer_;
  bool holds_delay_ = false;  // counted in active_.delays
};

}  // namespace sluice::filters::fault
