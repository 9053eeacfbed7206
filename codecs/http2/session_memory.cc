#include "codecs/http2/session_memory.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
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
// small blocks are kept per thread (each worker runs its own sessions), in
// classes of 32 bytes so that no block is much larger than asked for, and
// reused, so that a steady stream of messages allocates nothing here either.
constexpr size_t kClassBytes = 32;
constexpr size_t kClasses = 8;  // up to 256 bytes
constexpr size_t kMaxKeptPerClass = 512;  // at most 512 KiB per thread in all

size_t classOf(size_t size) { return size == 0 ? 0 : (size - 1) / kClassBytes; }

struct SmallBlocks {
  std::array<std::vector<void*>, kClasses> free;
  ~SmallBlocks() {
    for (auto& list : free) {
      for (void* b : list) ::operator delete(b);
    }
  }
};

SmallBlocks& smallBlocks() {
  thread_local SmallBlocks blocks;
  return blocks;
}

void* allocate(size_t size, void* /*user*/) {
  void* block = nullptr;
  const size_t c = classOf(size);
  if (c < kClasses) {
    std::vector<void*>& kept = smallBlocks().free[c];
    if (!kept.empty()) {
      block = kept.back();
      kept.pop_back();
    } else {
      block = ::operator new((c + 1) * kClassBytes + kHeader, std::nothrow);
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
  const size_t c = classOf(*static_cast<size_t*>(block));
  if (c < kClasses) {
    std::vector<void*>& kept = smallBlocks().free[c];
    if (kept.size() < kMaxKeptPerClass) {
      if (kept.capacity() == 0) kept.reserve(kMaxKeptPerClass);  // never grown while a stream runs
      kept.push_back(block);
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
