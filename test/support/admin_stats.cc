#include "test/support/admin_stats.h"

#include <catch2/catch.hpp>

#include <sstream>

#include "test/support/http_client.h"

namespace sluice::test {

std::map<std::string, int64_t> readStats(const std::string& admin) {
  HttpReply reply = http(admin, "GET", "/stats");
  REQUIRE(reply.status == 200);
  std::map<std::string, int64_t> values;
  std::istringstream in(reply.body);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    values[line.substr(0, colon)] = std::stoll(line.substr(colon + 2));
  }
  return values;
}

int64_t statValue(const std::map<std::string, int64_t>& stats, const std::string& name) {
  auto it = stats.find(name);
  INFO("stat " << name);
  REQUIRE(it != stats.end());
  return it->second;
}

int64_t statValue(const std::string& admin, const std::string& name) { return statValue(readStats(admin), name); }

}  // namespace sluice::test
