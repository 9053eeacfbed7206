#include "core/ring_queue.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace sluice {
namespace {

// An element that owns something, so a queue that dropped or kept it by
// mistake shows in `alive`.
struct Tracked {
  std::shared_ptr<int> token;
};

// Holds every array this thread's pool has (other tests leave some there)
// while it lives, so a test case can count what its own queues give back.
template <typename T>
class PoolEmptied {
 public:
  PoolEmptied() {
    while (RingQueue<T>::pooledArrays() > 0) holders_.emplace_back().emplace_back();
  }

 private:
  std::vector<RingQueue<T>> holders_;
};

TEST_CASE("ring queue keeps order across wrap-around and growth", "[ring_queue]") {
  RingQueue<int> q;
  int next_in = 0, next_out = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < round % 7 + 1; ++i) q.push_back(next_in++);
    for (int i = 0; i < round % 5 + 1 && !q.empty(); ++i) {
      REQUIRE(q.front() == next_out++);
      q.pop_front();
    }
  }
  while (!q.empty()) {
    REQUIRE(q.front() == next_out++);
    q.pop_front();
  }
  REQUIRE(next_out == next_in);
}

TEST_CASE("ring queue reuses a first-size slot array per thread", "[ring_queue]") {
  PoolEmptied<std::string> emptied;
  {
    RingQueue<std::string> q;
    q.push_back("a");
  }
  REQUIRE(RingQueue<std::string>::pooledArrays() == 1);
  {
    RingQueue<std::string> q;
    REQUIRE(RingQueue<std::string>::pooledArrays() == 1);  // nothing taken before the first element
    q.push_back("b");
    REQUIRE(RingQueue<std::string>::pooledArrays() == 0);  // taken
    REQUIRE(q.front() == "b");
  }
  REQUIRE(RingQueue<std::string>::pooledArrays() == 1);

  SECTION("a grown array is freed, not kept") {
    {
      RingQueue<std::string> q;
      for (int i = 0; i < 5; ++i) q.push_back(std::to_string(i));  // past the first 4 slots
      REQUIRE(RingQueue<std::string>::pooledArrays() == 0);
    }
    REQUIRE(RingQueue<std::string>::pooledArrays() == 0);
  }
  SECTION("a queue that never held anything gives nothing back") {
    { RingQueue<std::string> q; }
    REQUIRE(RingQueue<std::string>::pooledArrays() == 1);
  }
}

TEST_CASE("ring queue destroys what it holds when its array goes back", "[ring_queue]") {
  PoolEmptied<Tracked> emptied;
  auto token = std::make_shared<int>(1);
  {
    RingQueue<Tracked> q;
    q.push_back({token});
    q.push_back({token});
    q.pop_front();
    REQUIRE(token.use_count() == 2);
  }
  // Recycled, and the element left in it released at once.
  REQUIRE(RingQueue<Tracked>::pooledArrays() == 1);
  REQUIRE(token.use_count() == 1);

  RingQueue<Tracked> reused;
  reused.emplace_back();
  REQUIRE(reused.front().token == nullptr);  // a reused slot starts empty
}

// Longer than std::string keeps inline: a slot that still had its buffer
// would show it as capacity.
const std::string kLong(1000, 'x');

TEST_CASE("ring queue slots keep no heap buffer once their element is gone", "[ring_queue]") {
  PoolEmptied<std::string> emptied;
  {
    RingQueue<std::string> q;
    q.push_back(kLong);
    q.push_back(kLong);
    q.pop_front();
    q.push_back(kLong);
    q.push_back(kLong);
    q.pop_front();
    q.pop_front();
    q.push_back(kLong);  // wrapped round: head_ is past the start
    // The popped slots were emptied at once, not when the queue goes.
    for (size_t i = q.size(); i < 4; ++i) CHECK(q.emplace_back().capacity() < 100);
  }
  REQUIRE(RingQueue<std::string>::pooledArrays() == 1);
  RingQueue<std::string> reused;
  for (int i = 0; i < 4; ++i) CHECK(reused.emplace_back().capacity() < 100);
  CHECK(RingQueue<std::string>::pooledArrays() == 0);
}

TEST_CASE("a ring queue that outlives its thread's pool frees its array", "[ring_queue]") {
  // A thread_local queue made before the pool is destroyed after it at
  // thread exit, as an embedder's static gateway would be at process exit.
  // Its array must then be freed, not put in the destroyed pool (which the
  // sanitizer build would report).
  std::thread([] {
    thread_local RingQueue<std::string> late;
    late.push_back(kLong);  // the pool is made now, after `late`
  }).join();
  SUCCEED("the thread exited");
}

TEST_CASE("a moved ring queue keeps its elements and its array once", "[ring_queue]") {
  PoolEmptied<int> emptied;
  RingQueue<int> a;
  a.push_back(7);
  a.push_back(8);
  RingQueue<int> b(std::move(a));
  REQUIRE(a.empty());
  REQUIRE(b.size() == 2);
  REQUIRE(b.front() == 7);
  RingQueue<int> c;
  c.push_back(1);
  c = std::move(b);  // c's own array goes back to the pool
  REQUIRE(RingQueue<int>::pooledArrays() == 1);
  REQUIRE(c.size() == 2);
  REQUIRE(c.front() == 7);
}

}  // namespace
}  // namespace sluice
