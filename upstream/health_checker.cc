#include "upstream/health_checker.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "codecs/grpc/grpc_headers.h"
#include "codecs/grpc/health_messages.h"
#include "core/stats.h"
#include "upstream/cluster.h"
#include "upstream/connection_pool.h"
#include "upstream/endpoint.h"

namespace sluice {
namespace {

constexpr int kServing = static_cast<int>(health_messages::ServingStatus::Serving);

}  // namespace

HealthChecker::HealthChecker(Dispatcher& dispatcher, Endpoint& endpoint, const HealthCheckConfig& config)
    : dispatcher_(dispatcher), endpoint_(endpoint), config_(config), decoder_(64 * 1024) {}

HealthChecker::~HealthChecker() = default;

void HealthChecker::start() {
  interval_timer_ = std::make_unique<Timer>(dispatcher_, [this] { runCheck(); });
  timeout_timer_ = std::make_unique<Timer>(dispatcher_, [this] {
    finish(false, fmt::format("no answer within {} ms", config_.timeout_ms));
  });
  runCheck();
}

void HealthChecker::restart() {
  successes_ = 0;
  failures_ = 0;
  if (!interval_timer_) return;  // not started
  if (in_flight_) {
    in_flight_ = false;
    timeout_timer_->disable();
    stream_->reset();  // its answer, from the old backend, is not wanted
  }
  runCheck();
}

void HealthChecker::runCheck() {
  if (in_flight_) {
    interval_timer_->enable(std::chrono::milliseconds(config_.interval_ms));
    return;
  }
  stream_.reset();  // the previous check's stream, long closed
  decoder_ = GrpcFrameDecoder(64 * 1024);
  serving_ = false;
  HeaderBlock headers;
  headers.own.add(":method", "POST");
  headers.own.add(":scheme", "http");
  headers.own.add(":path", std::string(health_messages::kCheckPath));
  headers.own.add(":authority", endpoint_.host());
  headers.own.add("content-type", "application/grpc");
  headers.own.add("te", "trailers");
  headers.own.add("user-agent", "sluice-health-check");
  headers.own.add("grpc-timeout", grpc_headers::formatTimeout(std::chrono::milliseconds(config_.timeout_ms)));
  stream_ = std::make_unique<UpstreamStream>(*this, std::move(headers));
  in_flight_ = true;
  // The timeout first: libuv runs timers due at the same time in the order
  // they were armed, so with timeout_ms equal to interval_ms this check has
  // timed out when the next one is due, instead of making it skip its turn.
  timeout_timer_->enable(std::chrono::milliseconds(config_.timeout_ms));
  interval_timer_->enable(std::chrono::milliseconds(config_.interval_ms));
  Status placed = endpoint_.pool().newStream(*stream_, /*counted=*/false);
  if (!placed.isOk()) {
    finish(false, placed.message());
    return;
  }
  Message request;
  request.payload = health_messages::encodeRequest(config_.service);
  stream_->sendMessage(std::move(request));
  stream_->endRequest();
}

void HealthChecker::onUpstreamHeaders(HeaderMap&& headers, bool end_stream) {
  if (end_stream) onUpstreamEnd(std::move(headers));
}

void HealthChecker::onUpstreamData(const uint8_t* data, size_t len) {
  if (stream_) stream_->consume(len);
  Status s = decoder_.decode({reinterpret_cast<const char*>(data), len}, *this);
  if (!s.isOk()) finish(false, s.message());
}

bool HealthChecker::onMessage(Message&& message) {
  auto status = health_messages::decodeResponseStatus(message.payload);
  serving_ = status && *status == kServing;
  return true;
}

void HealthChecker::onUpstreamEnd(HeaderMap&& trailers) {
  const std::string* code = trailers.get("grpc-status");
  if (code == nullptr || *code != "0") {
    const std::string* msg = trailers.get("grpc-message");
    // The backend's message quoted and escaped ({:?}): decoded, it may hold
    // line breaks, which must not write lines of their own into our log.
    finish(false, fmt::format("grpc-status {}{}", code != nullptr ? *code : "missing",
                              msg != nullptr ? fmt::format(": {:?}", grpc_headers::percentDecode(*msg)) : ""));
    return;
  }
  finish(serving_, serving_ ? "SERVING" : "not SERVING");
}

void HealthChecker::finish(bool ok, const std::string& why) {
  if (!in_flight_) return;
  in_flight_ = false;
  timeout_timer_->disable();
  if (stream_) stream_->reset();  // no-op when it completed; cancels a late one
  if (ok) {
    endpoint_.cluster().stats().health_check_success.inc();
    failures_ = 0;
    if (++successes_ >= config_.healthy_threshold && !endpoint_.activeHealthy()) {
      endpoint_.setActiveHealthy(true);
      spdlog::info("cluster '{}': endpoint {} is healthy again", endpoint_.cluster().name(), endpoint_.describe());
    }
    // Every result, not only changes: a worker that has just added the
    // endpoint (a reload, a DNS answer) learns its state within an interval.
    endpoint_.cluster().onHealthChecked(endpoint_);
    return;
  }
  successes_ = 0;
  endpoint_.cluster().stats().health_check_failure.inc();
  spdlog::debug("cluster '{}': health check of {} failed: {}", endpoint_.cluster().name(), endpoint_.describe(), why);
  if (++failures_ >= config_.unhealthy_threshold && endpoint_.activeHealthy()) {
    endpoint_.setActiveHealthy(false);
    spdlog::warn("cluster '{}': endpoint {} is unhealthy: {}", endpoint_.cluster().name(), endpoint_.describe(), why);
  }
  endpoint_.cluster().onHealthChecked(endpoint_);
}

}  // namespace sluice
