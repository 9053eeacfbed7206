#include "test/gateway/off_thread_filter.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "core/call_handle.h"
#include "core/off_loop_work.h"
#include "core/stream_context.h"

namespace sluice::test {
namespace {

constexpr std::string_view kVerdictHeader = "x-test-off-thread";
constexpr std::string_view kLateHeader = "x-test-off-thread-late";

// One thread running work at given times; work still waiting at stop() is
// dropped unrun. The thread starts with the first work (create() also runs
// for --validate and for reloads that are then refused: it must start
// nothing). stop() joins it (from close(), at shutdown); destroyed without
// stop() (a factory a reload retired, on a worker), it is told to stop and
// joined off the loop (runOffLoop()), with the state it reads.
class DelayedWork {
 public:
  using Clock = std::chrono::steady_clock;
  DelayedWork() = default;
  ~DelayedWork() {
    if (!thread_.joinable()) return;
    tellStop(*state_);
    // Both outlive this object until the thread has finished with them.
    struct Parting {
      std::unique_ptr<State> state;
      std::thread thread;
    };
    auto parting = std::make_shared<Parting>(Parting{std::move(state_), std::move(thread_)});
    runOffLoop([parting] { parting->thread.join(); });
  }
  DelayedWork(const DelayedWork&) = delete;
  DelayedWork& operator=(const DelayedWork&) = delete;

  void after(std::chrono::milliseconds delay, std::function<void()> work) {
    {
      std::lock_guard lock(state_->mutex);
      if (state_->stopping) return;
      state_->jobs.emplace(Clock::now() + delay, std::move(work));
      if (!thread_.joinable()) thread_ = std::thread([state = state_.get()] { run(*state); });
    }
    state_->wake.notify_one();
  }
  void stop() {
    tellStop(*state_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable wake;
    std::multimap<Clock::time_point, std::function<void()>> jobs;
    bool stopping = false;
  };

  static void tellStop(State& state) {
    {
      std::lock_guard lock(state.mutex);
      state.stopping = true;
      state.jobs.clear();
    }
    state.wake.notify_one();
  }

  static void run(State& state) {
    std::unique_lock lock(state.mutex);
    while (!state.stopping) {
      if (state.jobs.empty()) {
        state.wake.wait(lock);
        continue;
      }
      auto first = state.jobs.begin();
      if (const Clock::time_point due = first->first; Clock::now() < due) {
        // A copy: stop() may free the job (its key) while this waits.
        state.wake.wait_until(lock, due);
        continue;
      }
      auto work = std::move(first->second);
      state.jobs.erase(first);
      lock.unlock();
      work();
      lock.lock();
    }
  }

  std::unique_ptr<State> state_ = std::make_unique<State>();
  std::thread thread_;  // started by the first after()
};

class OffThreadFactory;

class OffThreadFilter : public Filter {
 public:
  explicit OffThreadFilter(const OffThreadFactory& factory) : factory_(factory) {}
  FilterStatus onRequestHeaders(StreamContext& ctx) override;
  FilterStatus onResponseTrailers(StreamContext& ctx) override;

 private:
  const OffThreadFactory& factory_;
};

class OffThreadFactory : public FilterFactory {
 public:
  FilterPtr createFilter(StreamContext&) const override { return std::make_unique<OffThreadFilter>(*this); }
  void close() const override { work_.stop(); }

  mutable DelayedWork work_;
  mutable std::atomic<uint64_t> verdicts_posted_{0};  // handed to CallHandle::post
  mutable std::atomic<uint64_t> verdicts_run_{0};     // run on the worker
};

FilterStatus OffThreadFilter::onRequestHeaders(StreamContext& ctx) {
  const std::string* spec = ctx.requestHeaders().get(kVerdictHeader);
  if (spec == nullptr) return FilterStatus::Continue;
  const auto colon = spec->find(':');
  const std::string verdict = spec->substr(0, colon);
  uint32_t ms = 0;
  const char* digits = colon == std::string::npos ? spec->data() + spec->size() : spec->data() + colon + 1;
  auto [end, error] = std::from_chars(digits, spec->data() + spec->size(), ms);
  if (colon == std::string::npos || error != std::errc() || end != spec->data() + spec->size() || ms > 60'000 ||
      (verdict != "allow" && verdict != "deny" && verdict != "throw")) {
    ctx.sendLocalReply(StatusCode::InvalidArgument, "x-test-off-thread: allow|deny|throw:MS (MS at most 60000)");
    return FilterStatus::StopIteration;
  }
  // Only the handle and the factory are used on the other thread; `this`
  // and `ctx` only in the work posted back, which runs while the call is
  // still going.
  const OffThreadFactory* factory = &factory_;
  factory_.work_.after(std::chrono::milliseconds(ms), [handle = ctx.handle(), factory, this, &ctx, verdict] {
    factory->verdicts_posted_++;
    handle.post([this, &ctx, verdict] {
      factory_.verdicts_run_++;
      if (verdict == "allow") {
        ctx.continueRequest(*this);
      } else if (verdict == "deny") {
        ctx.sendLocalReply(StatusCode::PermissionDenied, "denied off the loop");
      } else {
        throw std::runtime_error("test_off_thread: the verdict threw");
      }
    });
  });
  return FilterStatus::StopIteration;
}

FilterStatus OffThreadFilter::onResponseTrailers(StreamContext& ctx) {
  if (const std::string* late = ctx.requestHeaders().get(kLateHeader)) {
    // Work posted after the call ends (its trailers are on their way), while
    // its stream may still be open: it must not run.
    uint32_t ms = 0;
    std::from_chars(late->data(), late->data() + late->size(), ms);
    const OffThreadFactory* factory = &factory_;
    factory_.work_.after(std::chrono::milliseconds(std::min<uint32_t>(ms, 60'000)), [handle = ctx.handle(), factory] {
      factory->verdicts_posted_++;
      handle.post([factory] { factory->verdicts_run_++; });
    });
  }
  ctx.responseTrailers().set("x-test-off-thread-ran", std::to_string(factory_.verdicts_run_.load()));
  ctx.responseTrailers().set("x-test-off-thread-posted", std::to_string(factory_.verdicts_posted_.load()));
  return FilterStatus::Continue;
}

}  // namespace

FilterFactorySharedPtr OffThreadFilterConfigFactory::create(const nlohmann::json&, const std::string&,
                                                            FilterBuildContext&) const {
  return std::make_shared<OffThreadFactory>();
}

}  // namespace sluice::test
