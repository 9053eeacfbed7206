#include "core/host_resolver.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/dispatcher.h"
#include "core/thread_scheduling.h"
#include "core/timer.h"

namespace sluice {

// Shared by the resolver and the lookup threads, the only shared ownership
// here: a thread may outlive the resolver (and its loop) by as long as the
// system resolver takes.
struct HostResolver::Lookup {
  std::mutex mutex;
  HostResolver* owner = nullptr;  // guarded by mutex; nullptr once nobody waits
  Dispatcher* dispatcher = nullptr;
};

namespace {

using Name = std::pair<std::string, uint16_t>;
using Clock = std::chrono::steady_clock;

// How long a thread with nothing to do waits for another lookup before it
// ends: a cluster refreshing its names every few seconds keeps its threads.
constexpr std::chrono::seconds kIdleLinger{5};
// A lookup running longer than this no longer counts against the cap: a few
// names whose lookups hang must not stop every other name (and every reload)
// from being looked up. getaddrinfo() gives up on its own eventually.
constexpr std::chrono::seconds kStuckAfter{5};

// One name to look up, and everyone waiting for its answer.
struct Job {
  Name name;
  std::vector<std::shared_ptr<HostResolver::Lookup>> waiters;
  bool started = false;
  Clock::time_point started_at;
};

// The process's lookup threads and the lookups waiting for one. Never
// destroyed: a detached thread may still be inside getaddrinfo() while the
// process exits. Shared by every Gateway of the process.
struct LookupThreads {
  std::mutex mutex;
  std::condition_variable work;  // a lookup was queued
  size_t max_threads = 16;
  size_t running = 0;
  std::vector<std::shared_ptr<Job>> under_way;  // inside getaddrinfo(), one per busy thread
  std::deque<std::shared_ptr<Job>> waiting;
  std::map<Name, std::shared_ptr<Job>> latest;  // the newest job of each name, waiting or under way

  size_t stuck(Clock::time_point now) const {
    size_t n = 0;
    for (const auto& job : under_way) n += now - job->started_at > kStuckAfter ? 1 : 0;
    return n;
  }
  // When the next lookup under way becomes stuck (just after), or a whole
  // kStuckAfter from now when none is under way yet.
  Clock::duration untilNextStuck(Clock::time_point now) const {
    Clock::duration next = kStuckAfter;
    for (const auto& job : under_way) {
      const auto at = job->started_at + kStuckAfter - now;
      if (at >= Clock::duration::zero()) next = std::min<Clock::duration>(next, at);
    }
    return next + std::chrono::milliseconds(10);
  }
  // Threads the cap counts: all but those stuck in a lookup.
  size_t counted(Clock::time_point now) const { return running - stuck(now); }
  // Starts threads while waiting jobs outnumber the threads free to take
  // them (idle, or handing an answer over) and the cap allows; each runs
  // `body`. False when none could be started and none runs.
  bool startThreads(void (*body)());
  void forget(const std::shared_ptr<Job>& job) {
    if (auto it = latest.find(job->name); it != latest.end() && it->second == job) latest.erase(it);
  }
};

LookupThreads& lookupThreads() {
  static auto* threads = new LookupThreads;
  return *threads;
}

bool abandoned(HostResolver::Lookup& lookup) {
  std::lock_guard lock(lookup.mutex);
  return lookup.owner == nullptr;
}

}  // namespace

// A lookup thread: takes waiting jobs in order until there has been none for
// kIdleLinger (or the cap was lowered below the threads running).
void HostResolver::runLookups() {
  nameCurrentThread("sluice-dns");  // not the worker's name it would inherit
  LookupThreads& threads = lookupThreads();
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(threads.mutex);
      threads.work.wait_for(lock, kIdleLinger, [&] { return !threads.waiting.empty(); });
      if (threads.waiting.empty() || threads.counted(Clock::now()) > threads.max_threads) {
        --threads.running;
        // A wake-up meant for a thread that takes the job: pass it on.
        if (!threads.waiting.empty()) threads.work.notify_one();
        return;
      }
      job = std::move(threads.waiting.front());
      threads.waiting.pop_front();
      std::erase_if(job->waiters, [](const auto& waiter) { return abandoned(*waiter); });
      if (job->waiters.empty()) {
        threads.forget(job);
        continue;
      }
      job->started = true;
      job->started_at = Clock::now();
      threads.under_way.push_back(job);
    }
    std::vector<SocketAddress> addresses = resolveHost(job->name.first, job->name.second);
    std::vector<std::shared_ptr<HostResolver::Lookup>> waiters;
    {
      // Askers arriving from now on start a fresh lookup, which this thread
      // takes once it has handed this answer over.
      std::lock_guard lock(threads.mutex);
      std::erase(threads.under_way, job);
      threads.forget(job);
      waiters = std::move(job->waiters);
    }
    for (auto& waiter : waiters) deliver(waiter, addresses);
  }
}

