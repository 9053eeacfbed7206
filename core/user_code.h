// Code that users write (their filters, and the timer and posted callbacks
// those filters arm) runs from libuv and nghttp2 callbacks that must not
// throw: an exception escaping one ends the process, and every worker and
// call with it. Each place that calls such code catches what it throws here,
// then turns it into a gRPC status (a filter's hook) or a log line.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

// What the exception being handled says: call inside a catch block only.
std::string currentExceptionText();

// Logs that user code threw (or otherwise failed: `verb`), at error level: at
// most one line a second per thread, with a count of those not logged since
// (a filter that throws on every call must not flood the log).
void logUserCodeFailure(std::string_view where, std::string_view what, std::string_view verb = "threw") noexcept;

// Runs `f`; if it throws, logs it as `where` and returns false.
template <typename F>
bool runUserCode(std::string_view where, F&& f) noexcept {
  try {
    f();
    return true;
  } catch (...) {
    logUserCodeFailure(where, currentExceptionText());
  }
  return false;
}

}  // namespace sluice
