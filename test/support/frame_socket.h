// FrameSocket: a plain TCP client speaking hand-made HTTP/2 frames, for peers
// that break the rules in ways a real HTTP/2 library will not (floods, resets,
// windows of 0, readers that stop reading).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "echo.pb.h"

namespace sluice::test {

// The client connection preface's fixed part (RFC 9113 §3.4); a SETTINGS frame follows it.
inline constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// HTTP/2 frame types.
inline constexpr uint8_t kData = 0, kHeaders = 1, kRstStream = 3, kSettings = 4, kPing = 6, kGoaway = 7,
                         kWindowUpdate = 8;

class FrameSocket {
 public:
  // What the socket sends once connected: the preface and an empty SETTINGS,
  // or nothing (a client that connects and never speaks).
  enum class Opening { Preface, Nothing };
  // Connects to 127.0.0.1:`port` and sends `opening`.
  // `receive_buffer`: the kernel's receive buffer for this socket (0: the
  // system's, which grows), for a client that reads little or nothing.
  explicit FrameSocket(int port, int receive_buffer = 0, Opening opening = Opening::Preface);
  ~FrameSocket();
  FrameSocket(const FrameSocket&) = delete;
  FrameSocket& operator=(const FrameSocket&) = delete;

  static std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload);
  // HEADERS for a gRPC POST (HPACK: indexed :method POST, :scheme http,
  // literal :path and content-type), without END_STREAM.
  // With `complete`, also :authority and te: trailers, which a request needs
  // to reach a grpc++ backend.
  // `extra`: more header block (literal() fields).
  static std::string requestHeaders(uint32_t stream, const std::string& path = "/sluice.example.Echo/Unary",
                                    bool complete = false, const std::string& extra = "");
  // A literal header field with a new name (HPACK), names and values under 128 bytes.
  static std::string literal(const std::string& name, const std::string& value);

  // Opens a ServerStream call on `stream`: complete request headers, then
  // `request` as its one message, ending the request.
  void openServerStream(uint32_t stream, const example::EchoRequest& request, const std::string& extra_headers = "");
  // SETTINGS_INITIAL_WINDOW_SIZE: every stream's window toward this client.
  void setStreamWindow(uint32_t bytes);

  // Sends what the kernel takes at once; how many bytes that was.
  size_t sendSome(const std::string& bytes);
  bool send(const std::string& bytes);

  struct Seen {
    bool goaway = false;
    uint32_t goaway_code = 0;
    bool closed = false;
    bool reset = false;  // closed by a TCP reset (ECONNRESET), not an orderly FIN
    std::vector<std::pair<uint32_t, uint32_t>> resets;  // stream, code
  };
  struct Frame {
    uint8_t type = 0;
    uint8_t flags = 0;
    uint32_t stream = 0;
    std::string payload;
  };
  // The next whole frame the peer sends, or nothing if none came within
  // `limit` (or the connection closed).
  std::optional<Frame> nextFrame(std::chrono::milliseconds limit);
  // Reads frames until the peer closes or `limit` passes. `on_ping` gets
  // the payload of each PING (not ACK) that arrives. A slow reader takes at
  // most `max_read` bytes, then pauses `pause`.
  Seen readUntilClosed(std::chrono::milliseconds limit,
                       const std::function<void(const std::string&)>& on_ping = {}, size_t max_read = 65536,
                       std::chrono::milliseconds pause = std::chrono::milliseconds(0));

 private:
  int fd_ = -1;
  std::string buffered_;  // bytes read, not yet a whole frame
};

}  // namespace sluice::test
