// The fuzz entry point of the grpc.health.v1 messages the gateway reads from
// clients (health_service) and backends (health checks). Apart from
// entry_points.cc so that it builds with codecs/grpc/health_messages.cc alone.
#include <string>

#include "codecs/grpc/health_messages.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_entry_points.h"

namespace sluice {

void fuzzHealthMessages(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto service = health_messages::decodeRequest(input)) {
    // The name is bytes of the input: at most all of them but a tag and a length.
    FUZZ_CHECK(service->empty() || service->size() + 2 <= size, "a service name of %zu bytes out of %zu",
               service->size(), size);
    auto again = health_messages::decodeRequest(health_messages::encodeRequest(*service));
    FUZZ_CHECK(again && *again == *service, "the service name did not survive encoding");
  }
  if (auto status = health_messages::decodeResponseStatus(input)) {
    if (*status >= 0 && *status <= 3) {
      auto again = health_messages::decodeResponseStatus(
          health_messages::encodeResponse(static_cast<health_messages::ServingStatus>(*status)));
      FUZZ_CHECK(again == *status, "status %d did not survive encoding", *status);
    }
  }
}

}  // namespace sluice
