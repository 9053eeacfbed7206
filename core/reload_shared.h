// State a filter entry keeps across config reloads: a reload builds every
// filter factory anew, but some state must not start over with it (rate
// limit buckets, which would hand every caller a fresh burst; the count of
// calls a fault filter holds, which would let each reload hold as many
// again).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace sluice {

// The T that live factories already share under `key`, else a new one made
// by `make()`. The caller keeps the result for as long as it lives (a
// factory: until its config's last call has ended); the last holder to go
// frees it, and a later request for the key makes a new one. Keys are the
// caller's choice: the entry's JSON path, with its config text when changed
// config must start afresh. The registry is per process and per T: an
// application embedding two gateways with the same entry at the same path
// would have them share.
template <class T>
struct ReloadRegistry {
  // One per T (not per caller): every call site for a T shares it.
  static inline std::mutex mutex;
  static inline std::map<std::string, std::weak_ptr<T>> live;
};

template <class T, class Make>
std::shared_ptr<T> sharedAcrossReloads(const std::string& key, Make make) {
  using Registry = ReloadRegistry<T>;
  std::lock_guard lock(Registry::mutex);
  std::erase_if(Registry::live, [](const auto& entry) { return entry.second.expired(); });
  if (auto it = Registry::live.find(key); it != Registry::live.end()) {
    if (auto shared = it->second.lock()) return shared;
  }
  std::shared_ptr<T> made = make();
  Registry::live[key] = made;
  return made;
}

}  // namespace sluice
