// FilterRegistry: filter names (as written in config) -> their config factories.
//
// The binary fills one registry with registerBuiltinFilters(); an embedding
// application adds its own factories to it before loading config. Registration
// is explicit on purpose: static initialisers in a static library are dropped
// by the linker.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "core/filter.h"

namespace sluice {

class ConfigErrors;

// What a filter's config parser may consult besides its own JSON.
struct FilterBuildContext {
  ConfigErrors& errors;
  const std::set<std::string>& cluster_names;
  // Names the entry being read across reloads, for state it keeps through
  // them (sharedAcrossReloads): its listener's name, its filter's name and
  // how many entries of that filter come before it in the chain, so that
  // adding another filter before it, or reordering listeners, leaves it the
  // same entry (its JSON path would change).
  std::string reload_key = {};
};

class FilterConfigFactory {
 public:
  virtual ~FilterConfigFactory() = default;
  // Parses and validates the entry's "config" value (null when absent) found
  // at JSON pointer `path`. On mistakes: adds them to ctx.errors (naming their
  // path) and returns nullptr. Returning nullptr without an error, or
  // throwing, is reported as an error at `path` for it.
  virtual FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                        FilterBuildContext& ctx) const = 0;
  // A terminal filter produces the response (the proxy); it must be last.
  virtual bool isTerminal() const { return false; }
};
using FilterConfigFactoryPtr = std::unique_ptr<FilterConfigFactory>;

class FilterRegistry {
 public:
  // Replaces an earlier factory of the same name.
  void add(std::string name, FilterConfigFactoryPtr factory) { factories_[std::move(name)] = std::move(factory); }
  const FilterConfigFactory* find(std::string_view name) const;
  std::string names() const;  // "a, b, c" for error messages

 private:
  std::map<std::string, FilterConfigFactoryPtr, std::less<>> factories_;
};

}  // namespace sluice
