#include "core/allocation_counter.h"

#include <atomic>

namespace sluice::allocation_counter {
namespace {

std::atomic<CountFn> g_count{nullptr};

}  // namespace

void install(CountFn fn) { g_count.store(fn, std::memory_order_release); }

std::optional<uint64_t> current() {
  CountFn fn = g_count.load(std::memory_order_acquire);
  if (fn == nullptr) return std::nullopt;
  return fn();
}

}  // namespace sluice::allocation_counter
