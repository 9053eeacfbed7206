#include "codecs/http2/session_memory.h"

#include <nghttp2/nghttp2.h>
#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

namespace sluice::http2 {
namespace {

// Each block starts with its size (realloc needs it; operator delete does
// not give it back), kept at the alignment malloc promises.
constexpr size_t kHeader = alignof(std::max_align_t);

// nghttp2 allocates a small item for every frame it queues (a WINDOW_UPDATE
// every few messages on a busy stream, PING and SETTINGS acknowledgements):
// small blocks are kept per thread (each worker runs its own sessions), in
// classes of 32 bytes so that no block is much larger than asked for, and
// reused, so that a steady stream of messages allocates nothing here either.
constexpr size_t kClassBytes = 32;
constexpr size_t kClasses = 8;  // up to 256 bytes
constexpr size_t kMaxKeptPerClass = 512;  // at most ~640 KiB per thread in all

size_t classOf(size_t size) { return size == 0 ? 0 : (size - 1) / kClassBytes; }

// Under AddressSanitizer a kept block is poisoned until it is handed out
// again, so that our code touching an object nghttp2 freed (a stale frame or
// stream pointer) is still caught. Without ASan the macros do nothing.
size_t blockBytes(size_t c) { return (c + 1) * kClassBytes + kHeader; }

// Set once this thread's lists are destroyed (thread exit): a session freed
// later on it (an embedder's static Gateway) goes straight to the heap.
thread_local bool t_blocks_gone = false;  // constant-initialised: no guard

struct SmallBlocks {
  std::array<std::vector<void*>, kClasses> free;
  ~SmallBlocks() {
    t_blocks_gone = true;
    for (size_t c = 0; c < kClasses; ++c) {
      for (void* b : free[c]) {
        ASAN_UNPOISON_MEMORY_REGION(b, blockBytes(c));
        ::operator delete(b);
      }
    }
  }
};

// This thread's lists, or nullptr when none may be used.
SmallBlocks* smallBlocks() {
  if (t_blocks_gone) return nullptr;
  thread_local SmallBlocks blocks;
  return &blocks;
}

void* allocate(size_t size, void* /*user*/) {
  if (size > SIZE_MAX - kHeader - kClassBytes) return nullptr;
  void* block = nullptr;
  const size_t c = classOf(size);
  SmallBlocks* blocks = c < kClasses ? smallBlocks() : nullptr;
  if (blocks != nullptr && !blocks->free[c].empty()) {
    block = blocks->free[c].back();
    blocks->free[c].pop_back();
    ASAN_UNPOISON_MEMORY_REGION(block, blockBytes(c));
  } else if (c < kClasses) {
    block = ::operator new(blockBytes(c), std::nothrow);  // reusable by its class
  } else {
    block = ::operator new(size + kHeader, std::nothrow);
  }
  if (block == nullptr) return nullptr;
  *static_cast<size_t*>(block) = size;
  return static_cast<char*>(block) + kHeader;
}

void release(void* p, void* /*user*/) {
  if (p == nullptr) return;
  void* block = static_cast<char*>(p) - kHeader;
  const size_t c = classOf(*static_cast<size_t*>(block));
  SmallBlocks* blocks = c < kClasses ? smallBlocks() : nullptr;
  if (blocks != nullptr) {
    std::vector<void*>& kept = blocks->free[c];
    if (kept.capacity() == 0) {
      // Reserved whole once, so push_back never allocates (nor throws into
      // nghttp2's C code) later; if even that fails, the block is just freed.
      try {
        kept.reserve(kMaxKeptPerClass);
      } catch (...) {
      }
    }
    if (kept.size() < kept.capacity() && kept.size() < kMaxKeptPerClass) {
      kept.push_back(block);
      ASAN_POISON_MEMORY_REGION(block, blockBytes(c));
      return;
    }
  }
  ::operator delete(block);
}

void* allocateZeroed(size_t n, size_t size, void* user) {
  if (size != 0 && n > SIZE_MAX / size) return nullptr;
  void* p = allocate(n * size, user);
  if (p != nullptr) std::memset(p, 0, n * size);
  return p;
}

void* reallocate(void* p, size_t size, void* user) {
  if (p == nullptr) return allocate(size, user);
  const size_t old_size = *reinterpret_cast<size_t*>(static_cast<char*>(p) - kHeader);
  void* q = allocate(size, user);
  if (q == nullptr) return nullptr;  // p stays valid, as realloc leaves it
  std::memcpy(q, p, std::min(old_size, size));
  release(p, user);
  return q;
}

nghttp2_mem g_allocator{nullptr, allocate, release, allocateZeroed, reallocate};

}  // namespace

nghttp2_mem* sessionAllocator() { return &g_allocator; }

}  // namespace sluice::http2
