// Config test helpers: a filter's factory built from inline JSON the way the
// config loader builds it, and a search of the errors a config produced.
#pragma once

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "core/config_errors.h"
#include "core/registry.h"

namespace sluice::test {

// What `parser` builds from `config` found at "/f/config" (no clusters are
// known); nullptr on mistakes, which go to `errors`.
inline FilterFactorySharedPtr buildFilter(const FilterConfigFactory& parser, const nlohmann::json& config,
                                          ConfigErrors& errors) {
  std::set<std::string> clusters;
  FilterBuildContext ctx{errors, clusters};
  return parser.create(config, "/f/config", ctx);
}

// The same, the errors kept with the factory.
struct BuiltFilter {
  FilterFactorySharedPtr factory;
  ConfigErrors errors;
};
inline BuiltFilter buildFilter(const FilterConfigFactory& parser, const nlohmann::json& config) {
  BuiltFilter out;
  out.factory = buildFilter(parser, config, out.errors);
  return out;
}

// True if one of `errors` is at `path` and its message contains `fragment`.
inline bool hasError(const ConfigErrors& errors, const std::string& path, const std::string& fragment = "") {
  for (const auto& e : errors.all()) {
    if (e.path == path && e.message.find(fragment) != std::string::npos) return true;
  }
  return false;
}

}  // namespace sluice::test
