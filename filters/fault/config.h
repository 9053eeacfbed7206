// Fault config: rules, each matching calls (like the router) and injecting a
// delay, an abort, or both (the delay first) into a share of them, fixed in
// the config or asked for by the caller's metadata. Parsed once; shared
// read-only by every stream and worker.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/method_match.h"
#include "core/registry.h"
#include "core/status.h"

namespace sluice::filters::fault {

// Request metadata a caller sets to ask for a fault, for rules that allow it.
inline constexpr std::string_view kDelayHeader = "x-sluice-fault-delay-ms";
inline constexpr std::string_view kAbortHeader = "x-sluice-fault-abort";

struct DelayFault {
  std::chrono::milliseconds fixed{0};
  bool from_header = false;               // the delay is kDelayHeader's value...
  std::chrono::milliseconds max{60000};   // ...capped at this
  double percent = 100;
};

struct AbortFault {
  StatusCode code = StatusCode::Unavailable;
  bool from_header = false;  // the code is kAbortHeader's value
  std::string message;
  double percent = 100;
};

struct FaultRule {
  std::optional<MethodMatch> match;  // absent: every call
  std::optional<DelayFault> delay;
  std::optional<AbortFault> abort;
};

struct FaultConfig {
  std::vector<FaultRule> rules;
  // Calls this entry holds in a delay at once, over every worker (and
  // across reloads); past it calls go on without their delay (counted as
  // fault_overflow). 0: no limit.
  uint64_t max_active_faults = 1000;
  // The first rule matching the call, or nullptr.
  const FaultRule* ruleFor(std::string_view path, std::string_view service, const HeaderMap& headers) const;
};

// Delays in progress for one filter entry, shared by its calls on every
// worker and by the entry's configs before and after a reload.
struct ActiveFaults {
  std::atomic<uint64_t> delays{0};
};

class FaultConfigFactory : public FilterConfigFactory {
 public:
  FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                FilterBuildContext& ctx) const override;
};

}  // namespace sluice::filters::fault
