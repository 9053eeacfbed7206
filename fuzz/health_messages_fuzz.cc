// libFuzzer target "health_messages": see fuzzHealthMessages() in fuzz/fuzz_entry_points.h.
#include "fuzz/fuzz_entry_points.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sluice::fuzzHealthMessages(data, size);
  return 0;
}
