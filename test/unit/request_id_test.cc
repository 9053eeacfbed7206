// Request ids: the UUIDs the gateway makes, and which client ids it keeps.
#include <catch2/catch.hpp>

#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/request_id.h"

namespace sluice {

TEST_CASE("request id: a random UUID, version 4, RFC 4122 variant", "[request_id]") {
  const std::regex uuid_v4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  // Past several refills of the per-thread pool (256 ids each).
  for (int i = 0; i < 2000; ++i) {
    std::string id = request_id::generate();
    INFO(id);
    REQUIRE(std::regex_match(id, uuid_v4));
    REQUIRE(seen.insert(id).second);
  }
}

TEST_CASE("request id: threads draw their own ids", "[request_id]") {
  std::vector<std::string> a, b;
  std::thread t1([&] { for (int i = 0; i < 500; ++i) a.push_back(request_id::generate()); });
  std::thread t2([&] { for (int i = 0; i < 500; ++i) b.push_back(request_id::generate()); });
  t1.join();
  t2.join();
  std::set<std::string> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  CHECK(all.size() == 1000);
}

TEST_CASE("request id: a client's id is kept only if it looks like one", "[request_id]") {
  CHECK(request_id::acceptable("req-1"));
  CHECK(request_id::acceptable("0f8fad5b-d9cb-469f-a165-70867728950e"));
  CHECK(request_id::acceptable(std::string(request_id::kMaxClientIdBytes, 'a')));
  CHECK_FALSE(request_id::acceptable(""));
  CHECK_FALSE(request_id::acceptable(std::string(request_id::kMaxClientIdBytes + 1, 'a')));
  CHECK_FALSE(request_id::acceptable("has space"));
  CHECK_FALSE(request_id::acceptable("tab\there"));
  CHECK_FALSE(request_id::acceptable("del\x7f"));
  CHECK_FALSE(request_id::acceptable("caf\xc3\xa9"));
}

}  // namespace sluice
