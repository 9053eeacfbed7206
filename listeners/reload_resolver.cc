#include "listeners/reload_resolver.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace sluice {

ReloadResolver::ReloadResolver(Dispatcher& dispatcher, std::chrono::milliseconds timeout, Done done)
    : dispatcher_(dispatcher), timeout_(timeout), done_(std::move(done)), timer_(dispatcher, [this] { onTimeout(); }) {}

ReloadResolver::~ReloadResolver() = default;

size_t ReloadResolver::start(const std::vector<Name>& names) {
  for (const Name& name : names) {
    auto resolver = std::make_unique<HostResolver>(dispatcher_, [this, name](std::vector<SocketAddress> addresses) {
      onAnswer(name, std::move(addresses));
    });
    if (!resolver->resolve(name.first, name.second, /*fresh=*/true)) continue;  // loading resolves it instead
    resolvers_.push_back(std::move(resolver));
    asked_.push_back(name);
    ++waiting_;
  }
  if (waiting_ > 0) timer_.enable(timeout_);
  return waiting_;
}

void ReloadResolver::onAnswer(const Name& name, std::vector<SocketAddress> addresses) {
  if (!addresses.empty()) {
    answers_.insert_or_assign(name, std::move(addresses));
  } else {
    answers_.insert_or_assign(name, hostNotFound(name.first));
  }
  if (--waiting_ == 0) finish();
}

void ReloadResolver::onTimeout() {
  for (const Name& name : asked_) {
    if (answers_.count(name) != 0) continue;
    auto why = fmt::format("no answer for host \"{}\" within {} ms (reload_resolve_timeout_ms)", name.first,
                           timeout_.count());
    spdlog::warn("{}", why);
    answers_.insert_or_assign(name, Status(StatusCode::DeadlineExceeded, std::move(why)));
  }
  resolvers_.clear();  // answers still to come are dropped
  waiting_ = 0;
  finish();
}

void ReloadResolver::finish() {
  timer_.disable();
  done_(std::move(answers_));
}

HostLookup ReloadResolver::lookupFrom(const Answers& answers) {
  return [&answers](const std::string& host, uint16_t port) -> StatusOr<std::vector<SocketAddress>> {
    auto it = answers.find({host, port});
    return it != answers.end() ? it->second : lookUpHostNow(host, port);
  };
}

}  // namespace sluice
