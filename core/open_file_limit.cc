#include "core/open_file_limit.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sluice {

OpenFileLimit raiseOpenFileLimit(uint64_t cap) {
  OpenFileLimit out;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    out.error = std::strerror(errno);
    return out;
  }
  out.before = out.after = limit.rlim_cur;
  const uint64_t wanted = std::min<uint64_t>(limit.rlim_max, cap);
  if (limit.rlim_cur >= wanted) return out;
  limit.rlim_cur = wanted;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    out.error = std::strerror(errno);
    return out;
  }
  out.after = wanted;
  return out;
}

}  // namespace sluice
