// At most one log line a second for something that can happen in floods (a
// client reconnecting in a loop to a full listener, a filter that throws on
// every call): the rest are counted, and the next line says how many.
#pragma once

#include <chrono>
#include <cstdint>
#include <utility>

namespace sluice {

class LogThrottle {
 public:
  // True when a line may be written now, with `skipped` set to how many
  // were not written since the last one; false (and counted) otherwise.
  bool admit(uint64_t& skipped) {
    const auto now = std::chrono::steady_clock::now();
    if (logged_ && now - last_ < std::chrono::seconds(1)) {
      ++skipped_;
      return false;
    }
    logged_ = true;
    last_ = now;
    skipped = std::exchange(skipped_, 0);
    return true;
  }

 private:
  std::chrono::steady_clock::time_point last_{};
  bool logged_ = false;
  uint64_t skipped_ = 0;
};

}  // namespace sluice
