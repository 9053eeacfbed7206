// OverloadState: when each action turns on and off; and the pooled message
// buffers that the heap figure leaves out.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/allocation_counter.h"
#include "core/buffer_pool.h"
#include "core/overload.h"

namespace sluice {

TEST_CASE("overload actions turn on at their share and off 2 points of the maximum below it", "[overload]") {
  constexpr uint64_t MiB = 1 << 20;
  OverloadConfig config;
  config.max_heap_bytes = 100 * MiB;
  config.refuse_calls_percent = 50;
  config.refuse_connections_percent = 80;
  OverloadState state;
  CHECK_FALSE(state.enabled());
  state.update(config.refuseCallsAt() - 1, config);
  CHECK(state.enabled());
  CHECK_FALSE(state.refusingCalls());
  state.update(config.refuseCallsAt(), config);
  CHECK(state.refusingCalls());
  CHECK_FALSE(state.refusingConnections());
  // Within the margin: still on.
  state.update(config.refuseCallsAt() - 1 * MiB, config);
  CHECK(state.refusingCalls());
  state.update(config.refuseCallsAt() - 2 * MiB, config);
  CHECK(state.refusingCalls());
  state.update(config.refuseCallsAt() - 2 * MiB - 1, config);
  CHECK_FALSE(state.refusingCalls());
  state.update(90 * MiB, config);
  CHECK(state.refusingCalls());
  CHECK(state.refusingConnections());
  CHECK(state.heapBytes() == 90 * MiB);
  CHECK(state.maxHeapBytes() == 100 * MiB);
  state.update(79 * MiB, config);
  CHECK(state.refusingConnections());
  state.update(77 * MiB, config);
  CHECK_FALSE(state.refusingConnections());
  CHECK(state.refusingCalls());
  state.update(90 * MiB, config);
  state.clear();
  CHECK_FALSE(state.enabled());
  CHECK_FALSE(state.refusingCalls());
  CHECK_FALSE(state.refusingConnections());
}

TEST_CASE("an action at a share of 2% or less turns off half the share below it", "[overload]") {
  constexpr uint64_t MiB = 1 << 20;
  OverloadConfig config;
  config.max_heap_bytes = 100 * MiB;
  config.refuse_calls_percent = 2;  // the whole 2-point margin would be below 0
  OverloadState state;
  state.update(config.refuseCallsAt(), config);
  REQUIRE(state.refusingCalls());
  state.update(config.refuseCallsAt() / 2, config);
  CHECK(state.refusingCalls());
  state.update(config.refuseCallsAt() / 2 - 1, config);
  CHECK_FALSE(state.refusingCalls());
}

TEST_CASE("past reset_calls_percent a check asks for the bytes down to 2 points of the maximum below it",
          "[overload]") {
  constexpr uint64_t MiB = 1 << 20;
  OverloadConfig config;
  config.max_heap_bytes = 100 * MiB;
  config.reset_calls_percent = 90;
  OverloadState state;
  state.update(89 * MiB, config);
  CHECK(state.bytesToFree() == 0);
  state.update(config.resetCallsAt() + 5 * MiB, config);
  CHECK(state.bytesToFree() == 5 * MiB + 2 * MiB);
  state.update(config.resetCallsAt() - 1, config);  // each check on its own: no margin to stay on
  CHECK(state.bytesToFree() == 0);
  config.reset_calls_percent = 1;  // a share smaller than the margin: half the share instead
  state.update(3 * MiB, config);
  CHECK(state.bytesToFree() == 3 * MiB - config.resetCallsAt() / 2);
  state.clear();
  CHECK(state.bytesToFree() == 0);
}

TEST_CASE("buffers kept in a pool are counted as pooled until taken again", "[overload]") {
  // Tests run before this one in the same process may have filled this
  // thread's pool to its cap, where a release is not kept: empty it first.
  std::vector<std::string> earlier;
  while (buffer_pool::pooledBytes() > 0) earlier.push_back(buffer_pool::acquire(1));
  const uint64_t before = buffer_pool::pooledBytes();
  std::vector<std::string> buffers;
  for (int i = 0; i < 4; ++i) buffers.push_back(buffer_pool::acquire(100000));
  size_t capacity = 0;
  // As the heap counts them: what the allocator gave, not the capacity asked.
  for (auto& b : buffers) capacity += allocation_counter::usableSize(b.data());
  for (auto& b : buffers) buffer_pool::release(std::move(b));
  CHECK(buffer_pool::pooledBytes() == before + capacity);
  std::vector<std::string> again;
  for (int i = 0; i < 4; ++i) again.push_back(buffer_pool::acquire(100000));
  CHECK(buffer_pool::pooledBytes() == before);
  // Too large to keep: freed, never counted.
  buffer_pool::release(std::string(1 << 20, 'x'));
  CHECK(buffer_pool::pooledBytes() == before);
}

}  // namespace sluice
