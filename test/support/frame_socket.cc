#include "test/support/frame_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include <catch2/catch.hpp>

#include "test/support/raw_h2_client.h"

namespace sluice::test {

FrameSocket::FrameSocket(int port, int receive_buffer, Opening opening) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  if (opening == Opening::Nothing) return;
  send(std::string(kPreface));
  send(frame(kSettings, 0, 0, ""));
}

FrameSocket::~FrameSocket() { ::close(fd_); }

std::string FrameSocket::frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  uint32_t len = static_cast<uint32_t>(payload.size());
  f += static_cast<char>(len >> 16);
  f += static_cast<char>(len >> 8);
  f += static_cast<char>(len);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  for (int s = 24; s >= 0; s -= 8) f += static_cast<char>((stream >> s) & 0xff);
  return f + payload;
}

std::string FrameSocket::requestHeaders(uint32_t stream, const std::string& path, bool complete,
                                        const std::string& extra) {
  std::string block = "\x83\x86";
  if (complete) block += std::string("\x01\x01x", 3);  // literal :authority (static index 1)
  block += '\x04';  // literal without indexing, name = static index 4 (:path)
  block += static_cast<char>(path.size());
  block += path;
  block += "\x0f\x10";  // literal without indexing, name = static index 31 (content-type)
  block += static_cast<char>(16);
  block += "application/grpc";
  if (complete) block += std::string(1, '\0') + "\x02te\x08trailers";  // literal, new name
  return frame(kHeaders, 0x4, stream, block + extra);
}

std::string FrameSocket::literal(const std::string& name, const std::string& value) {
  return std::string(1, '\0') + static_cast<char>(name.size()) + name + static_cast<char>(value.size()) + value;
}

void FrameSocket::openServerStream(uint32_t stream, const example::EchoRequest& request,
                                   const std::string& extra_headers) {
  send(requestHeaders(stream, "/sluice.example.Echo/ServerStream", true, extra_headers));
  send(frame(kData, 0x1, stream, grpcFrame(request.SerializeAsString())));
}

void FrameSocket::setStreamWindow(uint32_t bytes) {
  std::string payload("\x00\x04", 2);
  for (int s = 24; s >= 0; s -= 8) payload += static_cast<char>((bytes >> s) & 0xff);
  send(frame(kSettings, 0, 0, payload));
}

size_t FrameSocket::sendSome(const std::string& bytes) {
  ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

bool FrameSocket::send(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::optional<FrameSocket::Frame> FrameSocket::nextFrame(std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (buffered_.size() >= 9) {
      const size_t len = (uint8_t(buffered_[0]) << 16) | (uint8_t(buffered_[1]) << 8) | uint8_t(buffered_[2]);
      if (buffered_.size() >= 9 + len) {
        Frame f;
        f.type = static_cast<uint8_t>(buffered_[3]);
        f.flags = static_cast<uint8_t>(buffered_[4]);
        f.stream = ((uint8_t(buffered_[5]) & 0x7f) << 24) | (uint8_t(buffered_[6]) << 16) |
                   (uint8_t(buffered_[7]) << 8) | uint8_t(buffered_[8]);
        f.payload = buffered_.substr(9, len);
        buffered_.erase(0, 9 + len);
        return f;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 50))) <= 0) continue;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return std::nullopt;
    buffered_.append(tmp, static_cast<size_t>(n));
  }
}

FrameSocket::Seen FrameSocket::readUntilClosed(std::chrono::milliseconds limit,
                                                const std::function<void(const std::string&)>& on_ping,
                                                size_t max_read, std::chrono::milliseconds pause) {
  Seen seen;
  auto until = std::chrono::steady_clock::now() + limit;
  std::string& buf = buffered_;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, std::min(sizeof(tmp), max_read), 0);
    if (n <= 0) {
      seen.closed = true;
      seen.reset = n < 0 && errno == ECONNRESET;
      break;
    }
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
    buf.append(tmp, static_cast<size_t>(n));
    while (buf.size() >= 9) {
      size_t len = (uint8_t(buf[0]) << 16) | (uint8_t(buf[1]) << 8) | uint8_t(buf[2]);
      if (buf.size() < 9 + len) break;
      uint8_t type = static_cast<uint8_t>(buf[3]);
      uint32_t stream = ((uint8_t(buf[5]) & 0x7f) << 24) | (uint8_t(buf[6]) << 16) | (uint8_t(buf[7]) << 8) | uint8_t(buf[8]);
      auto u32 = [&](size_t at) {
        return (uint32_t(uint8_t(buf[at])) << 24) | (uint8_t(buf[at + 1]) << 16) | (uint8_t(buf[at + 2]) << 8) |
               uint8_t(buf[at + 3]);
      };
      if (type == kGoaway && len >= 8) {
        seen.goaway = true;
        seen.goaway_code = u32(9 + 4);
      } else if (type == kRstStream && len == 4) {
        seen.resets.emplace_back(stream, u32(9));
      } else if (type == kPing && len == 8 && (uint8_t(buf[4]) & 0x1) == 0 && on_ping) {
        on_ping(buf.substr(9, 8));
      }
      buf.erase(0, 9 + len);
    }
  }
  return seen;
}

}  // namespace sluice::test
