#include "codecs/http2/session_memory.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstddef>
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
// small blocks are kept per thread (each worker runs its own sessions) and
// reused, so that a steady stream of messages allocates nothing here either.
constexpr size_t kSmall = 256 - kHeader;  // every small request gets a block this large
constexpr size_t kMaxKept = 1024;         // 256 KiB per thread at most

struct SmallBlocks {
  std::vector<void*> free;
  SmallBlocks() { free.reserve(kMaxKept); }
  ~SmallBlocks() {
    for (void* b : free) ::operator delete(b);
  }
};

SmallBlocks& smallBlocks() {
  thread_local SmallBlocks blocks;
  return blocks;
}

void* allocate(size_t size, void* /*user*/) {
  void* block = nullptr;
  if (size <= kSmall) {
    SmallBlocks& kept = smallBlocks();
    if (!kept.free.empty()) {
      block = kept.free.back();
      kept.free.pop_back();
    } else {
      block = ::operator new(kSmall + kHeader, std::nothrow);
    }
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
  if (*static_cast<size_t*>(block) <= kSmall) {
    SmallBlocks& kept = smallBlocks();
    if (kept.free.size() < kMaxKept) {
      kept.free.push_back(block);
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
