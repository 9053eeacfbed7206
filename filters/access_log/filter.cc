#include "filters/access_log/filter.h"

#include <chrono>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/route.h"
#include "core/stats.h"
#include "core/stream_context.h"
#include "core/worker_context.h"

namespace sluice::filters::access_log {
namespace {

// RFC 3339 in UTC with milliseconds: sortable, and what log shippers parse.
std::string formatTime(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&secs, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                     utc.tm_hour, utc.tm_min, utc.tm_sec, ms % 1000);
}

}  // namespace

std::string formatLine(const AccessLogConfig& config, StreamContext& ctx, std::chrono::steady_clock::time_point now) {
  using namespace std::chrono;
  // The duration from the monotonic clock, which does not jump with clock changes.
  auto elapsed = now - ctx.startTime();

  nlohmann::ordered_json line;
  line["time"] = formatTime(ctx.startSystemTime());
  line["method"] = ctx.path();
  if (!ctx.requestId().empty()) line["request_id"] = ctx.requestId();
  line["grpc_status"] = static_cast<int>(ctx.status());
  line["status"] = std::string(statusCodeName(ctx.status()));
  if (!ctx.statusMessage().empty()) line["grpc_message"] = ctx.statusMessage();
  // Only requests refused as not gRPC get a plain HTTP error.
  if (ctx.httpStatus() != 200) line["http_status"] = ctx.httpStatus();
  line["duration_ms"] = static_cast<double>(duration_cast<microseconds>(elapsed).count()) / 1000.0;
  const StreamCounters& c = ctx.counters();
  line["request_messages"] = c.request_messages;
  line["request_bytes"] = c.request_bytes;
  line["response_messages"] = c.response_messages;
  line["response_bytes"] = c.response_bytes;
  line["peer"] = ctx.peerAddress();
  // The routed cluster: with weighted_clusters, the one this call drew.
  if (ctx.route() == nullptr) {
    line["cluster"] = nullptr;
  } else {
    line["cluster"] = ctx.route()->cluster;
  }
  if (ctx.upstreamAddress().empty()) {
    line["upstream"] = nullptr;
  } else {
    line["upstream"] = ctx.upstreamAddress();
  }
  line["attempts"] = ctx.upstreamAttempts();
  line["retries"] = ctx.upstreamAttempts() > 0 ? ctx.upstreamAttempts() - 1 : 0;
  line["connection"] = ctx.connectionId();
  line["stream"] = ctx.streamId();
  if (!config.request_metadata.empty()) {
    // A call some filter refused (or that was refused before its filters
    // ran) carries metadata no filter vouched for: a client's own
    // x-auth-principal or x-forwarded-for must not pass for the gateway's.
    auto& md = line[ctx.requestHeadersFiltered() ? "metadata" : "client_metadata"] = nlohmann::ordered_json::object();
    for (const auto& key : config.request_metadata) {
      if (const std::string* v = ctx.requestHeaders().get(key)) md[key] = *v;
    }
  }
  // Method names and metadata come from the client: invalid UTF-8 is replaced,
  // never thrown on.
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

void AccessLogFilter::onStreamDone(StreamContext& ctx) {
  const auto now = std::chrono::steady_clock::now();
  if (!config_.logs(ctx, now - ctx.startTime())) {
    // Not even formatted: sampling is how a busy gateway saves the work.
    ctx.worker().stats().filterCounter("access_log_sampled_out").inc();
    return;
  }
  sink_.write(formatLine(config_, ctx, now));
  // Lines the sink could not write (its target full, failing, or not
  // reading), whichever worker's they were.
  if (uint64_t dropped = sink_.takeDroppedForStats()) ctx.worker().stats().filterCounter("access_log_dropped").inc(dropped);
}

}  // namespace sluice::filters::access_log
