// The query of GET /stats and /stats/prometheus: filter=REGEX and usedonly.
#include <catch2/catch.hpp>

#include "listeners/stats_render.h"

namespace sluice {

TEST_CASE("stats query: filter, usedonly, and every mistake", "[stats]") {
  std::string error;
  auto none = parseStatsQuery("", error);
  REQUIRE(none);
  CHECK_FALSE(none->filter);
  CHECK_FALSE(none->used_only);
  auto both = parseStatsQuery("usedonly&filter=%5Ecluster%5C.", error);  // ^cluster\.
  REQUIRE(both);
  CHECK(both->used_only);
  REQUIRE(both->filter);
  CHECK(both->filter->search("cluster.echo.upstream_rq_total"));
  CHECK_FALSE(both->filter->search("listener.cluster.x"));
  CHECK(parseStatsQuery("filter=a&&usedonly&", error));  // empty parameters are skipped
  CHECK(parseStatsQuery("filter=a+b", error)->filter->search("aab"));  // '+' stays a regex '+'
  CHECK_FALSE(parseStatsQuery("usedonly=0", error)->used_only);
  CHECK_FALSE(parseStatsQuery("usedonly=false", error)->used_only);
  CHECK(parseStatsQuery("usedonly=1", error)->used_only);
  CHECK(parseStatsQuery("usedonly=true", error)->used_only);
  for (const char* bad : {"filter=%28", "filter=a&filter=b", "format=json", "=x", "filter=caf%C3%A9", "filter",
                          "usedonly=maybe"}) {
    INFO(bad);
    error.clear();
    CHECK_FALSE(parseStatsQuery(bad, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("stats query: /stats lines and whole Prometheus families are kept", "[stats]") {
  std::string error;
  auto q = parseStatsQuery("filter=rq_&usedonly", error);
  REQUIRE(q);
  CHECK(filterStatsText("a.rq_total: 3\na.rq_active: 0\na.cx_total: 5\n", *q) == "a.rq_total: 3\n");
  auto h = parseStatsQuery("filter=handling", error);
  REQUIRE(h);
  const std::string prometheus =
      "# HELP grpc_server_handling_seconds h\n# TYPE grpc_server_handling_seconds histogram\n"
      "grpc_server_handling_seconds_bucket{le=\"0.5\"} 1\ngrpc_server_handling_seconds_sum 0.1\n"
      "grpc_server_handling_seconds_count 1\n"
      "# HELP sluice_x_total x\n# TYPE sluice_x_total counter\nsluice_x_total 2\n";
  const std::string kept = filterPrometheus(prometheus, *h);
  CHECK(kept == prometheus.substr(0, prometheus.find("# HELP sluice_x_total")));
  StatsQuery all;
  CHECK(filterPrometheus(prometheus, all) == prometheus);
}

}  // namespace sluice