bool LookupThreads::startThreads(void (*body)()) {
  const size_t free_threads = running - under_way.size();
  size_t want = waiting.size() > free_threads ? waiting.size() - free_threads : 0;
  const auto now = Clock::now();
  // Lookups stuck past kStuckAfter do not count, but they may take no more
  // than as many threads again: names whose lookups all hang must not start
  // a thread each.
  while (want > 0 && counted(now) < max_threads && running < 2 * max_threads) {
    try {
      std::thread(body).detach();
    } catch (const std::exception& e) {
      spdlog::warn("cannot start a host name lookup thread: {}", e.what());
      break;
    }
    ++running;
    --want;
  }
  return running > 0;
}

void HostResolver::deliver(const std::shared_ptr<Lookup>& lookup, const std::vector<SocketAddress>& addresses) {
  std::lock_guard lock(lookup->mutex);
  if (lookup->owner == nullptr) return;
  lookup->dispatcher->post([lookup, addresses] {
    // On the loop: the resolver may have gone since the post.
    HostResolver* owner;
    {
      std::lock_guard lock(lookup->mutex);
      owner = lookup->owner;
    }
    if (owner != nullptr) owner->onResolved(lookup, addresses);
  });
}

HostResolver::HostResolver(Dispatcher& dispatcher, Callback on_resolved)
    : dispatcher_(dispatcher), on_resolved_(std::move(on_resolved)) {}

HostResolver::~HostResolver() {
  recheck_.reset();
  if (!in_flight_) return;
  // Under the lookup's mutex: once this returns no thread posts for it, so
  // the loop (which outlives this resolver) is never reached afterwards.
  std::lock_guard lock(in_flight_->mutex);
  in_flight_->owner = nullptr;
}

bool HostResolver::resolve(const std::string& host, uint16_t port, bool fresh) {
  if (in_flight_) return false;
  auto lookup = std::make_shared<Lookup>();
  lookup->owner = this;
  lookup->dispatcher = &dispatcher_;
  LookupThreads& threads = lookupThreads();
  std::lock_guard lock(threads.mutex);
  Name name{host, port};
  if (auto it = threads.latest.find(name); it != threads.latest.end() && !(fresh && it->second->started)) {
    Job& job = *it->second;
    std::erase_if(job.waiters, [](const auto& waiter) { return abandoned(*waiter); });
    job.waiters.push_back(lookup);
    in_flight_ = std::move(lookup);
    if (!job.started) watchForStuckThreads(threads.untilNextStuck(Clock::now()));
    return true;
  }
  auto job = std::make_shared<Job>();
  job->name = name;
  job->waiters.push_back(lookup);
  threads.waiting.push_back(job);
  threads.latest[std::move(name)] = job;
  if (!threads.startThreads(&HostResolver::runLookups)) {
    threads.waiting.pop_back();
    threads.forget(job);
    return false;
  }
  threads.work.notify_one();
  in_flight_ = std::move(lookup);
  watchForStuckThreads(threads.untilNextStuck(Clock::now()));
  return true;
}

void HostResolver::watchForStuckThreads(Clock::duration delay) {
  // The threads may all be inside lookups that hang (or be about to enter
  // them), and nothing else would look again once they count as stuck.
  if (!recheck_) recheck_ = std::make_unique<Timer>(dispatcher_, [this] { onRecheck(); });
  recheck_->enable(std::chrono::ceil<std::chrono::milliseconds>(delay));
}

void HostResolver::onRecheck() {
  if (!in_flight_) return;
  LookupThreads& threads = lookupThreads();
  std::lock_guard lock(threads.mutex);
  threads.startThreads(&HostResolver::runLookups);
  threads.work.notify_one();
  // Until the answer comes: the lookup may still wait behind threads that
  // become stuck later.
  watchForStuckThreads(threads.untilNextStuck(Clock::now()));
}

void HostResolver::onResolved(const std::shared_ptr<Lookup>& lookup, std::vector<SocketAddress> addresses) {
  if (in_flight_ != lookup) return;
  in_flight_.reset();
  if (recheck_) recheck_->disable();
  on_resolved_(std::move(addresses));
}

void HostResolver::setMaxThreads(size_t max_threads) {
  LookupThreads& threads = lookupThreads();
  std::lock_guard lock(threads.mutex);
  threads.max_threads = std::max<size_t>(1, max_threads);
  threads.startThreads(&HostResolver::runLookups);  // a higher cap serves lookups already waiting
}

size_t HostResolver::runningThreads() {
  LookupThreads& threads = lookupThreads();
  std::lock_guard lock(threads.mutex);
  return threads.running;
}

}  // namespace sluice
