#include "core/thread_scheduling.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace sluice {
namespace {

// The kernel's struct sched_attr (linux/sched/types.h), spelled out here:
// newer glibc declares its own in <sched.h>, and the two cannot be included
// together.
struct KernelSchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;  // for the normal policies: the slice (Linux 6.12+)
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

constexpr uint32_t kSchedNormal = 0;  // SCHED_OTHER
constexpr uint32_t kSchedBatch = 3;
constexpr uint64_t kResetOnFork = 0x01;  // SCHED_FLAG_RESET_ON_FORK

bool readAttr(KernelSchedAttr& attr) {
  std::memset(&attr, 0, sizeof attr);
  return syscall(SYS_sched_getattr, 0, &attr, sizeof attr, 0) == 0;
}

}  // namespace

SchedSliceResult setCurrentThreadSlice(uint32_t slice_us) {
  SchedSliceResult result;
  KernelSchedAttr attr;
  if (!readAttr(attr)) {
    result.error = fmt::format("sched_getattr: {}", std::strerror(errno));
    return result;
  }
  if (attr.sched_policy != kSchedNormal && attr.sched_policy != kSchedBatch) {
    result.kind = SchedSliceResult::Kind::NotFairPolicy;
    return result;
  }
  // Same policy and nice value: only the slice changes, which needs no privilege.
  KernelSchedAttr want = attr;
  want.size = sizeof want;
  want.sched_flags = attr.sched_flags & kResetOnFork;
  want.sched_runtime = uint64_t{slice_us} * 1000;
  want.sched_deadline = 0;
  want.sched_period = 0;
  if (syscall(SYS_sched_setattr, 0, &want, 0) != 0) {
    result.error = fmt::format("sched_setattr: {}", std::strerror(errno));
    return result;
  }
  if (!readAttr(attr)) {
    result.error = fmt::format("sched_getattr: {}", std::strerror(errno));
    return result;
  }
  // Kernels before 6.12 accept the call, ignore the runtime and report 0.
  result.slice_ns = attr.sched_runtime;
  bool took = slice_us == 0 ? attr.sched_runtime != 0 : attr.sched_runtime == want.sched_runtime;
  result.kind = took ? SchedSliceResult::Kind::Applied : SchedSliceResult::Kind::Unsupported;
  return result;
}

void nameCurrentThread(const std::string& name) {
  (void)pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace sluice
