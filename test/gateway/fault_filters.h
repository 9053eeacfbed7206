// test_faults: a filter that misbehaves on request, for e2e tests of what the
// gateway does when a user's filter goes wrong (throws, ends its call from a
// timer, resumes twice, makes no filter). Only in sluice_test_gateway, never
// in build/sluice.
//
// Per call, the request header `x-test-fault` picks the fault (see
// fault_filters.cc). An entry configured with `gate_ms` is a gate instead: it
// holds each call carrying `x-test-gate` for that long, then refuses it with
// PERMISSION_DENIED (an async check that denies). With `worker_timer_ms`,
// the factory keeps a timer of its own on each worker's loop that met a call,
// re-armed every time it fires. `config_fault` makes the
// config factory fail: "throw", "json" (nlohmann throws) or "null" (returns
// nullptr without an error).
#pragma once

#include "core/registry.h"

namespace sluice::test {

class FaultFilterConfigFactory : public FilterConfigFactory {
 public:
  FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                FilterBuildContext& ctx) const override;
};

}  // namespace sluice::test
