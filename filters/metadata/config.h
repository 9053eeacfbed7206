// Metadata config: edits to request metadata, response initial metadata and
// response trailers, and whether to record the client's address in
// x-forwarded-for. Parsed once; shared read-only by every stream and worker.
#pragma once

#include <string>
#include <vector>

#include "core/headers.h"
#include "core/registry.h"

namespace sluice::filters::metadata {

// One set of edits to a HeaderMap, applied in the order remove, set, add so a
// config can replace a key ("remove" + "add") or force one value ("set").
struct HeaderOps {
  std::vector<std::string> remove;
  std::vector<Header> set;
  std::vector<Header> add;

  bool empty() const { return remove.empty() && set.empty() && add.empty(); }
  void apply(HeaderMap& headers) const;
};

enum class ForwardedFor { Off, Append, Replace };

struct MetadataConfig {
  HeaderOps request;
  HeaderOps response;           // initial metadata (response headers)
  HeaderOps response_trailers;
  ForwardedFor forwarded_for = ForwardedFor::Off;
};

// "IP" from "IP:port" or "[IPv6]:port" (what StreamContext::peerAddress holds).
std::string peerIp(std::string_view peer_address);

class MetadataConfigFactory : public FilterConfigFactory {
 public:
  FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                FilterBuildContext& ctx) const override;
};

}  // namespace sluice::filters::metadata
