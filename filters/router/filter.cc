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
  return FilterStatus::Continue;
}

}  // namespace sluice::filters::router
