#include "core/user_code.h"

#include <chrono>
#include <cstdint>
#include <exception>

#include <spdlog/spdlog.h>

#include "core/log_throttle.h"

namespace sluice {

std::string currentExceptionText() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

void logUserCodeFailure(std::string_view where, std::string_view what, std::string_view verb) noexcept {
  // Per thread: workers log without sharing state.
  thread_local LogThrottle throttle;
  uint64_t not_logged = 0;
  if (!throttle.admit(not_logged)) return;
  try {
    if (not_logged > 0) {
      // Of any filter, any kind, since the last line logged (which may be
      // long ago): the throttle is the worker's, not this filter's.
      spdlog::error("{} {}: {} ({} more filter failure(s) on this thread not logged since the last such line)",
                    where, verb, what, not_logged);
    } else {
      spdlog::error("{} {}: {}", where, verb, what);
    }
  } catch (...) {
    // Logging itself failed (out of memory): nothing more to do.
  }
}

}  // namespace sluice
