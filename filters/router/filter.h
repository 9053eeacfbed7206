// RouterFilter: picks the route (and so the cluster) for a call from its method;
// a call no route matches ends with UNIMPLEMENTED naming the method.
#pragma once

#include "core/filter.h"
#include "filters/router/config.h"

namespace sluice::filters::router {

class RouterFilter : public Filter {
 public:
  explicit RouterFilter(const RouterConfig& config) : config_(config) {}
  FilterStatus onRequestHeaders(StreamContext& ctx) override;

 private:
  const RouterConfig& config_;
};

}  // namespace sluice::filters::router
