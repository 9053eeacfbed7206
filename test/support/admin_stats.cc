#include "test/support/admin_stats.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
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

double metric(const std::string& text, const std::string& name, const std::vector<std::string>& needles) {
  double sum = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + "{", 0) != 0 && line.rfind(name + " ", 0) != 0) continue;
    bool all = true;
    for (const auto& n : needles) all = all && line.find(n) != std::string::npos;
    if (all) sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

void checkWithPromtool(const std::string& text, const std::string& file) {
  std::ofstream(file) << text;
  std::string cmd = "promtool check metrics < " + file + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  int rc = pclose(p);
  INFO("promtool: " << out);
  CHECK(rc == 0);
}

}  // namespace sluice::test
