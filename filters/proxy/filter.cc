#include "filters/proxy/filter.h"

#include <charconv>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "codecs/grpc/grpc_headers.h"
#include "core/route.h"
#include "core/worker_context.h"
#include "upstream/cluster_manager.h"
#include "upstream/connection_pool.h"

namespace sluice::filters::proxy {
namespace {

bool isHopByHop(std::string_view name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade" || name == "host";
}

// The gRPC spec's mapping for responses that are not gRPC (no grpc-status).
StatusCode statusFromHttp(std::string_view status) {
  int code = 0;
  std::from_chars(status.data(), status.data() + status.size(), code);
  switch (code) {
    case 400: return StatusCode::Internal;
    case 401: return StatusCode::Unauthenticated;
    case 403: return StatusCode::PermissionDenied;
    case 404: return StatusCode::Unimplemented;
    case 429: case 502: case 503: case 504: return StatusCode::Unavailable;
    default: return StatusCode::Unknown;
  }
}

}  // namespace

ProxyFilter::ProxyFilter(StreamContext& ctx) : ctx_(ctx), response_decoder_(ctx.maxMessageBytes()) {}

ProxyFilter::~ProxyFilter() = default;

HeaderMap ProxyFilter::upstreamRequestHeaders() const {
  HeaderMap out;
  auto& request = const_cast<StreamContext&>(ctx_).requestHeaders();
  out.add(":method", "POST");
  out.add(":scheme", "http");
  out.add(":path", ctx_.path());
  const std::string* authority = request.get(":authority");
  out.add(":authority", authority != nullptr ? *authority : cluster_name_);
  for (const auto& h : request) {
    if (h.name.empty() || h.name[0] == ':' || isHopByHop(h.name) || h.name == "grpc-timeout") continue;
    out.add(h.name, h.value);
  }
  if (auto deadline = ctx_.deadline()) {
    // What is left of the call's deadline, so the backend gives up when we do.
    auto left = *deadline - StreamContext::Clock::now();
    out.add("grpc-timeout", grpc_headers::formatTimeout(std::max(
                                std::chrono::duration_cast<std::chrono::nanoseconds>(left),
                                std::chrono::nanoseconds(1))));
  }
  return out;
}

FilterStatus ProxyFilter::onRequestHeaders(StreamContext& ctx) {
  const Route* route = ctx.route();
  if (route == nullptr) {
    ctx.sendLocalReply(StatusCode::Unimplemented, fmt::format("no route for method {}", ctx.path()));
    return FilterStatus::StopIteration;
  }
  cluster_name_ = route->cluster;
  Cluster* cluster = ctx.worker().clusterManager().find(route->cluster);
  if (cluster == nullptr) {
    ctx.sendLocalReply(StatusCode::Unavailable, fmt::format("unknown cluster '{}'", route->cluster));
    return FilterStatus::StopIteration;
  }
  upstream_ = std::make_unique<UpstreamStream>(*this, upstreamRequestHeaders());
  ctx.setWatermarkCallbacks(this);
  ConnectionPool& endpoint = cluster->pickEndpoint();
  ctx.setUpstreamAddress(endpoint.address().toString());
  ctx.setUpstreamAttempts(1);
  endpoint.newStream(*upstream_);
  return FilterStatus::Continue;
}

FilterStatus ProxyFilter::onRequestMessage(StreamContext&, Message& message) {
  if (upstream_) upstream_->sendMessage(std::move(message));
  return FilterStatus::Continue;
}

FilterStatus ProxyFilter::onRequestEnd(StreamContext&) {
  if (upstream_) upstream_->endRequest();
  return FilterStatus::Continue;
}

void ProxyFilter::onStreamDone(StreamContext&) {
  // Finished, failed or cancelled downstream: nothing more goes upstream.
  if (upstream_) upstream_->reset();
}

void ProxyFilter::failFromUpstream(StatusCode code, const std::string& detail) {
  if (upstream_) upstream_->reset();
  ctx_.sendLocalReply(code, detail);
}

void ProxyFilter::onUpstreamHeaders(HeaderMap&& headers, bool end_stream) {
  const std::string* http_status = headers.get(":status");
  bool has_grpc_status = headers.get("grpc-status") != nullptr;
  if ((http_status == nullptr || *http_status != "200") && !(end_stream && has_grpc_status)) {
    std::string status = http_status != nullptr ? *http_status : "none";
    failFromUpstream(statusFromHttp(status),
                     fmt::format("upstream of cluster '{}' answered HTTP {} (not gRPC)", cluster_name_, status));
    return;
  }
  if (end_stream) {
    // Trailers-only: everything but :status and content-type is trailing metadata.
    for (auto& h : headers) {
      if (h.name == ":status" || h.name == "content-type") {
        ctx_.responseHeaders().add(h.name, h.value);
      } else {
        ctx_.responseTrailers().add(h.name, h.value);
      }
    }
    ctx_.encodeResponseTrailers();
    return;
  }
  for (auto& h : headers) ctx_.responseHeaders().add(h.name, h.value);
  ctx_.encodeResponseHeaders();
}

void ProxyFilter::onUpstreamData(const uint8_t* data, size_t len) {
  if (ctx_.ended()) {
    if (upstream_) upstream_->consume(len);
    return;
  }
  withheld_credit_ += len;
  Status s = response_decoder_.decode({reinterpret_cast<const char*>(data), len}, *this);
  if (!s.isOk()) {
    failFromUpstream(s.code(), fmt::format("upstream of cluster '{}' sent a bad message: {}", cluster_name_,
                                           s.message()));
    return;
  }
  if (!downstream_full_ && upstream_) {
    upstream_->consume(withheld_credit_);
    withheld_credit_ = 0;
  }
}

bool ProxyFilter::onMessage(Message&& message) {
  ctx_.encodeResponseMessage(std::move(message));
  return !ctx_.ended();
}

void ProxyFilter::onBelowWriteBufferLowWatermark() {
  downstream_full_ = false;
  if (upstream_ && withheld_credit_ > 0) {
    upstream_->consume(withheld_credit_);
    withheld_credit_ = 0;
  }
}

void ProxyFilter::onUpstreamEnd(HeaderMap&& trailers) {
  if (ctx_.ended()) return;
  Status s = response_decoder_.finish();
  if (!s.isOk()) {
    failFromUpstream(StatusCode::Internal,
                     fmt::format("upstream of cluster '{}' ended inside a message: {}", cluster_name_, s.message()));
    return;
  }
  if (trailers.get("grpc-status") == nullptr) {
    failFromUpstream(StatusCode::Internal,
                     fmt::format("upstream of cluster '{}' ended the call without grpc-status", cluster_name_));
    return;
  }
  for (auto& h : trailers) ctx_.responseTrailers().add(h.name, h.value);
  ctx_.encodeResponseTrailers();
}

void ProxyFilter::onUpstreamReset(std::string detail) {
  if (ctx_.ended()) return;
  ctx_.sendLocalReply(StatusCode::Unavailable, fmt::format("upstream cluster '{}': {}", cluster_name_, detail));
}

}  // namespace sluice::filters::proxy
