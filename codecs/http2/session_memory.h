// The allocator nghttp2's sessions use: C++'s operator new and delete instead
// of malloc, so that what nghttp2 holds (frames waiting to be written, streams,
// HPACK tables, header blocks) is in the process's counts of allocations and
// heap bytes wherever those count operator new (the `sluice` binary's, which
// overload.max_heap_bytes is checked against), not left out as malloc is
// under mimalloc. Small blocks (a frame's item) are reused per thread.
#pragma once

#include <nghttp2/nghttp2.h>  // nghttp2_mem is a typedef: no forward declaration

namespace sluice::http2 {

// Shared by every session, for their whole life: a static with no state.
nghttp2_mem* sessionAllocator();

}  // namespace sluice::http2
