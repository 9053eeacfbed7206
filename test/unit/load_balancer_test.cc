// Load balancing policies through a real Cluster on a Dispatcher (no
// connection is made: endpoints are only chosen).
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/cluster_config.h"
#include "core/config_errors.h"
#include "core/dispatcher.h"
#include "core/headers.h"
#include "core/stats.h"
#include "core/timer.h"
#include "upstream/cluster.h"
#include "upstream/endpoint.h"

namespace sluice {
namespace {

// A cluster read from `config` as the config loader would, on a loop of its own.
struct TestCluster {
  explicit TestCluster(const nlohmann::json& config)
      : cluster_config(read(config)), cluster(dispatcher, cluster_config, stats) {}
  ~TestCluster() { cluster.closeAll(); }
  static ClusterConfig read(const nlohmann::json& config) {
    ConfigErrors errors;
    ClusterConfig c = readClusterConfig(config, "/clusters/0", errors);
    REQUIRE(errors.empty());
    return c;
  }
  Dispatcher dispatcher;
  WorkerStats stats;
  ClusterConfig cluster_config;
  Cluster cluster;
};

}  // namespace

TEST_CASE("ring_hash spreads keys evenly over its endpoints", "[load_balancer]") {
  // 64 ring nodes per endpoint split two endpoints 54/46 and three 38/32/30;
  // with 512 each gets its share within a few percent.
  for (int endpoints : {2, 3, 5}) {
    INFO(endpoints << " endpoints");
    nlohmann::json config = {{"name", "ring"}, {"lb_policy", "ring_hash"}, {"hash_header", "x-user"}};
    for (int i = 0; i < endpoints; ++i) config["endpoints"].push_back("127.0.0.1:" + std::to_string(9001 + i));
    TestCluster test(config);
    Cluster& cluster = test.cluster;
    std::map<uint16_t, int> seen;
    constexpr int kKeys = 20000;
    for (int k = 0; k < kKeys; ++k) {
      HeaderMap headers;
      headers.add("x-user", "user-" + std::to_string(k));
      auto chosen = cluster.chooseEndpoint(headers, nullptr);
      REQUIRE(chosen.isOk());
      seen[(*chosen)->address().port]++;
    }
    REQUIRE(seen.size() == static_cast<size_t>(endpoints));
    for (const auto& [port, n] : seen) {
      INFO("port " << port << ": " << n << " of " << kKeys);
      CHECK(std::abs(static_cast<double>(n) / kKeys - 1.0 / endpoints) < 0.04);
    }
  }
}

TEST_CASE("ring_hash moves only the keys of an endpoint added or removed", "[load_balancer]") {
  // Where each of `keys` goes, for a ring of the endpoints on `ports`, each of `weight`.
  auto place = [](const std::vector<int>& ports, int keys, int weight = 1) {
    nlohmann::json config = {{"name", "ring"}, {"lb_policy", "ring_hash"}, {"hash_header", "x-user"}};
    for (int port : ports) {
      config["endpoints"].push_back({{"address", "127.0.0.1:" + std::to_string(port)}, {"weight", weight}});
    }
    TestCluster test(config);
    std::vector<uint16_t> where;
    for (int k = 0; k < keys; ++k) {
      HeaderMap headers;
      headers.add("x-user", "user-" + std::to_string(k));
      auto chosen = test.cluster.chooseEndpoint(headers, nullptr);
      REQUIRE(chosen.isOk());
      where.push_back((*chosen)->address().port);
    }
    return where;
  };
  constexpr int kKeys = 5000;
  const auto three = place({9001, 9002, 9003}, kKeys);
  const auto four = place({9001, 9002, 9003, 9004}, kKeys);
  const auto two = place({9001, 9002}, kKeys);
  int to_new = 0;
  int from_removed = 0;
  for (int k = 0; k < kKeys; ++k) {
    INFO("key " << k << ": " << three[k] << " with three, " << four[k] << " with four, " << two[k] << " with two");
    if (four[k] != three[k]) {
      CHECK(four[k] == 9004);
      ++to_new;
    }
    if (two[k] != three[k]) {
      CHECK(three[k] == 9003);
      ++from_removed;
    }
  }
  // About a quarter go to the new endpoint, about a third leave the old.
  CHECK(std::abs(static_cast<double>(to_new) / kKeys - 0.25) < 0.05);
  CHECK(std::abs(static_cast<double>(from_removed) / kKeys - 1.0 / 3) < 0.05);
  // Weights count in units of their common divisor: 100 each is 1 each,
  // the same ring (not one a hundred times larger, scaled down past its
  // size limit, where keys would move between endpoints that stayed).
  CHECK(place({9001, 9002, 9003, 9004}, kKeys, 100) == four);
}

TEST_CASE("an ejection reported by another worker: same endpoint and address, within max_ejection_percent",
          "[load_balancer]") {
  nlohmann::json config = {
      {"name", "c"},
      {"endpoints", {"127.0.0.1:9001", "127.0.0.1:9002"}},
      {"outlier_detection", {{"consecutive_failures", 1}, {"base_ejection_ms", 1000}, {"max_ejection_percent", 50}}}};
  TestCluster test(config);
  Endpoint& first = *test.cluster.endpoints()[0];
  Endpoint& second = *test.cluster.endpoints()[1];
  const auto now = Endpoint::Clock::now();
  const auto until = now + std::chrono::seconds(30);
  // The same key at another address (a host name the reporting worker
  // resolved differently) is another backend.
  test.cluster.applyEjectionReport(first.key(), second.address(), until);
  CHECK_FALSE(first.ejected(now));
  // Already over: nothing to do.
  test.cluster.applyEjectionReport(first.key(), first.address(), now - std::chrono::seconds(1));
  CHECK_FALSE(first.ejected(now));
  test.cluster.applyEjectionReport(first.key(), first.address(), until);
  CHECK(first.ejected(now));
  CHECK_FALSE(first.ejected(until));
  CHECK(first.ejections() == 1);
  // Counted where it was decided, not here.
  CHECK(test.stats.cluster("c").outlier_ejections.value() == 0);
  // Half the cluster is ejected already: the second stays in.
  test.cluster.applyEjectionReport(second.key(), second.address(), until);
  CHECK_FALSE(second.ejected(now));
  // A second report for an ejected endpoint changes nothing.
  test.cluster.applyEjectionReport(first.key(), first.address(), until + std::chrono::seconds(30));
  CHECK_FALSE(first.ejected(until + std::chrono::seconds(1)));
  CHECK(first.ejections() == 1);
}

TEST_CASE("ejections are forgiven once per period back in service, each period once", "[load_balancer]") {
  nlohmann::json config = {{"name", "c"},
                           {"endpoints", {"127.0.0.1:9001"}},
                           {"outlier_detection", {{"consecutive_failures", 1}, {"base_ejection_ms", 1000}}}};
  TestCluster test(config);
  Endpoint& ep = *test.cluster.endpoints()[0];
  const auto t0 = Endpoint::Clock::now();
  for (int i = 0; i < 5; ++i) ep.eject(t0);  // five ejections, the last ended at t0
  REQUIRE(ep.ejections() == 5);
  const std::chrono::milliseconds period(1000);
  ep.forgiveEjections(t0 + 2 * period + std::chrono::milliseconds(10), period);
  CHECK(ep.ejections() == 3);
  // No new ejection came of it (max_ejection_percent): a later look forgives
  // only the periods since, not the first two again.
  ep.forgiveEjections(t0 + 3 * period + std::chrono::milliseconds(20), period);
  CHECK(ep.ejections() == 2);
  CHECK_FALSE(ep.ejected(t0 + 3 * period + std::chrono::milliseconds(20)));
}

}  // namespace sluice

