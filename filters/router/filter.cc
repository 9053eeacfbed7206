#include "filters/router/filter.h"

#include <random>

#include <fmt/format.h>
#include <xxhash.h>

#include "codecs/grpc/grpc_headers.h"
#include "core/stream_context.h"

namespace sluice::filters::router {

namespace {

// Weighted clusters: the hash of the route's hash_header when the call
// carries it (the same value, the same cluster, on every worker and gateway),
// else a draw of its own (per worker, no lock).
uint64_t draw(const RouteEntry& entry, StreamContext& ctx) {
  if (!entry.hash_header.empty()) {
    // Seeded apart from ring_hash's: a canary cluster hashing on the same
    // header still spreads the callers this draw sends it.
    constexpr uint64_t kSeed = 0x736c75696365;  // "sluice"
    if (const std::string* value = ctx.requestHeaders().get(entry.hash_header)) {
      // One caller's key however it is spelled (base64 padded or not, say).
      const std::string key = grpc_headers::callerKeyValue(entry.hash_header, *value);
      return XXH64(key.data(), key.size(), kSeed);
    }
  }
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace

FilterStatus RouterFilter::onRequestHeaders(StreamContext& ctx) {
  const RouteEntry* entry = config_.match(ctx.path(), ctx.service(), ctx.requestHeaders());
  if (entry == nullptr) {
    ctx.sendLocalReply(StatusCode::Unimplemented, fmt::format("no route for method {}", ctx.path()));
    return FilterStatus::StopIteration;
  }
  const Route* route = &entry->pick(entry->targets.size() > 1 ? draw(*entry, ctx) : 0);
  ctx.setRoute(route);
  if (route->timeout_ms > 0) {
    auto cap = StreamContext::Clock::now() + std::chrono::milliseconds(route->timeout_ms);
    if (!ctx.deadline() || *ctx.deadline() > cap) ctx.setDeadline(cap);
  }
  return FilterStatus::Continue;
}

}  // namespace sluice::filters::router
