// A minimal blocking HTTP/1.1 client for the admin endpoint in e2e tests:
// one request per connection, read until the server closes, 5 s timeout.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace sluice::test {

struct HttpReply {
  int status = 0;  // 0 when the answer was not HTTP
  std::string headers;
  std::string body;
};

// A plain TCP connection to "IP:port" (IPv4), the caller's to close.
// Throws std::runtime_error when it cannot connect.
int connectTcp(const std::string& address);
// Everything the peer sends until it closes the connection, or nullopt when
// it has not closed it within `timeout`.
std::optional<std::string> readUntilClosed(int fd, std::chrono::milliseconds timeout);

// Sends `request` as given (bytes on the wire) to "IP:port".
HttpReply httpRaw(const std::string& address, const std::string& request);
// METHOD PATH with an empty body.
HttpReply http(const std::string& address, const std::string& method, const std::string& path);

}  // namespace sluice::test
