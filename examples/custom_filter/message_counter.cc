#include "message_counter.h"

#include <atomic>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_reader.h"
#include "core/stats.h"
#include "core/stream_context.h"
#include "core/worker_context.h"

namespace example::message_counter {
namespace {

using sluice::FilterStatus;
using sluice::StatusCode;

class Factory : public sluice::FilterFactory {
 public:
  explicit Factory(std::shared_ptr<const Config> config) : config_(std::move(config)) {}
  sluice::FilterPtr createFilter(sluice::StreamContext&) const override {
    // Factories are shared by every worker thread: state in them is atomic.
    calls_.fetch_add(1, std::memory_order_relaxed);
    return std::make_unique<Filter>(*config_);
  }
  // Once, when the gateway stops, after its workers: a factory holding files
  // or sockets releases them here. This one reports what it saw.
  void close() const override {
    fmt::print(stderr, "message_counter: closed after {} call(s)\n", calls_.load(std::memory_order_relaxed));
  }

 private:
  std::shared_ptr<const Config> config_;  // immutable, shared by every stream
  mutable std::atomic<uint64_t> calls_{0};
};

}  // namespace

FilterStatus Filter::onRequestHeaders(sluice::StreamContext& ctx) {
  if (config_.hold_ms == 0) return FilterStatus::Continue;
  // ctx.timer: on the call's own loop (no locking), and its callback runs
  // only while the call is going, so `this` and `ctx` are alive in it; one
  // that threw would end the call rather than leave it paused.
  // Resuming as *this: only this filter's own pause is released.
  hold_timer_ = ctx.timer([this, &ctx] { ctx.continueRequest(*this); });
  hold_timer_->enable(std::chrono::milliseconds(config_.hold_ms));
  return FilterStatus::StopIteration;
}

FilterStatus Filter::onRequestMessage(sluice::StreamContext& ctx, sluice::Message& message) {
  ++request_messages_;
  if (!config_.reject_payload_containing.empty() &&
      message.payload.find(config_.reject_payload_containing) != std::string::npos) {
    ctx.sendLocalReply(StatusCode::InvalidArgument,
                       fmt::format("request message {} contains a forbidden byte string", request_messages_));
    return FilterStatus::StopIteration;
  }
  if (config_.max_request_messages && request_messages_ > *config_.max_request_messages) {
    ctx.sendLocalReply(StatusCode::ResourceExhausted,
                       fmt::format("more than {} request messages", *config_.max_request_messages));
    return FilterStatus::StopIteration;
  }
  // Left out of the stream: the backend never sees it, the call goes on.
  if (!config_.drop_request_containing.empty() &&
      message.payload.find(config_.drop_request_containing) != std::string::npos) {
    dropped(ctx).inc();
    return FilterStatus::DropMessage;
  }
  return FilterStatus::Continue;
}

FilterStatus Filter::onResponseHeaders(sluice::StreamContext& ctx) {
  if (config_.hold_response_ms == 0) return FilterStatus::Continue;
  response_hold_timer_ = ctx.timer([this, &ctx] { ctx.continueResponse(*this); });
  response_hold_timer_->enable(std::chrono::milliseconds(config_.hold_response_ms));
  return FilterStatus::StopIteration;
}

FilterStatus Filter::onResponseMessage(sluice::StreamContext& ctx, sluice::Message& message) {
  if (!config_.drop_response_containing.empty() &&
      message.payload.find(config_.drop_response_containing) != std::string::npos) {
    dropped(ctx).inc();
    return FilterStatus::DropMessage;  // the client never sees it
  }
  ++response_messages_;
  return FilterStatus::Continue;
}

FilterStatus Filter::onResponseTrailers(sluice::StreamContext& ctx) {
  ctx.responseTrailers().set(config_.trailer_prefix + "-request", std::to_string(request_messages_));
  ctx.responseTrailers().set(config_.trailer_prefix + "-response", std::to_string(response_messages_));
  return FilterStatus::Continue;
}

sluice::Counter& Filter::dropped(sluice::StreamContext& ctx) {
  // Each worker keeps its own counters (no locks when counting); the admin
  // endpoint sums them.
  if (dropped_ == nullptr) dropped_ = &ctx.worker().stats().filterCounter("messages_dropped");
  return *dropped_;
}

void Filter::onStreamDone(sluice::StreamContext&) {
  hold_timer_.reset();
  response_hold_timer_.reset();
}

sluice::FilterFactorySharedPtr ConfigFactory::create(const nlohmann::json& config, const std::string& path,
                                                     sluice::FilterBuildContext& ctx) const {
  auto out = std::make_shared<Config>();
  size_t errors_before = ctx.errors.size();
  if (!config.is_null()) {
    // JsonObject tracks JSON paths; finish() reports keys nobody read.
    sluice::JsonObject obj(config, path, ctx.errors);
    out->max_request_messages = obj.unsignedInt("max_request_messages", 0, UINT32_MAX);
    out->reject_payload_containing = obj.string("reject_payload_containing").value_or("");
    out->drop_request_containing = obj.string("drop_request_containing").value_or("");
    out->drop_response_containing = obj.string("drop_response_containing").value_or("");
    out->hold_ms = obj.unsignedInt("hold_ms", 0, 60'000).value_or(0);
    out->hold_response_ms = obj.unsignedInt("hold_response_ms", 0, 60'000).value_or(0);
    if (auto prefix = obj.string("trailer_prefix")) {
      if (prefix->empty() || prefix->starts_with("grpc-") || prefix->find_first_of(" :") != std::string::npos) {
        ctx.errors.add(obj.pathOf("trailer_prefix"), fmt::format("\"{}\" cannot start a metadata key", *prefix));
      }
      out->trailer_prefix = *prefix;
    }
    obj.finish();
  }
  if (ctx.errors.size() != errors_before) return nullptr;
  return std::make_shared<Factory>(std::move(out));
}

}  // namespace example::message_counter
