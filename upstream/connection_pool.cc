#include "upstream/connection_pool.h"

#include <algorithm>

#include "core/dispatcher.h"
#include "upstream/upstream_connection.h"

namespace sluice {

ConnectionPool::ConnectionPool(Dispatcher& dispatcher, std::string cluster_name, SocketAddress address,
                               uint32_t connect_timeout_ms)
    : dispatcher_(dispatcher),
      cluster_name_(std::move(cluster_name)),
      address_(std::move(address)),
      connect_timeout_ms_(connect_timeout_ms) {}

ConnectionPool::~ConnectionPool() { closeAll(); }

void ConnectionPool::newStream(UpstreamStream& stream) {
  for (auto& c : connections_) {
    if (c->usable()) {
      c->addStream(stream);
      return;
    }
  }
  auto conn = std::make_unique<UpstreamConnection>(dispatcher_, *this, next_connection_id_++);
  UpstreamConnection& ref = *conn;
  connections_.push_back(std::move(conn));
  ref.addStream(stream);
  ref.connect();
}

void ConnectionPool::onConnectionClosed(UpstreamConnection& connection) {
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [&](const auto& c) { return c.get() == &connection; });
  if (it == connections_.end()) return;
  // We may be inside one of its callbacks: delete it after this event.
  dispatcher_.deferredDelete(std::move(*it));
  connections_.erase(it);
}

void ConnectionPool::closeAll() {
  // close() calls back into onConnectionClosed, which edits the vector.
  while (!connections_.empty()) connections_.back()->close("gateway shutting down");
}

}  // namespace sluice
