// grpc.health.v1 messages as the gateway writes and reads them by hand.
#include <catch2/catch.hpp>

#include "codecs/grpc/health_messages.h"

namespace sluice {

using health_messages::ServingStatus;

TEST_CASE("health messages: requests both ways", "[health_messages]") {
  CHECK(health_messages::encodeRequest("").empty());  // proto3 leaves "" out
  CHECK(health_messages::encodeRequest("a.B") == std::string("\x0a\x03" "a.B", 5));
  std::string long_name(300, 's');
  std::string encoded = health_messages::encodeRequest(long_name);
  CHECK(encoded.substr(0, 3) == std::string("\x0a\xac\x02", 3));  // 300 as a two-byte varint
  CHECK(health_messages::decodeRequest(encoded) == long_name);
  CHECK(health_messages::decodeRequest("") == std::string());
  // Unknown fields of every wire type are skipped.
  CHECK(health_messages::decodeRequest(std::string("\x10\x07" "\x19" "12345678" "\x25" "1234" "\x0a\x01x", 19)) == "x");
  // Malformed: a length past the end, a truncated varint, field number 0,
  // a field number past 2^29 - 1, a group wire type, a fixed64 cut short.
  CHECK_FALSE(health_messages::decodeRequest(std::string("\x0a\x05" "ab", 4)));
  CHECK_FALSE(health_messages::decodeRequest(std::string("\x0a\x80", 2)));
  CHECK_FALSE(health_messages::decodeRequest(std::string("\x02\x00", 2)));
  // Field 1 as a number is an unknown field, as in protobuf.
  CHECK(health_messages::decodeRequest(std::string("\x08\x01", 2)) == std::string());
  CHECK_FALSE(health_messages::decodeRequest(std::string("\x80\x80\x80\x80\x10\x00", 6)));  // field 2^29
  CHECK_FALSE(health_messages::decodeRequest(std::string("\x0b", 1)));
  CHECK_FALSE(health_messages::decodeRequest(std::string("\x19" "123", 4)));
}

TEST_CASE("health messages: responses both ways", "[health_messages]") {
  CHECK(health_messages::encodeResponse(ServingStatus::Serving) == std::string("\x08\x01", 2));
  CHECK(health_messages::encodeResponse(ServingStatus::NotServing) == std::string("\x08\x02", 2));
  CHECK(health_messages::encodeResponse(ServingStatus::Unknown).empty());
  CHECK(health_messages::decodeResponseStatus(std::string("\x08\x01", 2)) == 1);
  CHECK(health_messages::decodeResponseStatus("") == 0);
  CHECK(health_messages::decodeResponseStatus(std::string("\x12\x01z\x08\x02", 5)) == 2);
  CHECK_FALSE(health_messages::decodeResponseStatus(std::string("\x08", 1)));
  // Unknown fixed-width fields are skipped, not taken for a malformed answer.
  CHECK(health_messages::decodeResponseStatus(std::string("\x08\x01\x0d" "abcd", 7)) == 1);
  CHECK(health_messages::decodeResponseStatus(std::string("\x09" "12345678" "\x08\x01", 11)) == 1);
}

}  // namespace sluice
