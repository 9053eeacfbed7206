// Request ids: the x-request-id each call carries to its backend and into the
// access log, so that one call can be followed through every log it touches
// (Envoy's generate_request_id). A call without one gets a random UUID (v4)
// at the gateway; one a client sent is kept if it looks like an id.
#pragma once

#include <string>
#include <string_view>

namespace sluice::request_id {

inline constexpr std::string_view kHeader = "x-request-id";
// Longer client ids are replaced: every log line and backend carries the id.
inline constexpr size_t kMaxClientIdBytes = 128;

// Why a filter's config may not edit the header: the access log, the
// response and the backend must carry the same one id.
inline constexpr std::string_view kNotEditable =
    "\"x-request-id\" is the listener's to set (generate_request_id, preserve_external_request_id): "
    "the backend, the access log and the client must see the same one id";

// A fresh random UUID, version 4: "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
// The randomness comes from the kernel (getrandom), fetched for many ids at a
// time per thread, so ids are unpredictable without a system call per call.
// Never blocks or throws: while the kernel has no randomness to give (early
// boot) or refuses the call, ids come from a generator seeded from the clock.
std::string generate();

// Whether a client's id may be kept: 1 to kMaxClientIdBytes visible ASCII
// characters (no spaces or controls), safe to log and to pass on.
bool acceptable(std::string_view id);

}  // namespace sluice::request_id
