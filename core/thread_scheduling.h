// How a worker thread asks the kernel to schedule it (worker_sched_slice_us).
//
// Linux's EEVDF scheduler (6.6+; custom slices since 6.12) gives every thread
// of the normal policy a slice, 0.7 ms x (1 + log2 of the CPUs) by default. A
// thread that wakes preempts the running one only when its own virtual
// deadline, a slice past when it became eligible, comes first; a long slice
// makes a woken worker wait for the client or backend running on its core.
// A gateway's worker runs for microseconds per wake-up, so it asks for a short
// slice: woken by a socket, it runs at once; its share of the CPU does not
// change (that is its weight, the nice value, untouched here).
#pragma once

#include <cstdint>
#include <string>

namespace sluice {

struct SchedSliceResult {
  enum class Kind {
    Applied,      // the kernel now uses `slice_ns` for this thread
    Unsupported,  // the kernel keeps its own slice (before Linux 6.12)
    NotFairPolicy,  // the thread runs under a real-time or idle policy: slices do not apply
    Failed,       // the system call failed; `error` says why
  };
  Kind kind = Kind::Failed;
  uint64_t slice_ns = 0;  // what the kernel reports for the thread afterwards
  std::string error;
};

// Sets the calling thread's slice to `slice_us` microseconds (0: the kernel's
// default), keeping its policy and nice value.
SchedSliceResult setCurrentThreadSlice(uint32_t slice_us);

// Names the calling thread (at most 15 characters), for top -H and /proc.
void nameCurrentThread(const std::string& name);

}  // namespace sluice
