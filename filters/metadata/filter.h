// MetadataFilter: applies the configured metadata edits to one call. Requests
// are edited before later filters (and the backend) see them; responses on
// their way back. A trailers-only response carries its initial metadata in
// the trailers block, so "response" edits apply there when no headers came.
// Local replies (sendLocalReply) skip response hooks and are left untouched.
#pragma once

#include "core/filter.h"
#include "filters/metadata/config.h"

namespace sluice::filters::metadata {

class MetadataFilter : public Filter {
 public:
  explicit MetadataFilter(const MetadataConfig& config) : config_(config) {}

  FilterStatus onRequestHeaders(StreamContext& ctx) override;
  FilterStatus onResponseHeaders(StreamContext& ctx) override;
  FilterStatus onResponseTrailers(StreamContext& ctx) override;

 private:
  const MetadataConfig& config_;
  bool saw_response_headers_ = false;
};

}  // namespace sluice::filters::metadata
