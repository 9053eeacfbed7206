#include "filters/metadata/filter.h"

#include "core/stream_context.h"

namespace sluice::filters::metadata {

FilterStatus MetadataFilter::onRequestHeaders(StreamContext& ctx) {
  HeaderMap& headers = ctx.requestHeaders();
  if (config_.forwarded_for != ForwardedFor::Off && !ctx.peerAddress().empty()) {
    std::string ip = peerIp(ctx.peerAddress());
    // One field of comma-separated hops, client first, our peer last: what
    // proxies and backends downstream expect.
    std::string joined;
    if (config_.forwarded_for == ForwardedFor::Append) {
      for (const auto& h : headers) {
        if (h.name != "x-forwarded-for" || h.value.empty()) continue;
        if (!joined.empty()) joined += ", ";
        joined += h.value;
      }
    }
    if (!joined.empty()) joined += ", ";
    if (config_.forwarded_for == ForwardedFor::Replace) {
      // This gateway is where trust begins: no header a backend reads for
      // the client's address may come from the client.
      headers.remove("forwarded");
      headers.set("x-real-ip", ip);
    }
    headers.set("x-forwarded-for", joined + ip);
  }
  config_.request.apply(headers);
  return FilterStatus::Continue;
}

FilterStatus MetadataFilter::onResponseHeaders(StreamContext& ctx) {
  saw_response_headers_ = true;
  config_.response.apply(ctx.responseHeaders());
  return FilterStatus::Continue;
}

FilterStatus MetadataFilter::onResponseTrailers(StreamContext& ctx) {
  if (!saw_response_headers_) config_.response.apply(ctx.responseTrailers());
  config_.response_trailers.apply(ctx.responseTrailers());
  return FilterStatus::Continue;
}

}  // namespace sluice::filters::metadata
