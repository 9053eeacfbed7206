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
template <class T, class Make>
std::shared_ptr<T> sharedAcrossReloads(const std::string& key, Make make) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<T>> live;
  std::lock_guard lock(mutex);
  std::erase_if(live, [](const auto& entry) { return entry.second.expired(); });
  if (auto it = live.find(key); it != live.end()) {
    if (auto shared = it->second.lock()) return shared;
  }
  std::shared_ptr<T> made = make();
  live[key] = made;
  return made;
}

}  // namespace sluice
