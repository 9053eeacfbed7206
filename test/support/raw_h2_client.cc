#include "test/support/raw_h2_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include <nghttp2/nghttp2.h>

namespace sluice::test {
namespace {

using Clock = std::chrono::steady_clock;

// Large windows so a test never waits on WINDOW_UPDATEs from its own client.
constexpr int32_t kWindowSize = 16 << 20;

int millisUntil(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

RawH2Client* clientOf(void* userData) { return static_cast<RawH2Client*>(userData); }

int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* userData) noexcept {
  if (frame->hd.type == NGHTTP2_HEADERS) {
    clientOf(userData)->onBeginHeaders(frame->hd.stream_id, frame->headers.cat);
  }
  return 0;
}

int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t nameLength,
             const uint8_t* value, size_t valueLength, uint8_t, void* userData) noexcept {
  clientOf(userData)->onHeader(
      frame->hd.stream_id, {reinterpret_cast<const char*>(name), nameLength},
      {reinterpret_cast<const char*>(value), valueLength});
  return 0;
}

int onFrameReceived(nghttp2_session*, const nghttp2_frame* frame, void* userData) noexcept {
  uint32_t errorCode = 0;
  if (frame->hd.type == NGHTTP2_RST_STREAM) errorCode = frame->rst_stream.error_code;
  if (frame->hd.type == NGHTTP2_GOAWAY) errorCode = frame->goaway.error_code;
  clientOf(userData)->onFrameReceived(frame->hd.type, frame->hd.stream_id, frame->hd.flags,
                                      errorCode);
  return 0;
}

int onDataChunk(nghttp2_session*, uint8_t, int32_t streamId, const uint8_t* data, size_t length,
                void* userData) noexcept {
  clientOf(userData)->onData(streamId, {reinterpret_cast<const char*>(data), length});
  return 0;
}

int onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode, void* userData) noexcept {
  clientOf(userData)->onStreamClose(streamId, errorCode);
  return 0;
}

ssize_t readBody(nghttp2_session*, int32_t streamId, uint8_t* buffer, size_t length,
                 uint32_t* dataFlags, nghttp2_data_source*, void* userData) noexcept {
  return clientOf(userData)->readBody(streamId, buffer, length, dataFlags);
}

const nghttp2_session_callbacks* callbacks() {
  static nghttp2_session_callbacks* table = [] {
    nghttp2_session_callbacks* callbacks = nullptr;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameReceived);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose);
    return callbacks;
  }();
  return table;
}

nghttp2_nv makeNv(const std::string& name, const std::string& value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percentDecode(std::string_view value) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '%' && i + 2 < value.size() && hexValue(value[i + 1]) >= 0 &&
        hexValue(value[i + 2]) >= 0) {
      out += static_cast<char>(hexValue(value[i + 1]) * 16 + hexValue(value[i + 2]));
      i += 2;
    } else {
      out += value[i];
    }
  }
  return out;
}

std::optional<std::string> find(const HeaderList& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return std::nullopt;
}

}  // namespace

RawRequest RawRequest::grpc(std::string path, std::string body) {
  RawRequest request;
  request.path = std::move(path);
  request.body = std::move(body);
  return request;
}

std::optional<std::string> RawResponse::header(std::string_view name) const {
  if (auto value = find(headers, name)) return value;
  return find(trailers, name);
}

std::optional<int> RawResponse::grpcStatus() const {
  auto value = trailers.empty() ? find(headers, "grpc-status") : find(trailers, "grpc-status");
  if (!value) return std::nullopt;
  try {
    return std::stoi(*value);
  } catch (...) {
    return std::nullopt;
  }
}

std::string RawResponse::grpcMessage() const {
  auto value = trailers.empty() ? find(headers, "grpc-message") : find(trailers, "grpc-message");
  return value ? percentDecode(*value) : "";
}

bool RawResponse::trailersOnly() const {
  return status == 200 && headersEndedStream && trailers.empty() && body.empty() &&
         find(headers, "grpc-status").has_value();
}

std::string RawResponse::describe() const {
  std::ostringstream out;
  out << ":status " << status << (headersEndedStream ? " (headers ended the stream)" : "") << "\n";
  for (const auto& [name, value] : headers) out << "  header  " << name << ": " << value << "\n";
  for (const auto& [name, value] : trailers) out << "  trailer " << name << ": " << value << "\n";
  out << "body: " << body.size() << " bytes\n";
  if (rstStreamCode) out << "RST_STREAM code " << *rstStreamCode << "\n";
  out << "stream closed: " << streamClosed << ", GOAWAY: " << goawayReceived
      << ", connection closed: " << connectionClosed << ", timed out: " << timedOut << "\n";
  return out.str();
}

