#include "filters/fault/config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_reader.h"
#include "core/reload_shared.h"
#include "filters/fault/filter.h"

namespace sluice::filters::fault {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxDelayMs = 3'600'000;
constexpr uint64_t kMaxActiveFaultsLimit = 10'000'000;

class FaultFilterFactory : public FilterFactory {
 public:
  FaultFilterFactory(FaultConfig config, std::shared_ptr<ActiveFaults> active)
      : config_(std::move(config)), active_(std::move(active)) {}
  FilterPtr createFilter(StreamContext&) const override { return std::make_unique<FaultFilter>(config_, *active_); }

 private:
  FaultConfig config_;
  // Counted by every worker's calls, and by those of the entry's earlier
  // configs still held: a reload must not let as many calls be held again.
  std::shared_ptr<ActiveFaults> active_;
};

double readPercent(JsonObject& obj) { return obj.number("percent", 0, 100).value_or(100); }

std::optional<DelayFault> readDelay(JsonObject& parent) {
  const json* value = parent.object("delay");
  if (value == nullptr) return std::nullopt;
  JsonObject obj(*value, parent.pathOf("delay"), parent.errors());
  DelayFault delay;
  auto ms = obj.unsignedInt("ms", 1, kMaxDelayMs);
  delay.from_header = obj.boolean("from_header").value_or(false);
  auto max = obj.unsignedInt("max_ms", 1, kMaxDelayMs);
  delay.percent = readPercent(obj);
  if (obj.isObject()) {
    if (ms.has_value() == delay.from_header) {
      parent.errors().add(obj.path(), "a delay needs exactly one of \"ms\" and \"from_header\": true");
    }
    if (max && !delay.from_header) parent.errors().add(obj.pathOf("max_ms"), "only with \"from_header\": true");
  }
  obj.finish();
  if (ms) delay.fixed = std::chrono::milliseconds(*ms);
  if (max) delay.max = std::chrono::milliseconds(*max);
  return delay;
}

std::optional<AbortFault> readAbort(JsonObject& parent) {
  const json* value = parent.object("abort");
  if (value == nullptr) return std::nullopt;
  JsonObject obj(*value, parent.pathOf("abort"), parent.errors());
  AbortFault abort;
  auto code = obj.string("code");
  abort.from_header = obj.boolean("from_header").value_or(false);
  abort.message = obj.string("message").value_or("fault injected");
  abort.percent = readPercent(obj);
  if (obj.isObject() && code.has_value() == abort.from_header) {
    parent.errors().add(obj.path(), "an abort needs exactly one of \"code\" and \"from_header\": true");
  }
  if (code) {
    auto parsed = statusCodeFromName(*code);
    if (!parsed || *parsed == StatusCode::Ok) {
      parent.errors().add(obj.pathOf("code"),
                          fmt::format("\"{}\" is not a gRPC status name other than OK (e.g. \"UNAVAILABLE\")", *code));
    } else {
      abort.code = *parsed;
    }
  }
  obj.finish();
  return abort;
}

FaultRule readRule(const json& value, const std::string& path, ConfigErrors& errors) {
  FaultRule rule;
  JsonObject obj(value, path, errors);
  rule.match = readMethodMatch(obj, "match", false);
  rule.delay = readDelay(obj);
  rule.abort = readAbort(obj);
  if (obj.isObject() && obj.value("delay") == nullptr && obj.value("abort") == nullptr) {
    errors.add(path, "a rule needs \"delay\", \"abort\" or both");
  }
  obj.finish();
  return rule;
}

}  // namespace

const FaultRule* FaultConfig::ruleFor(std::string_view path, std::string_view service,
                                      const HeaderMap& headers) const {
  return firstMatchingRule(rules, path, service, headers);
}

FilterFactorySharedPtr FaultConfigFactory::create(const json& config, const std::string& path,
                                                  FilterBuildContext& ctx) const {
  FaultConfig out;
  size_t errors_before = ctx.errors.size();
  JsonObject obj(config, path, ctx.errors);
  if (const json* rules = obj.array("rules", true)) {
    if (rules->empty()) ctx.errors.add(obj.pathOf("rules"), "at least one rule is needed");
    for (size_t i = 0; i < rules->size(); ++i) {
      out.rules.push_back(readRule((*rules)[i], jsonPath(obj.pathOf("rules"), i), ctx.errors));
    }
  }
  if (auto m = obj.unsignedInt("max_active_faults", 0, kMaxActiveFaultsLimit)) out.max_active_faults = *m;
  obj.finish();
  if (ctx.errors.size() != errors_before) return nullptr;
  // Keyed by the entry alone (listener, and which fault entry of its
  // chain): its delays in progress stay counted whatever a reload changed in
  // it (max_active_faults included) or around it.
  auto active = sharedAcrossReloads<ActiveFaults>(ctx.reload_key, [] { return std::make_shared<ActiveFaults>(); });
  return std::make_shared<FaultFilterFactory>(std::move(out), std::move(active));
}

}  // namespace sluice::filters::fault
