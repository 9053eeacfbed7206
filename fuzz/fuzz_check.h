// FUZZ_CHECK: the invariant check of the fuzz entry points. A broken invariant
// prints where and why, then aborts, which libFuzzer reports as a crash (and
// the unit test binary as a failed test).
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, format, ...)                                                        \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant broken: " format "\n", __FILE__, __LINE__ \
                   __VA_OPT__(, ) __VA_ARGS__);                                              \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)
