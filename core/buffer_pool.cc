#include "core/buffer_pool.h"

#include <atomic>
#include <vector>

#include "core/allocation_counter.h"

namespace sluice::buffer_pool {
namespace {

// Enough for the messages in flight on a busy worker; large buffers are not
// kept, so an 8 MiB message does not pin 8 MiB per pooled slot.
constexpr size_t kMaxPooled = 256;
constexpr size_t kMaxPooledCapacity = 256 * 1024;

// Each pool's pooled capacity, in a slot of its own that only its thread
// writes (a plain store, no lock prefix: this is counted per message), read
// by pooledBytes() from any thread. Threads past the slots share one.
struct alignas(64) Slot {
  std::atomic<int64_t> bytes{0};
};
constexpr size_t kSlots = 256;
Slot g_slots[kSlots];
Slot g_shared_slot;
std::atomic<size_t> g_next_slot{0};

struct Pool {
  std::vector<std::string> free;
  Slot* slot;
  Pool() : slot(claimSlot()) { free.reserve(kMaxPooled); }
  ~Pool() { add(-pooled); }  // the thread ends: its buffers are freed
  static Slot* claimSlot() {
    size_t i = g_next_slot.fetch_add(1, std::memory_order_relaxed);
    return i < kSlots ? &g_slots[i] : &g_shared_slot;
  }
  void add(int64_t n) {
    pooled += n;
    if (slot == &g_shared_slot) {
      slot->bytes.fetch_add(n, std::memory_order_relaxed);
    } else {
      slot->bytes.store(slot->bytes.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
  }
  int64_t pooled = 0;
};

// A pooled buffer's share of the heap figure: what the allocator gave it
// (allocation_counter::usableSize), which for large buffers is well past
// the capacity asked (mimalloc rounds 128 KiB up by half). Small ones are
// counted by capacity, sparing the lookup on the per-message path: the
// rounding of 256 buffers under 4 KiB is at most a few hundred KiB.
int64_t heapShare(const std::string& buffer) {
  constexpr size_t kLookedUpFrom = 4096;
  return static_cast<int64_t>(buffer.capacity() < kLookedUpFrom ? buffer.capacity() + 1
                                                                 : allocation_counter::usableSize(buffer.data()));
}

Pool& pool() {
  thread_local Pool p;
  return p;
}

}  // namespace

std::string acquire(size_t size_hint) {
  // An empty message needs no buffer; a pooled one would sit idle in it for
  // as long as the message is queued.
  if (size_hint == 0) return std::string();
  Pool& p = pool();
  // Most recently released first: it is warm in cache and likely the right size.
  for (size_t i = p.free.size(); i > 0; --i) {
    if (p.free[i - 1].capacity() >= size_hint) {
      std::string s = std::move(p.free[i - 1]);
      p.add(-heapShare(s));
      p.free[i - 1] = std::move(p.free.back());
      p.free.pop_back();
      return s;
    }
  }
  std::string s;
  s.reserve(size_hint);
  return s;
}

void release(std::string&& buffer) {
  if (buffer.capacity() > kMaxPooledCapacity || buffer.capacity() <= 15) return;  // too big, or not heap
  Pool& p = pool();
  if (p.free.size() >= kMaxPooled) return;
  buffer.clear();
  // As the heap figure counts the block (heapShare): pooled buffers counted
  // by their capacity left tens of MB in an idle gateway's heap, enough to
  // keep overload refusing calls with none open.
  p.add(heapShare(buffer));
  p.free.push_back(std::move(buffer));
}

uint64_t pooledBytes() {
  int64_t total = g_shared_slot.bytes.load(std::memory_order_relaxed);
  for (const auto& s : g_slots) total += s.bytes.load(std::memory_order_relaxed);
  return total > 0 ? static_cast<uint64_t>(total) : 0;
}

}  // namespace sluice::buffer_pool
