// Counts every heap allocation of the `sluice` binary (a per-thread counter:
// no lock prefix, no shared cache line on the data path), so that /stats and /stats/prometheus can show
// sluice_process_allocations_total and a test can check that a steady stream
// of messages allocates nothing. Linked into the binary only, not the library.
#include <atomic>
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
#else
#define SLUICE_MALLOC std::malloc
#define SLUICE_ALIGNED_ALLOC std::aligned_alloc
#define SLUICE_FREE std::free
#endif

namespace {

// One slot per thread (workers, libuv's pool); threads past the slots share one.
constexpr size_t kSlots = 256;
std::atomic<uint64_t> g_slots[kSlots];
std::atomic<uint64_t> g_shared_slot{0};
std::atomic<size_t> g_next_slot{0};
thread_local std::atomic<uint64_t>* t_slot = nullptr;  // constant-initialised: safe in operator new

void countOne() {
  std::atomic<uint64_t>* slot = t_slot;
  if (slot == nullptr) {
    size_t i = g_next_slot.fetch_add(1, std::memory_order_relaxed);
    slot = i < kSlots ? &g_slots[i] : &g_shared_slot;
    t_slot = slot;
  }
  if (slot == &g_shared_slot) {
    slot->fetch_add(1, std::memory_order_relaxed);
  } else {
    // Only this thread writes its slot: a plain increment, readable by others.
    slot->store(slot->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

uint64_t countAllocations() {
  uint64_t total = g_shared_slot.load(std::memory_order_relaxed);
  for (const auto& s : g_slots) total += s.load(std::memory_order_relaxed);
  return total;
}

void* allocate(std::size_t size) {
  countOne();
  if (void* p = SLUICE_MALLOC(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

void* allocateAligned(std::size_t size, std::align_val_t align) {
  countOne();
  std::size_t a = static_cast<std::size_t>(align);
  if (void* p = SLUICE_ALIGNED_ALLOC(a, (size + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}

// Installed before main() runs: only this binary counts.
const bool kInstalled = [] {
  sluice::allocation_counter::install(countAllocations);
  return true;
}();

}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, std::align_val_t align) { return allocateAligned(size, align); }
void* operator new[](std::size_t size, std::align_val_t align) { return allocateAligned(size, align); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  countOne();
  return SLUICE_MALLOC(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  countOne();
  return SLUICE_MALLOC(size == 0 ? 1 : size);
}
void operator delete(void* p) noexcept { SLUICE_FREE(p); }
void operator delete[](void* p) noexcept { SLUICE_FREE(p); }
void operator delete(void* p, std::size_t) noexcept { SLUICE_FREE(p); }
void operator delete[](void* p, std::size_t) noexcept { SLUICE_FREE(p); }
void operator delete(void* p, std::align_val_t) noexcept { SLUICE_FREE(p); }
void operator delete[](void* p, std::align_val_t) noexcept { SLUICE_FREE(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { SLUICE_FREE(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { SLUICE_FREE(p); }