std::string grpcFrame(std::string_view message, uint8_t flags) {
  std::string frame(5, '\0');
  frame[0] = static_cast<char>(flags);
  const uint32_t length = static_cast<uint32_t>(message.size());
  frame[1] = static_cast<char>(length >> 24);
  frame[2] = static_cast<char>(length >> 16);
  frame[3] = static_cast<char>(length >> 8);
  frame[4] = static_cast<char>(length);
  frame.append(message);
  return frame;
}

std::optional<std::vector<std::string>> parseGrpcFrames(std::string_view body) {
  std::vector<std::string> messages;
  while (!body.empty()) {
    if (body.size() < 5) return std::nullopt;
    const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(body[i])); };
    const uint32_t length = byte(1) << 24 | byte(2) << 16 | byte(3) << 8 | byte(4);
    if (body.size() - 5 < length) return std::nullopt;
    messages.emplace_back(body.substr(5, length));
    body.remove_prefix(5 + length);
  }
  return messages;
}

RawH2Client::RawH2Client(const std::string& host, int port,
                         std::chrono::milliseconds connectTimeout)
    : authority_(host + ":" + std::to_string(port)) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
    throw std::runtime_error("RawH2Client: not an IPv4 address: " + host);
  }
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    int error = errno;
    if (error == EINPROGRESS) {
      pollfd pfd{fd_, POLLOUT, 0};
      socklen_t length = sizeof(error);
      if (::poll(&pfd, 1, static_cast<int>(connectTimeout.count())) != 1) {
        error = ETIMEDOUT;
      } else {
        ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
      }
    }
    if (error != 0) {
      ::close(fd_);
      throw std::runtime_error("RawH2Client: connect to " + authority_ + ": " + std::strerror(error));
    }
  }

  nghttp2_session_client_new(&session_, callbacks(), this);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kWindowSize},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kWindowSize);
  // The client session sends the connection preface itself, before SETTINGS.
  if (!flush(Clock::now() + connectTimeout)) {
    throw std::runtime_error("RawH2Client: cannot send the connection preface to " + authority_);
  }
}

uint32_t RawH2Client::remoteSetting(int id) const {
  return nghttp2_session_get_remote_settings(session_, static_cast<nghttp2_settings_id>(id));
}

int32_t RawH2Client::remoteConnectionWindow() const { return nghttp2_session_get_remote_window_size(session_); }

RawH2Client::~RawH2Client() {
  nghttp2_session_del(session_);
  if (fd_ >= 0) ::close(fd_);
}

RawResponse RawH2Client::request(const RawRequest& request, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string authority = request.authority.empty() ? authority_ : request.authority;
  const std::string kMethod = ":method", kPath = ":path", kScheme = ":scheme",
                    kAuthority = ":authority";
  std::vector<nghttp2_nv> nva{makeNv(kMethod, request.method), makeNv(kScheme, request.scheme),
                              makeNv(kAuthority, authority), makeNv(kPath, request.path)};
  if (!request.sendAuthority) nva.erase(nva.begin() + 2);
  for (const auto& [name, value] : request.headers) nva.push_back(makeNv(name, value));

  StreamState state;
  state.body = request.body;
  state.endStream = request.endStream;
  const bool hasBody = !request.body.empty() || !request.endStream;
  nghttp2_data_provider provider{};
  provider.read_callback = sluice::test::readBody;
  const int32_t streamId = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                                  hasBody ? &provider : nullptr, nullptr);
  if (streamId < 0) {
    throw std::runtime_error(std::string("nghttp2_submit_request: ") + nghttp2_strerror(streamId));
  }
  StreamState& stream = streams_[streamId] = std::move(state);

  while (!stream.response.streamClosed && !closed_) {
    if (!flush(deadline)) break;
    if (stream.response.streamClosed) break;
    if (request.returnOnceSent && stream.bodyOffset >= stream.body.size() && nghttp2_session_want_write(session_) == 0) {
      break;
    }
    if (!readOnce(deadline) && Clock::now() >= deadline) {
      stream.response.timedOut = true;
      break;
    }
  }
  RawResponse response = std::move(stream.response);
  response.goawayReceived = goawayReceived_;
  response.connectionClosed = closed_;
  streams_.erase(streamId);
  return response;
}

bool RawH2Client::writeRaw(std::string_view bytes) {
  return sendAll(bytes, Clock::now() + std::chrono::seconds(5));
}

bool RawH2Client::waitForGoawayOrClose(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!goawayReceived_ && !closed_) {
    // Our own SETTINGS ACKs may fail to go out once the peer has given up.
    flush(deadline);
    if (goawayReceived_ || closed_) break;
    if (!readOnce(deadline) && Clock::now() >= deadline) break;
  }
  return goawayReceived_ || closed_;
}

bool RawH2Client::flush(Clock::time_point deadline) {
  if (closed_) return false;
  while (true) {
    const uint8_t* data = nullptr;
    const ssize_t length = nghttp2_session_mem_send(session_, &data);
    if (length < 0) return false;
    if (length == 0) return true;
    if (!sendAll({reinterpret_cast<const char*>(data), static_cast<size_t>(length)}, deadline)) {
      return false;
    }
  }
}

