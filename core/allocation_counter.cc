#include "core/allocation_counter.h"

#include <malloc.h>

#include <atomic>

// GCC defines __SANITIZE_ADDRESS__; clang before 18 only has the feature test.
#if defined(__SANITIZE_ADDRESS__)
#define SLUICE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLUICE_ASAN 1
#endif
#endif
#ifdef SLUICE_ASAN
// The sanitizer runtime's (compiler-rt's sanitizer/allocator_interface.h,
// which GCC does not ship).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace sluice::allocation_counter {
namespace {

std::atomic<CountFn> g_count{nullptr};
std::atomic<HeapBytesFn> g_heap_bytes{nullptr};
std::atomic<UsableSizeFn> g_usable_size{nullptr};

}  // namespace

void install(CountFn fn) { g_count.store(fn, std::memory_order_release); }

std::optional<uint64_t> current() {
  CountFn fn = g_count.load(std::memory_order_acquire);
  if (fn == nullptr) return std::nullopt;
  return fn();
}

void installHeapBytes(HeapBytesFn fn) { g_heap_bytes.store(fn, std::memory_order_release); }

uint64_t heapBytesInUse() {
  if (HeapBytesFn fn = g_heap_bytes.load(std::memory_order_acquire)) return fn();
#ifdef SLUICE_ASAN
  // AddressSanitizer's allocator serves every malloc; glibc's arenas stay empty.
  return __sanitizer_get_current_allocated_bytes();
#else
  struct mallinfo2 info = ::mallinfo2();
  return info.uordblks + info.hblkhd;
#endif
}

void installUsableSize(UsableSizeFn fn) { g_usable_size.store(fn, std::memory_order_release); }

size_t usableSize(const void* p) {
  if (UsableSizeFn fn = g_usable_size.load(std::memory_order_acquire)) return fn(p);
  return ::malloc_usable_size(const_cast<void*>(p));
}

}  // namespace sluice::allocation_counter
