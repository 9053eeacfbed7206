// WorkerStats' per-method series: one per path, bounded against clients that
// invent method names; and filters' own counters, bounded the same way.
#include <catch2/catch.hpp>

#include <set>
#include <stdexcept>
#include <string>

#include "core/stats.h"

namespace sluice {
namespace {

TEST_CASE("methodForCall keeps one series per path, up to the bound", "[stats]") {
  WorkerStats stats;
  MethodStats& first = *stats.methodForCall("/a.S/M0", "a.S", "M0", PathAdmission::Proven);
  CHECK(stats.methodForCall("/a.S/M0", "a.S", "M0", PathAdmission::Proven) == &first);
  std::set<MethodStats*> distinct{&first};
  for (size_t i = 1; i < WorkerStats::kMaxMethodPaths; ++i) {
    std::string method = "M" + std::to_string(i);
    distinct.insert(stats.methodForCall("/a.S/" + method, "a.S", method, PathAdmission::Proven));
  }
  CHECK(distinct.size() == WorkerStats::kMaxMethodPaths);

  MethodStats& past = *stats.methodForCall("/a.S/Mnew", "a.S", "Mnew", PathAdmission::Proven);
  CHECK(distinct.count(&past) == 0);
  CHECK(stats.methodForCall("/b.S/Other", "b.S", "Other", PathAdmission::Proven) == &past);
  CHECK(stats.methodForCall("/a.S/M0", "a.S", "M0", PathAdmission::Proven) == &first);  // known paths keep theirs

  std::set<std::string> services;
  stats.forEachMethod([&](const std::string& service, const std::string& method, const std::string&,
                          const MethodStats&) { services.insert(service + "/" + method); });
  CHECK(services.size() == WorkerStats::kMaxMethodPaths + 1);
  CHECK(services.count("(other)/(other)") == 1);
}

TEST_CASE("methodForCall gives a new path its own series only when admitted", "[stats]") {
  WorkerStats stats;
  CHECK(stats.methodForCall("/a.S/M", "a.S", "M", PathAdmission::Known) == nullptr);
  MethodStats* admitted = stats.methodForCall("/a.S/M", "a.S", "M", PathAdmission::Proven);
  REQUIRE(admitted != nullptr);
  CHECK(admitted != &stats.otherMethod());
  CHECK(stats.methodForCall("/a.S/M", "a.S", "M", PathAdmission::Known) == admitted);  // known now
}

// Calls no backend answered (a tiny deadline, a cancel) prove nothing: made-up
// names sent that way may take only the few unproven series.
TEST_CASE("methodForCall keeps at most kMaxUnprovenMethodPaths paths no backend answered", "[stats]") {
  WorkerStats stats;
  MethodStats& other = stats.otherMethod();
  std::set<MethodStats*> unproven;
  for (size_t i = 0; i < WorkerStats::kMaxUnprovenMethodPaths; ++i) {
    const std::string method = "U" + std::to_string(i);
    unproven.insert(stats.methodForCall("/u.S/" + method, "u.S", method, PathAdmission::Unproven));
  }
  CHECK(unproven.size() == WorkerStats::kMaxUnprovenMethodPaths);
  CHECK(unproven.count(&other) == 0);
  CHECK(stats.methodForCall("/u.S/Late", "u.S", "Late", PathAdmission::Unproven) == &other);
  // A method its backend answered still gets its series...
  MethodStats* real = stats.methodForCall("/r.S/M", "r.S", "M", PathAdmission::Proven);
  CHECK(real != &other);
  // ...and an unproven path its backend then answers is proven, making room.
  bool still_unproven = false;
  MethodStats* u0 = stats.methodForCall("/u.S/U0", "u.S", "U0", PathAdmission::Known, &still_unproven);
  CHECK(still_unproven);
  CHECK(stats.methodForCall("/u.S/U0", "u.S", "U0", PathAdmission::Proven, &still_unproven) == u0);
  CHECK_FALSE(still_unproven);
  CHECK(stats.methodForCall("/u.S/Late", "u.S", "Late", PathAdmission::Unproven) != &other);
}

// Series are per worker, but the scrape lists each path once: the bound
// holds over every worker together.
TEST_CASE("workers sharing a MethodPathBudget keep kMaxMethodPaths paths between them", "[stats]") {
  MethodPathBudget budget;
  WorkerStats one;
  WorkerStats two;
  one.shareMethodPaths(&budget);
  two.shareMethodPaths(&budget);
  for (size_t i = 0; i < WorkerStats::kMaxMethodPaths; ++i) {
    const std::string method = "M" + std::to_string(i);
    CHECK(one.methodForCall("/a.S/" + method, "a.S", method, PathAdmission::Proven) != &one.otherMethod());
  }
  // The other worker takes paths the first admitted, and no new one.
  CHECK(two.methodForCall("/a.S/M7", "a.S", "M7", PathAdmission::Proven) != &two.otherMethod());
  CHECK(two.methodForCall("/b.S/New", "b.S", "New", PathAdmission::Proven) == &two.otherMethod());
  // The unproven share is global too.
  MethodPathBudget shared;
  WorkerStats three;
  WorkerStats four;
  three.shareMethodPaths(&shared);
  four.shareMethodPaths(&shared);
  for (size_t i = 0; i < WorkerStats::kMaxUnprovenMethodPaths; ++i) {
    const std::string method = "U" + std::to_string(i);
    CHECK(three.methodForCall("/u.S/" + method, "u.S", method, PathAdmission::Unproven) != &three.otherMethod());
  }
  CHECK(four.methodForCall("/u.S/Late", "u.S", "Late", PathAdmission::Unproven) == &four.otherMethod());
  CHECK(four.methodForCall("/r.S/Real", "r.S", "Real", PathAdmission::Proven) != &four.otherMethod());
}

TEST_CASE("methodForCall counts an overlong path under (other) without keeping it", "[stats]") {
  WorkerStats stats;
  std::string method(WorkerStats::kMaxMethodPathBytes, 'x');
  MethodStats& longOne = *stats.methodForCall("/a.S/" + method, "a.S", method, PathAdmission::Proven);
  MethodStats& other = *stats.methodForCall("/a.S/" + method + "y", "a.S", method + "y", PathAdmission::Proven);
  CHECK(&longOne == &other);
  size_t series = 0;
  stats.forEachMethod([&](const std::string& service, const std::string&, const std::string&, const MethodStats&) {
    CHECK(service == "(other)");
    ++series;
  });
  CHECK(series == 1);
}

// Under dns_addresses "all" every new address of a name is an endpoint key:
// keeping each one's gauge for good grew the heap for as long as the
// addresses churned.
TEST_CASE("an endpoint's in-flight gauge is shared while held and forgotten when the last holder lets go",
          "[stats]") {
  WorkerStats stats;
  Gauge& first = stats.holdEndpointGauge("c", "svc:80/10.0.0.1");
  Gauge& second = stats.holdEndpointGauge("c", "svc:80/10.0.0.1");  // a reload's copy of the endpoint
  stats.holdEndpointGauge("c", "svc:80/10.0.0.2");
  CHECK(&first == &second);
  first.inc();
  CHECK(stats.endpointActive("c", "svc:80/10.0.0.1") == 1);
  CHECK(stats.endpointGaugeCount() == 2);
  stats.releaseEndpointGauge("c", "svc:80/10.0.0.1");
  CHECK(stats.endpointActive("c", "svc:80/10.0.0.1") == 1);  // still held
  first.dec();
  stats.releaseEndpointGauge("c", "svc:80/10.0.0.1");
  stats.releaseEndpointGauge("c", "svc:80/10.0.0.2");
  CHECK(stats.endpointGaugeCount() == 0);
}

TEST_CASE("filterCounter: one counter per name, checked names, bounded", "[stats]") {
  WorkerStats stats;
  Counter& hits = stats.filterCounter("cache_hits");
  hits.inc(2);
  CHECK(&stats.filterCounter("cache_hits") == &hits);
  CHECK_THROWS_AS(stats.filterCounter("Cache"), std::invalid_argument);
  CHECK_THROWS_AS(stats.filterCounter("9lives"), std::invalid_argument);
  CHECK_THROWS_AS(stats.filterCounter("a-b"), std::invalid_argument);
  // Names promtool would refuse, or that would read oddly with _total.
  for (const char* bad : {"message_counter_dropped", "queue_gauge", "wait_ms", "bytes_total", "a__b", "a_", "x_s"}) {
    INFO(bad);
    CHECK_THROWS_AS(stats.filterCounter(bad), std::invalid_argument);
  }
  CHECK_NOTHROW(stats.filterCounter("dropped_messages"));
  CHECK_NOTHROW(stats.filterCounter("wait_seconds2"));
  CHECK_THROWS_AS(stats.filterCounter(""), std::invalid_argument);
  CHECK_THROWS_AS(stats.filterCounter(std::string(WorkerStats::kMaxFilterCounterNameBytes + 1, 'a')),
                  std::invalid_argument);
  for (size_t i = 3; i < WorkerStats::kMaxFilterCounters; ++i) stats.filterCounter("c" + std::to_string(i));
  Counter& past = stats.filterCounter("one_too_many");
  CHECK(&past == &stats.filterCounter(WorkerStats::kOtherFilterCounter));
  CHECK(&stats.filterCounter("another") == &past);
  CHECK(&stats.filterCounter("cache_hits") == &hits);  // names made before still count on their own
  size_t names = 0;
  stats.forEachFilterCounter([&](const std::string&, const Counter&) { ++names; });
  CHECK(names == WorkerStats::kMaxFilterCounters + 1);
}

}  // namespace
}  // namespace sluice
