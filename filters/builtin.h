// The filters that ship with Sluice, registered by name.
#pragma once

namespace sluice {

class FilterRegistry;

// Adds "router" and "proxy" (and every other built-in filter) to `registry`.
void registerBuiltinFilters(FilterRegistry& registry);

}  // namespace sluice
