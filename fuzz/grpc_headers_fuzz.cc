// libFuzzer target "grpc_headers": see fuzzGrpcHeaders() in fuzz/fuzz_entry_points.h.
#include "fuzz/fuzz_entry_points.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sluice::fuzzGrpcHeaders(data, size);
  return 0;
}
