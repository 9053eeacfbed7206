#include "core/host_resolver.h"

#include <netdb.h>
#include <uv.h>

#include "core/dispatcher.h"

namespace sluice {

// The libuv request and what the answer needs; freed by the bridge, after
// libuv has called it, whether or not its resolver still exists.
struct HostResolver::Request {
  uv_getaddrinfo_t req{};
  HostResolver* owner = nullptr;  // nullptr once the resolver is gone
  uint16_t port = 0;
};

namespace {

void onResolvedBridge(uv_getaddrinfo_t* req, int status, addrinfo* answers) noexcept {
  auto* request = static_cast<HostResolver::Request*>(req->data);
  if (request->owner != nullptr) {
    request->owner->onResolved(status == 0 ? pickResolvedAddress(answers, request->port) : std::nullopt);
  }
  uv_freeaddrinfo(answers);
  delete request;
}

}  // namespace

HostResolver::HostResolver(Dispatcher& dispatcher, Callback on_resolved)
    : dispatcher_(dispatcher), on_resolved_(std::move(on_resolved)) {}

HostResolver::~HostResolver() {
  if (in_flight_ == nullptr) return;
  in_flight_->owner = nullptr;
  // Only a lookup still queued can be cancelled; a running one finishes on
  // its pool thread and its answer is dropped by the bridge.
  uv_cancel(reinterpret_cast<uv_req_t*>(&in_flight_->req));
}

bool HostResolver::resolve(const std::string& host, uint16_t port) {
  if (in_flight_ != nullptr) return false;
  auto* request = new Request;
  request->owner = this;
  request->port = port;
  request->req.data = request;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (uv_getaddrinfo(dispatcher_.loop(), &request->req, onResolvedBridge, host.c_str(), nullptr, &hints) != 0) {
    delete request;
    return false;
  }
  in_flight_ = request;
  return true;
}

void HostResolver::onResolved(std::optional<SocketAddress> address) {
  in_flight_ = nullptr;
  on_resolved_(std::move(address));
}

}  // namespace sluice
