#include "core/request_id.h"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <random>

namespace sluice::request_id {
namespace {

// 256 ids' worth of kernel randomness per refill. libuuid's
// uuid_generate_random asks the kernel once per id; that is a system call
// per call on the data path.
class RandomBytes {
 public:
  void take(uint8_t* out, size_t n) {
    if (used_ + n > pool_.size()) refill();
    std::copy_n(pool_.begin() + static_cast<std::ptrdiff_t>(used_), n, out);
    used_ += n;
  }

 private:
  void refill() {
    size_t filled = 0;
    while (filled < pool_.size()) {
      // Non-blocking: a worker must not wait for the kernel's entropy pool.
      ssize_t got = getrandom(pool_.data() + filled, pool_.size() - filled, GRND_NONBLOCK);
      if (got > 0) {
        filled += static_cast<size_t>(got);
      } else if (got < 0 && errno != EINTR) {
        break;  // not ready yet (early boot), or refused (a seccomp filter)
      }
    }
    if (filled < pool_.size()) {
      // Unique, not unpredictable: seeded from the clock and this thread.
      thread_local std::mt19937_64 fallback(static_cast<uint64_t>(
          std::chrono::steady_clock::now().time_since_epoch().count() ^
          std::chrono::system_clock::now().time_since_epoch().count() ^
          reinterpret_cast<uintptr_t>(&fallback)));
      for (size_t i = filled; i < pool_.size(); ++i) pool_[i] = static_cast<uint8_t>(fallback() >> 56);
    }
    used_ = 0;
  }

  std::array<uint8_t, 16 * 256> pool_{};
  size_t used_ = pool_.size();
};

}  // namespace

std::string generate() {
  thread_local RandomBytes random;
  uint8_t b[16];
  random.take(b, sizeof b);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4: random
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // variant: RFC 4122
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(36, '-');
  size_t at = 0;
  for (size_t i = 0; i < 16; ++i) {
    if (at == 8 || at == 13 || at == 18 || at == 23) ++at;
    id[at++] = kHex[b[i] >> 4];
    id[at++] = kHex[b[i] & 0x0f];
  }
  return id;
}

bool acceptable(std::string_view id) {
  if (id.empty() || id.size() > kMaxClientIdBytes) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace sluice::request_id
