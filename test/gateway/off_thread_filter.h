// test_off_thread: a filter that decides each call on a thread of its own, as
// a filter asking a remote service would, and comes back to the call through
// its CallHandle (core/call_handle.h). Only in sluice_test_gateway.
//
// Per call, the request header `x-test-off-thread: VERDICT:MS` holds the call
// while the factory's thread waits MS milliseconds (at most 60000), then
// posts the verdict: "allow" resumes the call, "deny" ends it with
// PERMISSION_DENIED, "throw" throws. Calls without the header pass. Every
// reply that reaches the filter's response hooks gets the trailers
// `x-test-off-thread-posted` and `x-test-off-thread-ran`: how many verdicts
// have been posted, and run, so far. A verdict for a call that ended
// meanwhile must not run. `x-test-off-thread-late: MS` posts work MS after
// the response trailers passed the filter, when the call has ended: it must
// not run either, even while the call's stream is still open.
#pragma once

#include "core/registry.h"

namespace sluice::test {

class OffThreadFilterConfigFactory : public FilterConfigFactory {
 public:
  FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                FilterBuildContext& ctx) const override;
};

}  // namespace sluice::test
