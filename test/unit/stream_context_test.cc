// StreamContext: typed per-call filter state, the call's start times.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "test/unit/fake_context.h"

namespace sluice {
namespace {

using test::FakeContext;

struct Identity : FilterState {
  explicit Identity(std::string p) : principal(std::move(p)) {}
  std::string principal;
};

struct Counted : FilterState {
  explicit Counted(int& live) : live_(live) { ++live_; }
  ~Counted() override { --live_; }
  int& live_;
};

}  // namespace

TEST_CASE("stream context: filter state is typed and keyed", "[stream_context]") {
  FakeContext ctx;
  CHECK(ctx.filterState<Identity>("auth.identity") == nullptr);
  ctx.setFilterState("auth.identity", std::make_unique<Identity>("user-42"));
  Identity* id = ctx.filterState<Identity>("auth.identity");
  REQUIRE(id != nullptr);
  CHECK(id->principal == "user-42");
  // A filter may update what it finds.
  id->principal = "user-43";
  CHECK(ctx.filterState<Identity>("auth.identity")->principal == "user-43");
  // Another key, or another type under the key: nothing.
  CHECK(ctx.filterState<Identity>("auth.other") == nullptr);
  CHECK(ctx.filterState<Counted>("auth.identity") == nullptr);
}

TEST_CASE("stream context: filter state is owned by the context", "[stream_context]") {
  int live = 0;
  {
    FakeContext ctx;
    ctx.setFilterState("a", std::make_unique<Counted>(live));
    ctx.setFilterState("b", std::make_unique<Counted>(live));
    CHECK(live == 2);
    ctx.setFilterState("a", std::make_unique<Counted>(live));  // replaces: the old one is destroyed
    CHECK(live == 2);
    ctx.setFilterState("b", nullptr);  // removes
    CHECK(live == 1);
    CHECK(ctx.filterState<Counted>("b") == nullptr);
    CHECK(ctx.filterState<Counted>("a") != nullptr);
  }
  CHECK(live == 0);  // destroyed with the context
}

TEST_CASE("stream context: the start, on the monotonic and the wall clock", "[stream_context]") {
  auto wall_before = std::chrono::system_clock::now();
  auto before = StreamContext::Clock::now();
  FakeContext ctx;
  CHECK(ctx.startTime() >= before);
  CHECK(ctx.startTime() <= StreamContext::Clock::now());
  CHECK(ctx.startSystemTime() >= wall_before - std::chrono::seconds(1));  // the wall clock may step
  CHECK(ctx.startSystemTime() <= std::chrono::system_clock::now() + std::chrono::seconds(1));
}

}  // namespace sluice
