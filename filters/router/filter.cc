#include "filters/router/filter.h"

#include <fmt/format.h>

#include "core/stream_context.h"

namespace sluice::filters::router {

FilterStatus RouterFilter::onRequestHeaders(StreamContext& ctx) {
  const Route* route = config_.match(ctx.path(), ctx.service());
  if (route == nullptr) {
    ctx.sendLocalReply(StatusCode::Unimplemented, fmt::format("no route for method {}", ctx.path()));
    return FilterStatus::StopIteration;
  }
  ctx.setRoute(route);
  if (route->timeout_ms > 0) {
    auto cap = StreamContext::Clock::now() + std::chrono::milliseconds(route->timeout_ms);
    if (!ctx.deadline() || *ctx.deadline() > cap) ctx.setDeadline(cap);
  }
  return FilterStatus::Continue;
}

}  // namespace sluice::filters::router
