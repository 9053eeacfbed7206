// Process-wide count of heap allocations, for proving the data path allocates
// nothing per message, and the heap in use, for overload.max_heap_bytes. The
// `sluice` binary counts (examples/allocation_counting.cc replaces operator
// new); a library user who does not opt in reads "not counted", and the heap
// as malloc reports it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace sluice::allocation_counter {

using CountFn = uint64_t (*)();
// Installed once at start-up by a binary that counts its allocations.
void install(CountFn fn);
// Allocations so far, or nullopt when this process does not count them.
std::optional<uint64_t> current();

using HeapBytesFn = uint64_t (*)();
// Installed once at start-up by a binary whose allocator malloc's own figures
// do not see (mimalloc replaces malloc).
void installHeapBytes(HeapBytesFn fn);
// Heap bytes allocated and not freed: the installed measure; else glibc
// malloc's chunks in use, large (mmapped) ones included, or under
// AddressSanitizer its allocator's. Freed memory an allocator keeps for reuse
// does not count, so the figure falls as soon as memory is freed, unlike the
// resident set size. glibc's figure walks every free chunk of every arena
// under its lock: microseconds, milliseconds on a much fragmented heap; for a
// periodic check, never the data path. An application linking another
// allocator (jemalloc, tcmalloc, mimalloc) must install its own, or reads ~0.
uint64_t heapBytesInUse();

using UsableSizeFn = size_t (*)(const void*);
// Installed with installHeapBytes by a binary that counts bytes itself: how
// many it counts for the block at `p` (mimalloc's mi_usable_size).
void installUsableSize(UsableSizeFn fn);
// The bytes heapBytesInUse() counts for the heap block at `p`, which an
// allocator rounds up from what was asked (mimalloc by up to half for
// blocks of 64 KiB to 256 KiB): what the buffer pool subtracts from the heap
// for the buffers it keeps, so that an idle gateway's heap reads idle.
// Without an installed measure, malloc_usable_size (glibc's, or the
// sanitizer's under AddressSanitizer).
size_t usableSize(const void* p);

}  // namespace sluice::allocation_counter
