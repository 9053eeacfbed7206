#include "core/registry.h"

namespace sluice {

const FilterConfigFactory* FilterRegistry::find(std::string_view name) const {
  auto it = factories_.find(name);
  return it == factories_.end() ? nullptr : it->second.get();
}

std::string FilterRegistry::names() const {
  std::string out;
  for (const auto& [name, _] : factories_) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace sluice
