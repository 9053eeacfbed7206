#include "filters/router/filter.h"

#include <random>

#include <fmt/format.h>

#include "core/stream_context.h"

namespace sluice::filters::router {

FilterStatus RouterFilter::onRequestHeaders(StreamContext& ctx) {
  const RouteEntry* entry = config_.match(ctx.path(), ctx.service(), ctx.requestHeaders());
  if (entry == nullptr) {
    ctx.sendLocalReply(StatusCode::Unimplemented, fmt::format("no route for method {}", ctx.path()));
    return FilterStatus::StopIteration;
  }
  // Weighted clusters: each call draws on its own (per worker, no lock).
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const Route* route = &entry->pick(entry->targets.size() > 1 ? rng() : 0);
  ctx.setRoute(route);
  if (route->timeout_ms > 0) {
    auto cap = StreamContext::Clock::now() + std::chrono::milliseconds(route->timeout_ms);
    if (!ctx.deadline() || *ctx.deadline() > cap) ctx.setDeadline(cap);
  }
  return FilterStatus::Continue;
}

}  // namespace sluice::filters::router
