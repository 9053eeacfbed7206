// ReloadResolver: looks up the host names a config about to be reloaded names
// (its clusters' endpoints) off the loop, then hands the answers over. The
// first load at start uses it too, on a loop of its own, to look the names up
// all at once.
//
// Loading a config resolves every endpoint name, and getaddrinfo() can block
// for seconds. A reload runs on worker 0's loop, which also serves calls, so
// the Gateway first looks every name up here (a fresh HostResolver lookup each),
// then loads the config from the answers without blocking.
//
// Owned by the Gateway while the lookups run; destroying it drops answers
// still to come (their threads finish on their own). A name with no answer
// within the timeout (reload_resolve_timeout_ms) fails with an error saying so,
// so a resolver that hangs fails one reload instead of blocking every later one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/cluster_config.h"
#include "core/dispatcher.h"
#include "core/host_resolver.h"
#include "core/timer.h"

namespace sluice {

class ReloadResolver final : public DeferredDeletable {
 public:
  using Name = std::pair<std::string, uint16_t>;
  // The addresses, or why there are none (the config error to report).
  using Answers = std::map<Name, StatusOr<std::vector<SocketAddress>>>;
  using Done = std::function<void(Answers)>;

  ReloadResolver(Dispatcher& dispatcher, std::chrono::milliseconds timeout, Done done);
  ~ReloadResolver() override;

  // Starts a lookup per name; returns how many are under way. `done` runs on
  // the loop once all of them have answered, never from inside start(); with
  // none under way it never runs.
  size_t start(const std::vector<Name>& names);

  // A HostLookup answering from `answers`; a name without an answer (its
  // lookup could not start) is resolved on the spot.
  static HostLookup lookupFrom(const Answers& answers);

 private:
  void onAnswer(const Name& name, std::vector<SocketAddress> addresses);
  void onTimeout();
  void finish();

  Dispatcher& dispatcher_;
  std::chrono::milliseconds timeout_;
  Done done_;
  std::vector<Name> asked_;
  std::vector<std::unique_ptr<HostResolver>> resolvers_;
  Timer timer_;
  Answers answers_;
  size_t waiting_ = 0;
};

}  // namespace sluice