bool RawH2Client::sendAll(std::string_view bytes, Clock::time_point deadline) {
  while (!bytes.empty()) {
    const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent > 0) {
      bytes.remove_prefix(static_cast<size_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // While the peer is not reading, it may be waiting for us to read
      // (e.g. its WINDOW_UPDATEs): drain input so neither side deadlocks.
      pollfd pfd{fd_, POLLOUT | POLLIN, 0};
      if (::poll(&pfd, 1, millisUntil(deadline)) <= 0) return false;
      if ((pfd.revents & POLLIN) && !(pfd.revents & POLLOUT)) {
        char buffer[65536];
        const ssize_t received = ::recv(fd_, buffer, sizeof(buffer), 0);
        if (received <= 0) {
          closed_ = true;
          return false;
        }
        if (nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t*>(buffer),
                                     static_cast<size_t>(received)) < 0) {
          closed_ = true;
          return false;
        }
      }
      continue;
    }
    closed_ = true;  // EPIPE, ECONNRESET: the peer is gone
    return false;
  }
  return true;
}

bool RawH2Client::readOnce(Clock::time_point deadline) {
  if (closed_) return false;
  pollfd pfd{fd_, POLLIN, 0};
  const int ready = ::poll(&pfd, 1, millisUntil(deadline));
  if (ready <= 0) return false;
  char buffer[65536];
  const ssize_t received = ::recv(fd_, buffer, sizeof(buffer), 0);
  if (received < 0 && (errno == EAGAIN || errno == EINTR)) return true;
  if (received <= 0) {
    closed_ = true;
    return false;
  }
  const ssize_t consumed = nghttp2_session_mem_recv(
      session_, reinterpret_cast<uint8_t*>(buffer), static_cast<size_t>(received));
  if (consumed < 0) {
    // The peer sent something our nghttp2 cannot parse; nothing more will
    // make sense on this connection.
    closed_ = true;
    return false;
  }
  return true;
}

void RawH2Client::onBeginHeaders(int32_t streamId, int) {
  auto it = streams_.find(streamId);
  if (it == streams_.end()) return;
  // Before a final :status, a block is the response head; after it, trailers.
  it->second.inTrailers = it->second.response.status != 0;
  it->second.ignoreBlock = false;
}

void RawH2Client::onHeader(int32_t streamId, std::string_view name, std::string_view value) {
  auto it = streams_.find(streamId);
  if (it == streams_.end()) return;
  StreamState& stream = it->second;
  if (name == ":status" && !value.empty() && value[0] == '1') stream.ignoreBlock = true;
  if (stream.ignoreBlock) return;
  if (stream.inTrailers) {
    stream.response.trailers.emplace_back(name, value);
    return;
  }
  if (name == ":status") stream.response.status = std::atoi(std::string(value).c_str());
  stream.response.headers.emplace_back(name, value);
}

void RawH2Client::onFrameReceived(int type, int32_t streamId, uint8_t flags, uint32_t errorCode) {
  if (type == NGHTTP2_GOAWAY) {
    goawayReceived_ = true;
    goawayErrorCode_ = errorCode;
    return;
  }
  auto it = streams_.find(streamId);
  if (it == streams_.end()) return;
  StreamState& stream = it->second;
  if (type == NGHTTP2_RST_STREAM) stream.response.rstStreamCode = errorCode;
  if (type == NGHTTP2_HEADERS && !stream.inTrailers && !stream.ignoreBlock &&
      (flags & NGHTTP2_FLAG_END_STREAM)) {
    stream.response.headersEndedStream = true;
  }
}

void RawH2Client::onData(int32_t streamId, std::string_view data) {
  auto it = streams_.find(streamId);
  if (it != streams_.end()) it->second.response.body.append(data);
}

void RawH2Client::onStreamClose(int32_t streamId, uint32_t) {
  auto it = streams_.find(streamId);
  if (it != streams_.end()) it->second.response.streamClosed = true;
}

long RawH2Client::readBody(int32_t streamId, uint8_t* buffer, size_t length, uint32_t* dataFlags) {
  auto it = streams_.find(streamId);
  if (it == streams_.end()) {
    *dataFlags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  StreamState& stream = it->second;
  const size_t left = stream.body.size() - stream.bodyOffset;
  const size_t n = std::min(left, length);
  std::memcpy(buffer, stream.body.data() + stream.bodyOffset, n);
  stream.bodyOffset += n;
  if (stream.bodyOffset == stream.body.size()) {
    if (stream.endStream) {
      *dataFlags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (n == 0) {
      // Leave the stream open: nothing more to send, and no END_STREAM.
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return static_cast<long>(n);
}

}  // namespace sluice::test
