// A small blocking HTTP/2 client (h2c, prior knowledge) for the bad-input tests:
// it sends what no grpc++ client would (wrong content-type, malformed gRPC
// frames, raw garbage) and reports exactly what came back on the wire.
//
// One RawH2Client is one TCP connection driving an nghttp2 client session.
// Every call blocks with a timeout (poll); nothing runs in the background, so
// frames only move while a call is in progress. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct nghttp2_session;

namespace sluice::test {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct RawRequest {
  std::string method = "POST";
  std::string path = "/sluice.example.Echo/Unary";
  std::string scheme = "http";
  std::string authority;  // empty: host:port of the connection
  bool sendAuthority = true;  // false: no :authority at all (a Host header may stand in)
  // Sent after the pseudo-headers, in order, as given.
  HeaderList headers = {{"content-type", "application/grpc"}, {"te", "trailers"}};
  std::string body;
  // false leaves the request stream open after the body (no END_STREAM).
  bool endStream = true;
  // With endStream false: request() returns once the whole body is written,
  // rather than waiting for the stream to close (the gateway may hold it).
  bool returnOnceSent = false;

  // A well-formed gRPC request head for `path` (body still to be set).
  static RawRequest grpc(std::string path, std::string body = {});
};

struct RawResponse {
  int status = 0;      // :status of the response headers, 0 when none came
  HeaderList headers;  // the first (non-1xx) HEADERS block, pseudo-headers included
  HeaderList trailers; // a second HEADERS block, if any
  std::string body;    // DATA payload, concatenated
  bool headersEndedStream = false;  // the response HEADERS carried END_STREAM
  std::optional<uint32_t> rstStreamCode;  // the peer reset the stream with this code
  bool streamClosed = false;  // the stream completed or was reset
  bool goawayReceived = false;
  bool connectionClosed = false;
  bool timedOut = false;

  // Looks in the headers, then in the trailers.
  std::optional<std::string> header(std::string_view name) const;
  // grpc-status from the trailers, or from the headers of a trailers-only response.
  std::optional<int> grpcStatus() const;
  // grpc-message, percent-decoded.
  std::string grpcMessage() const;
  // HTTP 200 whose only HEADERS frame ended the stream and carried grpc-status.
  bool trailersOnly() const;
  // One line per fact, for test failure messages.
  std::string describe() const;
};

// A gRPC length-prefixed message: flags byte, 4-byte big-endian length, bytes.
std::string grpcFrame(std::string_view message, uint8_t flags = 0);
// Splits a response body into messages; nullopt if it is not whole frames.
std::optional<std::vector<std::string>> parseGrpcFrames(std::string_view body);

class RawH2Client {
 public:
  // Connects and sends the connection preface and SETTINGS. Throws
  // std::runtime_error when the connection fails.
  RawH2Client(const std::string& host, int port,
              std::chrono::milliseconds connectTimeout = std::chrono::seconds(5));
  ~RawH2Client();
  RawH2Client(const RawH2Client&) = delete;
  RawH2Client& operator=(const RawH2Client&) = delete;

  // Sends one request and waits until its stream closes, the connection
  // closes or `timeout` passes (RawResponse says which).
  RawResponse request(const RawRequest& request,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Writes bytes straight to the socket, past nghttp2 (which the peer will
  // then read as HTTP/2 frames). False if the socket refused them.
  bool writeRaw(std::string_view bytes);

  // Reads until a GOAWAY arrives or the connection closes; true if either
  // happened within `timeout`.
  bool waitForGoawayOrClose(std::chrono::milliseconds timeout);

  bool goawayReceived() const { return goawayReceived_; }
  std::optional<uint32_t> goawayErrorCode() const { return goawayErrorCode_; }
  bool connectionClosed() const { return closed_; }
  // What the gateway has granted this client so far: a SETTINGS value (e.g.
  // NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE) and the connection-level window.
  uint32_t remoteSetting(int id) const;
  int32_t remoteConnectionWindow() const;

  // nghttp2 callbacks (public for the C trampolines only).
  void onBeginHeaders(int32_t streamId, int category);
  void onHeader(int32_t streamId, std::string_view name, std::string_view value);
  void onFrameReceived(int type, int32_t streamId, uint8_t flags, uint32_t errorCode);
  void onData(int32_t streamId, std::string_view data);
  void onStreamClose(int32_t streamId, uint32_t errorCode);
  long readBody(int32_t streamId, uint8_t* buffer, size_t length, uint32_t* dataFlags);

 private:
  struct StreamState {
    RawResponse response;
    bool inTrailers = false;
    bool ignoreBlock = false;  // a 1xx HEADERS block
    std::string body;          // what is left to send
    size_t bodyOffset = 0;
    bool endStream = true;
  };

  // Flushes nghttp2's output; false when the connection is gone.
  bool flush(std::chrono::steady_clock::time_point deadline);
  // Waits for input until `deadline` and feeds it to nghttp2; false when the
  // connection is gone (closed_ set) or nothing came in time.
  bool readOnce(std::chrono::steady_clock::time_point deadline);
  bool sendAll(std::string_view bytes, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string authority_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, StreamState> streams_;
  bool goawayReceived_ = false;
  std::optional<uint32_t> goawayErrorCode_;
  bool closed_ = false;
};

}  // namespace sluice::test
