// A minimal blocking HTTP/1.1 client for the admin endpoint in e2e tests:
// one request per connection, read until the server closes, 5 s timeout.
#pragma once

#include <string>

namespace sluice::test {

struct HttpReply {
  int status = 0;  // 0 when the answer was not HTTP
  std::string headers;
  std::string body;
};

// Sends `request` as given (bytes on the wire) to "IP:port".
HttpReply httpRaw(const std::string& address, const std::string& request);
// METHOD PATH with an empty body.
HttpReply http(const std::string& address, const std::string& method, const std::string& path);

}  // namespace sluice::test