namespace sluice {

TEST_CASE("a worker that does not check health checks an endpoint the checking worker never reports on",
          "[load_balancer]") {
  // A host name (looked up at load, refreshed every 100 ms), checked every
  // 100 ms by the checking worker, which this one hears nothing from.
  // localhost: answered from /etc/hosts, no resolver asked; nothing need
  // listen on port 9 (the checks' results do not matter here).
  const nlohmann::json config = {{"name", "c"},
                                 {"endpoints", {"localhost:9"}},
                                 {"dns_refresh_ms", 100},
                                 {"health_check", {{"interval_ms", 100}, {"timeout_ms", 50}}}};
  Dispatcher dispatcher;
  WorkerStats stats;
  const ClusterConfig cluster_config = TestCluster::read(config);
  const HealthRole listener{.checks = false, .report = {}, .share_ejection = {}};
  Cluster cluster(dispatcher, cluster_config, stats, listener);
  cluster.startHealthChecks();
  Endpoint& ep = *cluster.endpoints()[0];
  auto runFor = [&](std::chrono::milliseconds how_long) {
    Timer stop(dispatcher, [&] { dispatcher.stop(); });
    stop.enable(how_long);
    dispatcher.run();
  };

  SECTION("reports keep it from checking") {
    TimerPtr report;
    report = std::make_unique<Timer>(dispatcher, [&] {
      cluster.applyHealthReport(ep.key(), ep.address(), true);
      report->enable(std::chrono::milliseconds(50));
    });
    report->enable(std::chrono::milliseconds(0));
    runFor(std::chrono::milliseconds(600));
    CHECK_FALSE(ep.checkedHere());
  }
  SECTION("reports on another address under the same key do not count") {
    // The checking worker resolved the name to another address: its word is
    // about another backend, so this one checks its own.
    SocketAddress elsewhere = ep.address();
    elsewhere.port = static_cast<uint16_t>(elsewhere.port + 1);
    TimerPtr report;
    report = std::make_unique<Timer>(dispatcher, [&] {
      cluster.applyHealthReport(ep.key(), elsewhere, true);
      report->enable(std::chrono::milliseconds(50));
    });
    report->enable(std::chrono::milliseconds(0));
    runFor(std::chrono::milliseconds(1500));
    CHECK(ep.checkedHere());
  }
  SECTION("three intervals without a report: it checks, until a report comes") {
    CHECK_FALSE(ep.checkedHere());
    runFor(std::chrono::milliseconds(1500));  // room for a loaded machine's late timers
    CHECK(ep.checkedHere());
    cluster.applyHealthReport(ep.key(), ep.address(), true);
    CHECK_FALSE(ep.checkedHere());
    CHECK(ep.activeHealthy());
  }
  cluster.closeAll();
}

}  // namespace sluice
