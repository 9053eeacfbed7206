#include "core/host_resolver.h"

#include <algorithm>
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

// One name to look up, and everyone waiting for its answer.
struct Job {
  Name name;
  std::vector<std::shared_ptr<HostResolver::Lookup>> waiters;
};

// The process's lookup threads and the lookups waiting for one. Never
// destroyed: a detached thread may still be inside getaddrinfo() while the
// process exits.
struct LookupThreads {
  std::mutex mutex;
  size_t max_threads = 16;
  size_t running = 0;
  size_t looking_up = 0;  // of the running threads, those inside getaddrinfo()
  std::deque<std::shared_ptr<Job>> waiting;
  std::map<Name, std::shared_ptr<Job>> by_name;  // waiting or being looked up
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

// A lookup thread: takes waiting jobs in order until there are none (or the
// cap was lowered below the threads running).
void HostResolver::runLookups() {
  nameCurrentThread("sluice-dns");  // not the worker's name it would inherit
  LookupThreads& threads = lookupThreads();
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::lock_guard lock(threads.mutex);
      if (threads.waiting.empty() || threads.running > threads.max_threads) {
        --threads.running;
        return;
      }
      job = std::move(threads.waiting.front());
      threads.waiting.pop_front();
      bool wanted = false;
      for (auto& waiter : job->waiters) wanted = wanted || !abandoned(*waiter);
      if (!wanted) {
        threads.by_name.erase(job->name);
        continue;
      }
      ++threads.looking_up;
    }
    std::optional<SocketAddress> address = resolveHost(job->name.first, job->name.second);
    std::vector<std::shared_ptr<HostResolver::Lookup>> waiters;
    {
      // Askers arriving from now on start a fresh lookup, which this thread
      // takes once it has handed this answer over.
      std::lock_guard lock(threads.mutex);
      --threads.looking_up;
      threads.by_name.erase(job->name);
      waiters = std::move(job->waiters);
    }
    for (auto& waiter : waiters) deliver(waiter, address);
  }
}

void HostResolver::deliver(const std::shared_ptr<Lookup>& lookup, const std::optional<SocketAddress>& address) {
  std::lock_guard lock(lookup->mutex);
  if (lookup->owner == nullptr) return;
  lookup->dispatcher->post([lookup, address] {
    // On the loop: the resolver may have gone since the post.
    HostResolver* owner;
    {
      std::lock_guard lock(lookup->mutex);
      owner = lookup->owner;
    }
    if (owner != nullptr) owner->onResolved(lookup, address);
  });
}

HostResolver::HostResolver(Dispatcher& dispatcher, Callback on_resolved)
    : dispatcher_(dispatcher), on_resolved_(std::move(on_resolved)) {}

HostResolver::~HostResolver() {
  if (!in_flight_) return;
  // Under the lookup's mutex: once this returns no thread posts for it, so
  // the loop (which outlives this resolver) is never reached afterwards.
  std::lock_guard lock(in_flight_->mutex);
  in_flight_->owner = nullptr;
}

bool HostResolver::resolve(const std::string& host, uint16_t port) {
  if (in_flight_) return false;
  auto lookup = std::make_shared<Lookup>();
  lookup->owner = this;
  lookup->dispatcher = &dispatcher_;
  LookupThreads& threads = lookupThreads();
  std::lock_guard lock(threads.mutex);
  Name name{host, port};
  if (auto it = threads.by_name.find(name); it != threads.by_name.end()) {
    it->second->waiters.push_back(lookup);
    in_flight_ = std::move(lookup);
    return true;
  }
  auto job = std::make_shared<Job>();
  job->name = name;
  job->waiters.push_back(lookup);
  // A thread that is not inside a lookup takes the job when it next looks.
  const size_t free_threads = threads.running - threads.looking_up;
  if (threads.waiting.size() >= free_threads && threads.running < threads.max_threads) {
    try {
      std::thread(&HostResolver::runLookups).detach();
      ++threads.running;
    } catch (const std::system_error& e) {
      // With a thread running, it takes the job when it is done; with none,
      // nothing would.
      if (threads.running == 0) {
        spdlog::warn("cannot start a lookup of {}: {}", host, e.what());
        return false;
      }
    }
  }
  threads.waiting.push_back(job);
  threads.by_name.emplace(std::move(name), std::move(job));
  in_flight_ = std::move(lookup);
  return true;
}

void HostResolver::onResolved(const std::shared_ptr<Lookup>& lookup, std::optional<SocketAddress> address) {
  if (in_flight_ != lookup) return;
  in_flight_.reset();
  on_resolved_(std::move(address));
}

void HostResolver::setMaxThreads(size_t max_threads) {
  LookupThreads& threads = lookupThreads();
  std::lock_guard lock(threads.mutex);
  threads.max_threads = std::max<size_t>(1, max_threads);
}

size_t HostResolver::runningThreads() {
  LookupThreads& threads = lookupThreads();
  std::lock_guard lock(threads.mutex);
  return threads.running;
}

}  // namespace sluice
