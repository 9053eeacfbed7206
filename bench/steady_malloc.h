// Keeps freed memory in the benchmark programs' heaps.
//
// The load client and the backend are load generators: they must not be
// what a measurement measures. With glibc's defaults they were. A grpc++
// peer moving 64 KiB messages frees its read and message buffers as fast as
// it allocates them, and glibc hands the freed top of each thread's arena
// back to the kernel (madvise) and unmaps large blocks, so every message
// paid a page fault per 4 KiB touched, plus a TLB-shootdown interrupt on the
// other core, where the gateway runs. Profiled on 2026-12-04, that was most
// of the client's CPU, and it varied so much between runs that streaming
// throughput swung 2x with nothing changed. Keeping freed memory (as a
// long-running server's allocator would) costs nothing but resident memory,
// and applies to every target alike.
#pragma once

#include <malloc.h>

namespace sluice::bench {

inline void keepFreedMemory() {
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // never give the heap's top back
  // Setting the trim threshold freezes glibc's adaptive mmap threshold at
  // 128 KiB: raise it by hand to its ceiling (32 MiB on 64-bit), so that
  // large messages come from the heap instead of a fresh mmap each time.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
}

}  // namespace sluice::bench
