// Route: what the router decided for a stream, read by later filters (proxy).
// Owned by the router's config, which outlives every stream that uses it.
#pragma once

#include <string>

namespace sluice {

struct Route {
  std::string cluster;
};

}  // namespace sluice
