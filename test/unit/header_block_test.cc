#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/headers.h"

namespace sluice {
namespace {

std::vector<std::string> fieldsOf(const HeaderBlock& block) {
  std::vector<std::string> out;
  block.forEach([&](const Header& h) { out.push_back(h.name + "=" + h.value); });
  return out;
}

TEST_CASE("a header block lists pseudo-headers first, then its own fields, then the forwarded ones",
          "[header_block]") {
  HeaderMap client;
  client.add("x-tenant", "a");
  client.add(":path", "/client.Svc/M");
  client.add("drop-me", "1");
  client.add("x-tenant", "b");  // repeated values keep their order

  HeaderBlock block;
  block.own.add("grpc-timeout", "5S");
  block.own.add(":method", "POST");
  block.forwarded = &client;
  block.forward = [](const Header& h) { return h.name != "drop-me"; };

  CHECK(fieldsOf(block) == std::vector<std::string>{":method=POST", ":path=/client.Svc/M", "grpc-timeout=5S",
                                                    "x-tenant=a", "x-tenant=b"});
}

TEST_CASE("a header block reads its forwarded map when it is listed, not when it is made", "[header_block]") {
  HeaderMap client;
  HeaderBlock block;
  block.forwarded = &client;  // no filter: every field goes
  client.add("late", "yes");
  CHECK(fieldsOf(block) == std::vector<std::string>{"late=yes"});

  HeaderBlock own_only;
  own_only.own.add("te", "trailers");
  CHECK(fieldsOf(own_only) == std::vector<std::string>{"te=trailers"});
}

TEST_CASE("a header map copies decoded fields in, in order, long and short alike", "[header_block]") {
  // addCopy is what the sessions use for each field nghttp2 decodes: the
  // bytes it is given are gone after the callback.
  HeaderMap map;
  std::string name = ":path";
  std::string value = "/a.long.package.Service/AMethodNameLongerThanAnyInlineBuffer";
  map.addCopy(name, value);
  map.addCopy(std::string_view("te"), std::string_view("trailers"));
  name.assign(name.size(), '?');
  value.assign(value.size(), '?');
  REQUIRE(map.get(":path") != nullptr);
  CHECK(*map.get(":path") == "/a.long.package.Service/AMethodNameLongerThanAnyInlineBuffer");
  HeaderBlock block;
  block.forwarded = &map;
  CHECK(fieldsOf(block) ==
        std::vector<std::string>{":path=/a.long.package.Service/AMethodNameLongerThanAnyInlineBuffer", "te=trailers"});
}

}  // namespace
TEST_CASE("equalsLowercaseAscii compares as HTTP does: ASCII letters in any case, nothing else", "[headers]") {
  CHECK(equalsLowercaseAscii("Application/GRPC", "application/grpc"));
  CHECK(equalsLowercaseAscii("BEARER", "bearer"));
  CHECK(equalsLowercaseAscii("100-Continue", "100-continue"));
  CHECK_FALSE(equalsLowercaseAscii("bearer ", "bearer"));  // lengths differ
  CHECK_FALSE(equalsLowercaseAscii("bearex", "bearer"));
  // Not letters: no case to ignore (`@` is not a capital backquote).
  CHECK_FALSE(equalsLowercaseAscii("@", "`"));
  CHECK_FALSE(equalsLowercaseAscii("\xC9", "\xE9"));  // Latin-1 É/é: not ASCII
}

}  // namespace sluice
