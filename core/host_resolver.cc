#include "core/host_resolver.h"

#include <mutex>
#include <system_error>
#include <thread>

#include <spdlog/spdlog.h>

#include "core/dispatcher.h"
#include "core/thread_scheduling.h"

namespace sluice {

// Shared by the resolver and its lookup's thread, the only shared ownership
// here: the thread may outlive the resolver (and its loop) by as long as the
// system resolver takes.
struct HostResolver::Lookup {
  std::mutex mutex;
  HostResolver* owner = nullptr;  // guarded by mutex; nullptr once nobody waits
  Dispatcher* dispatcher = nullptr;
};

HostResolver::HostResolver(Dispatcher& dispatcher, Callback on_resolved)
    : dispatcher_(dispatcher), on_resolved_(std::move(on_resolved)) {}

HostResolver::~HostResolver() {
  if (!in_flight_) return;
  // Under the lookup's mutex: once this returns its thread posts nothing,
  // so the loop (which outlives this resolver) is never reached afterwards.
  std::lock_guard lock(in_flight_->mutex);
  in_flight_->owner = nullptr;
}

bool HostResolver::resolve(const std::string& host, uint16_t port) {
  if (in_flight_) return false;
  auto lookup = std::make_shared<Lookup>();
  lookup->owner = this;
  lookup->dispatcher = &dispatcher_;
  try {
    std::thread([lookup, host, port] {
      nameCurrentThread("sluice-dns");  // not the worker's name it would inherit
      std::optional<SocketAddress> address = resolveHost(host, port);
      std::lock_guard lock(lookup->mutex);
      if (lookup->owner == nullptr) return;
      lookup->dispatcher->post([lookup, address = std::move(address)] {
        // On the loop: the resolver may have gone since the post.
        HostResolver* owner;
        {
          std::lock_guard lock(lookup->mutex);
          owner = lookup->owner;
        }
        if (owner != nullptr && owner->in_flight_ == lookup) owner->onResolved(address);
      });
    }).detach();
  } catch (const std::system_error& e) {
    spdlog::warn("cannot start a lookup of {}: {}", host, e.what());
    return false;
  }
  in_flight_ = std::move(lookup);
  return true;
}

void HostResolver::onResolved(std::optional<SocketAddress> address) {
  in_flight_.reset();
  on_resolved_(std::move(address));
}

}  // namespace sluice
