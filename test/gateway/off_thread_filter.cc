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
#include "core/stream_context.h"

namespace sluice::test {
namespace {

constexpr std::string_view kVerdictHeader = "x-test-off-thread";
constexpr std::string_view kLateHeader = "x-test-off-thread-late";

// One thread running work at given times; work still waiting at stop() is
// dropped unrun.
class DelayedWork {
 public:
  using Clock = std::chrono::steady_clock;
  DelayedWork() : thread_([this] { run(); }) {}
  ~DelayedWork() { stop(); }
  DelayedWork(const DelayedWork&) = delete;
  DelayedWork& operator=(const DelayedWork&) = delete;

  void after(std::chrono::milliseconds delay, std::function<void()> work) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      jobs_.emplace(Clock::now() + delay, std::move(work));
    }
    wake_.notify_one();
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      jobs_.clear();
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      if (jobs_.empty()) {
        wake_.wait(lock);
        continue;
      }
      auto first = jobs_.begin();
      if (const Clock::time_point due = first->first; Clock::now() < due) {
        // A copy: stop() may free the job (its key) while this waits.
        wake_.wait_until(lock, due);
        continue;
      }
      auto work = std::move(first->second);
      jobs_.erase(first);
      lock.unlock();
      work();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::multimap<Clock::time_point, std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the rest is built
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
