// Counts every heap allocation of the `sluice` binary (a per-thread counter:
// no lock prefix, no shared cache line on the data path), so that /stats and /stats/prometheus can show
// sluice_process_allocations_total and a test can check that a steady stream
// of messages allocates nothing; and the bytes allocated and not yet freed,
// the heap overload.max_heap_bytes is checked against. Linked into the binary
// only, not the library.
#include <malloc.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "core/allocation_counter.h"

#ifdef SLUICE_WITH_MIMALLOC
// mimalloc also replaces malloc for the whole process (it is linked ahead of
// libc); C++ allocations call it directly.
#include <mimalloc.h>
#define SLUICE_MALLOC mi_malloc
#define SLUICE_ALIGNED_ALLOC mi_aligned_alloc
#define SLUICE_FREE mi_free
#define SLUICE_USABLE_SIZE mi_usable_size
#else
#define SLUICE_MALLOC std::malloc
#define SLUICE_ALIGNED_ALLOC std::aligned_alloc
#define SLUICE_FREE std::free
#define SLUICE_USABLE_SIZE malloc_usable_size
#endif

namespace {

// One slot per thread (workers, libuv's pool); threads past the slots share
// one. `bytes` is what this thread allocated minus what it freed (memory
// freed on another thread than the one that allocated it makes single slots
// negative; their sum is the heap in use).
struct alignas(64) Slot {
  std::atomic<uint64_t> count{0};
  std::atomic<int64_t> bytes{0};
};
constexpr size_t kSlots = 256;
Slot g_slots[kSlots];
Slot g_shared_slot;
std::atomic<size_t> g_next_slot{0};
thread_local Slot* t_slot = nullptr;  // constant-initialised: safe in operator new

Slot& mySlot() {
  if (t_slot == nullptr) {
    size_t i = g_next_slot.fetch_add(1, std::memory_order_relaxed);
    t_slot = i < kSlots ? &g_slots[i] : &g_shared_slot;
  }
  return *t_slot;
}

// Only this thread writes its own slot: a plain add, readable by others.
template <typename T>
void add(std::atomic<T>& v, T n, bool shared) {
  if (shared) {
    v.fetch_add(n, std::memory_order_relaxed);
  } else {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
}

// Bytes are counted only where they are the heap measure (mimalloc): with
// glibc's malloc, mallinfo2() has the figure, and freeing stays one call.
#ifdef SLUICE_WITH_MIMALLOC
constexpr bool kCountBytes = true;
#else
constexpr bool kCountBytes = false;
#endif

void countAllocation(void* p) {
  if (p == nullptr) return;
  Slot& slot = mySlot();
  const bool shared = &slot == &g_shared_slot;
  add<uint64_t>(slot.count, 1, shared);
  if (kCountBytes) add<int64_t>(slot.bytes, static_cast<int64_t>(SLUICE_USABLE_SIZE(p)), shared);
}

void release(void* p) {
  if (kCountBytes && p != nullptr) {
    Slot& slot = mySlot();
    add<int64_t>(slot.bytes, -static_cast<int64_t>(SLUICE_USABLE_SIZE(p)), &slot == &g_shared_slot);
  }
  SLUICE_FREE(p);
}

uint64_t countAllocations() {
  uint64_t total = g_shared_slot.count.load(std::memory_order_relaxed);
  for (const auto& s : g_slots) total += s.count.load(std::memory_order_relaxed);
  return total;
}

// The C++ heap in use. mimalloc, which replaces malloc, keeps no such figure
// that glibc's mallinfo2() would give; what C libraries (nghttp2, libuv)
// allocate with malloc is not in it.
[[maybe_unused]] uint64_t cxxHeapBytes() {
  int64_t total = g_shared_slot.bytes.load(std::memory_order_relaxed);
  for (const auto& s : g_slots) total += s.bytes.load(std::memory_order_relaxed);
  return total > 0 ? static_cast<uint64_t>(total) : 0;
}

void* allocate(std::size_t size) {
  void* p = SLUICE_MALLOC(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  countAllocation(p);
  return p;
}

void* allocateAligned(std::size_t size, std::align_val_t align) {
  std::size_t a = static_cast<std::size_t>(align);
  if (size > SIZE_MAX - (a - 1)) throw std::bad_alloc();  // rounding up would wrap
  void* p = SLUICE_ALIGNED_ALLOC(a, (size + a - 1) / a * a);
  if (p == nullptr) throw std::bad_alloc();
  countAllocation(p);
  return p;
}

void* allocateNothrow(std::size_t size) noexcept {
  void* p = SLUICE_MALLOC(size == 0 ? 1 : size);
  countAllocation(p);
  return p;
}

void* allocateAlignedNothrow(std::size_t size, std::align_val_t align) noexcept {
  std::size_t a = static_cast<std::size_t>(align);
  if (size > SIZE_MAX - (a - 1)) return nullptr;
  void* p = SLUICE_ALIGNED_ALLOC(a, (size + a - 1) / a * a);
  countAllocation(p);
  return p;
}

// Installed before main() runs: only this binary counts.
const bool kInstalled = [] {
  sluice::allocation_counter::install(countAllocations);
#ifdef SLUICE_WITH_MIMALLOC
  // Without mimalloc, malloc's own figure (all of the heap) is better.
  sluice::allocation_counter::installHeapBytes(cxxHeapBytes);
  // What countAllocation() counts per block, for the buffer pool's share.
  sluice::allocation_counter::installUsableSize([](const void* p) { return mi_usable_size(p); });
#endif
  return true;
}();

}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, std::align_val_t align) { return allocateAligned(size, align); }
void* operator new[](std::size_t size, std::align_val_t align) { return allocateAligned(size, align); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return allocateNothrow(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return allocateNothrow(size); }
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return allocateAlignedNothrow(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  return allocateAlignedNothrow(size, align);
}
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
