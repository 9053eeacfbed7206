#include "listeners/reload_resolver.h"

namespace sluice {

ReloadResolver::ReloadResolver(Dispatcher& dispatcher, Done done) : dispatcher_(dispatcher), done_(std::move(done)) {}

ReloadResolver::~ReloadResolver() = default;

size_t ReloadResolver::start(const std::vector<Name>& names) {
  for (const Name& name : names) {
    auto resolver = std::make_unique<HostResolver>(dispatcher_, [this, name](std::optional<SocketAddress> address) {
      onAnswer(name, std::move(address));
    });
    if (!resolver->resolve(name.first, name.second)) continue;  // loading resolves it instead
    resolvers_.push_back(std::move(resolver));
    ++waiting_;
  }
  return waiting_;
}

void ReloadResolver::onAnswer(const Name& name, std::optional<SocketAddress> address) {
  answers_[name] = std::move(address);
  if (--waiting_ == 0) done_(std::move(answers_));
}

HostLookup ReloadResolver::lookupFrom(const Answers& answers) {
  return [&answers](const std::string& host, uint16_t port) -> std::optional<SocketAddress> {
    auto it = answers.find({host, port});
    return it != answers.end() ? it->second : resolveHost(host, port);
  };
}

}  // namespace sluice
