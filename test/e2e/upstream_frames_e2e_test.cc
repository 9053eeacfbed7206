// What the gateway sends a backend, frame by frame, when calls end. A call
// both sides finished must cost the backend nothing more (the gateway used to
// follow every completed call with RST_STREAM(CANCEL)); a call the client
// gives up on must still reach the backend as RST_STREAM(CANCEL). grpc++
// backends hide RST_STREAM, so the backend here is raw nghttp2 and counts them.
// The same backend sends what grpc++ never would (blocks over the limit, no
// grpc-status, a late or zero SETTINGS_MAX_CONCURRENT_STREAMS).
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nghttp2/nghttp2.h>

#include "test/support/admin_stats.h"
#include "test/support/e2e_fixture.h"
#include "test/support/http_client.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using example::EchoRequest;
using example::EchoResponse;
using Clock = std::chrono::steady_clock;

constexpr const char* kUnaryPath = "/sluice.example.Echo/Unary";
constexpr const char* kServerStreamPath = "/sluice.example.Echo/ServerStream";
constexpr const char* kHealthCheckPath = "/grpc.health.v1.Health/Check";
// Answered with a header block (kBigHeadersPath) or a trailer block
// (kBigTrailersPath) of 80,000 bytes of metadata: more than the 64 KiB the
// gateway accepts in one block, and than it could send a client.
// Answered like kUnaryPath, after an informational 103 (Early Hints) block.
constexpr const char* kEarlyHintsPath = "/sluice.example.Echo/UnaryAfterEarlyHints";
constexpr const char* kBigHeadersPath = "/big.Blocks/Headers";
constexpr const char* kBigTrailersPath = "/big.Blocks/Trailers";
// Answered with a header block of 320,000 bytes: more than nghttp2 takes in
// one block (it ends the connection after 8 CONTINUATION frames) and than
// the gateway decodes (it resets the stream at 4x the limit), so the block
// never completes.
constexpr const char* kHugeHeadersPath = "/big.Blocks/HugeHeaders";
// Answered with one HEADERS frame ending the stream, :status 200 and no
// grpc-status: not a gRPC answer, though it looks like a trailers-only one.
constexpr const char* kNoStatusPath = "/no.Status/TrailersOnly";
// Answered with a header block that ends the stream without :status, which
// HTTP/2 forbids: the gateway's nghttp2 resets the stream itself.
constexpr const char* kBadHeaderPath = "/bad.Header/NoStatus";
// Answered like kUnaryPath, with 60,000 bytes of metadata in the response
// headers: within what the gateway accepts, but with a little more added by
// a filter, more than one HTTP/2 header block may carry.
constexpr const char* kNearLimitHeadersPath = "/big.Blocks/NearLimitHeaders";
// Answered with HEADERS and a message announced as kDripAnnounced bytes of
// which only kDripSent arrive; the stream then stays open.
constexpr const char* kDripPath = "/slow.Big/Drip";
// Answered as kUnaryPath is, but wrong in one way each: trailers with
// grpc-status "99"; content-type text/html; the message's compressed flag
// set with no grpc-encoding.
constexpr const char* kStatus99Path = "/odd.Answer/Status99";
// Answered as kUnaryPath is, with two grpc-status fields in its trailers: "0" and "13".
constexpr const char* kTwoStatusesPath = "/odd.Answer/TwoStatuses";
constexpr const char* kHtmlPath = "/odd.Answer/Html";
constexpr const char* kCompressedPath = "/odd.Answer/Compressed";
// A trailers-only answer with :status 503, content-type text/plain and
// grpc-status 8 (RESOURCE_EXHAUSTED), grpc-message "busy".
constexpr const char* kStatus503Path = "/odd.Answer/Status503";
// Response HEADERS announcing content-length 1000, one message (less), then
// RST_STREAM(INTERNAL_ERROR).
constexpr const char* kLengthThenResetPath = "/odd.Answer/LengthThenReset";
// Answered with response headers (kBadBinHeadersPath) or trailers
// (kBadBinTrailersPath) holding a -bin value that is not base64.
constexpr const char* kBadBinHeadersPath = "/odd.Answer/BadBinHeaders";
constexpr const char* kBadBinTrailersPath = "/odd.Answer/BadBinTrailers";
constexpr uint32_t kDripAnnounced = 3u << 20;
constexpr size_t kDripSent = 5u << 19;  // 2.5 MiB

std::string grpcMessage(const std::string& bytes) {
  std::string out(5, '\0');
  const auto n = static_cast<uint32_t>(bytes.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + bytes;
}

nghttp2_nv header(const char* name, const char* value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name)), reinterpret_cast<uint8_t*>(const_cast<char*>(value)),
          std::strlen(name), std::strlen(value), NGHTTP2_NV_FLAG_NONE};
}

// An HTTP/2 backend (nghttp2 server API) speaking just enough gRPC:
// - kUnaryPath: once the request has ended, HEADERS, one DATA frame holding an
//   EchoResponse (payload echoed, backend "frames"), then trailers grpc-status 0;
// - kEarlyHintsPath: as kUnaryPath, after a 103 response;
// - kServerStreamPath: response HEADERS, and the stream is never ended;
// - kBigHeadersPath, kBigTrailersPath, kNoStatusPath: see above;
// - anything else: trailers-only UNIMPLEMENTED (Options::other_status).
// It counts every RST_STREAM frame it receives, with its error code. One
// thread serves every connection with poll; every wait is bounded (100 ms) and
// checks the stop flag.
class FrameCountingBackend {
 public:
  struct Options {
    // Advertised as SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2 refuses streams
    // past it); nullopt advertises none.
    std::optional<uint32_t> max_concurrent_streams{};
    // How long after accepting a connection its SETTINGS are sent (and its
    // input read, so that nothing is answered before them).
    std::chrono::milliseconds settings_delay{0};
    // The first this many calls are reset with REFUSED_STREAM unprocessed.
    int refuse_first = 0;
    // Grant the largest windows HTTP/2 has (stream and connection), so the
    // gateway can send whatever it has until the socket stops it.
    bool largest_windows = false;
    // A second SETTINGS sent with the first, in the same write, advertising
    // this SETTINGS_MAX_CONCURRENT_STREAMS (a backend that changes its mind).
    std::optional<uint32_t> then_max_concurrent_streams{};
    // The grpc-status of the trailers-only answer to any other path.
    const char* other_status = "12";
  };

  FrameCountingBackend() : FrameCountingBackend(Options{}) {}
  explicit FrameCountingBackend(Options options) : options_(options), max_concurrent_streams_(options.max_concurrent_streams) {
    fd_ = listenOnLoopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~FrameCountingBackend() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  FrameCountingBackend(const FrameCountingBackend&) = delete;
  FrameCountingBackend& operator=(const FrameCountingBackend&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // What connections accepted from now on advertise (as the option does).
  void setMaxConcurrentStreams(std::optional<uint32_t> n) {
    std::lock_guard<std::mutex> lock(mutex_);
    max_concurrent_streams_ = n;
  }
  // While paused, nothing is read from the connections accepted so far (later
  // ones are read): the gateway's writes back up in the kernel, then in its
  // own buffers.
  void pauseReading(bool paused) { paused_below_ = paused ? connections_.load() : 0; }
  // A SETTINGS advertising SETTINGS_MAX_CONCURRENT_STREAMS `n` on the
  // connection accepted `ordinal`-th (from 0) only.
  void advertiseStreamLimitOn(int ordinal, uint32_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_changes_.emplace_back(ordinal, n);
  }
  // Each connection holding a kServerStreamPath call gets one PUSH_PROMISE
  // on it (raw bytes: nghttp2 will not send one to a peer that disabled push).
  void pushPromise() { push_requested_ = true; }
  // `n` GOAWAY(ENHANCE_YOUR_CALM) frames on every connection, each naming
  // the last stream it opened (so that its calls go on).
  void goawayFlood(int n) { goaway_flood_ = n; }
  // Closes every connection at once, unread input and all (the kernel
  // answers the gateway with a reset): a backend that crashed.
  void dropConnections() { drop_requested_ = true; }
  int goaways() const { return goaways_; }
  uint32_t lastGoawayCode() const { return last_goaway_code_; }
  int rstStreams() const { return rst_streams_; }
  int rstCancels() const { return rst_cancels_; }
  int unaryAnswered() const { return unary_answered_; }
  int streamsHeld() const { return streams_held_; }
  // kDripPath calls whose bytes have all been handed to nghttp2 to send.
  int dripsSent() const { return drips_sent_; }
  int connections() const { return connections_; }
  // What the gateway granted this backend, as of the last bytes received:
  // its SETTINGS_INITIAL_WINDOW_SIZE, and the largest connection window seen.
  uint32_t grantedStreamWindow() const { return granted_stream_window_; }
  int32_t grantedConnectionWindow() const { return granted_connection_window_; }
  // The error codes of every RST_STREAM received, in order, for messages.
  std::string rstCodes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string out;
    for (uint32_t c : rst_codes_) out += std::string(out.empty() ? "" : ", ") + nghttp2_http2_strerror(c);
    return out.empty() ? "none" : out;
  }

  struct Stream {
    std::string path;
    std::vector<std::pair<std::string, std::string>> headers;  // the request's header block, in order
    std::string request;   // request DATA, concatenated
    std::string response;  // what the data provider has left to send
    size_t sent = 0;
  };
  struct Connection {
    FrameCountingBackend* backend;
    int fd;
    nghttp2_session* session = nullptr;
    Clock::time_point settings_due;
    bool settings_sent = false;
    int ordinal = 0;  // accepted as the backend's connection number ordinal (from 0)
    std::map<int32_t, Stream> streams;
  };

  // nghttp2 callbacks, through the trampolines below.
  void onHeader(Connection& c, int32_t id, std::string_view name, std::string_view value) {
    if (name == ":path") c.streams[id].path = value;
    c.streams[id].headers.emplace_back(name, value);
  }
  // The header block of every request received so far, in arrival order.
  std::vector<std::vector<std::pair<std::string, std::string>>> requestHeaders() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return request_headers_;
  }
  void onData(Connection& c, int32_t id, std::string_view data) { c.streams[id].request.append(data); }
  void onFrame(Connection& c, const nghttp2_frame& frame) {
    if (frame.hd.type == NGHTTP2_GOAWAY) {
      last_goaway_code_ = frame.goaway.error_code;
      goaways_++;
      return;
    }
    if (frame.hd.type == NGHTTP2_RST_STREAM) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        rst_codes_.push_back(frame.rst_stream.error_code);
      }
      if (frame.rst_stream.error_code == NGHTTP2_CANCEL) rst_cancels_++;
      rst_streams_++;
      return;
    }
    const bool request_ended = (frame.hd.type == NGHTTP2_HEADERS || frame.hd.type == NGHTTP2_DATA) &&
                               (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (!request_ended) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      request_headers_.push_back(c.streams[frame.hd.stream_id].headers);
    }
    if (refused_ < options_.refuse_first) {
      refused_++;
      nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, frame.hd.stream_id, NGHTTP2_REFUSED_STREAM);
      return;
    }
    answer(c, frame.hd.stream_id);
  }
  int refused() const { return refused_; }
  void onStreamClose(Connection& c, int32_t id) { c.streams.erase(id); }
  ssize_t readResponse(Connection& c, int32_t id, uint8_t* buf, size_t length, uint32_t* flags) {
    auto it = c.streams.find(id);
    if (it == c.streams.end()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    Stream& s = it->second;
    if (s.path == kDripPath && s.sent == s.response.size()) return NGHTTP2_ERR_DEFERRED;  // never finishes
    const size_t n = std::min(length, s.response.size() - s.sent);
    std::memcpy(buf, s.response.data() + s.sent, n);
    s.sent += n;
    if (s.sent == s.response.size() && s.path == kDripPath) drips_sent_++;
    if (s.sent == s.response.size() && s.path == kLengthThenResetPath) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    } else if (s.sent == s.response.size() && s.path != kDripPath) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      // Trailers go after the DATA: submitted once the provider has given its last byte.
      nghttp2_nv trailers[] = {header("grpc-status", s.path == kStatus99Path ? "99" : "0"),
                               header("grpc-status", "13")};
      const size_t fields = s.path == kTwoStatusesPath ? 2 : 1;
      if (nghttp2_submit_trailer(c.session, id, trailers, fields) != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
      unary_answered_++;
    }
    return static_cast<ssize_t>(n);
  }

 private:
  void answer(Connection& c, int32_t id) {
    auto it = c.streams.find(id);
    if (it == c.streams.end()) return;
    Stream& s = it->second;
    nghttp2_nv head[] = {header(":status", "200"), header("content-type", "application/grpc")};
    if (s.path == kUnaryPath || s.path == kEarlyHintsPath || s.path == kNearLimitHeadersPath ||
        s.path == kStatus99Path || s.path == kTwoStatusesPath || s.path == kHtmlPath || s.path == kCompressedPath ||
        s.path == kLengthThenResetPath) {
      if (s.path == kEarlyHintsPath) {
        nghttp2_nv hints[] = {header(":status", "103"), header("link", "</style.css>; rel=preload")};
        nghttp2_submit_headers(c.session, NGHTTP2_FLAG_NONE, id, nullptr, hints, 2, nullptr);
      }
      EchoRequest request;
      if (s.request.size() >= 5) request.ParseFromString(s.request.substr(5));
      EchoResponse response;
      response.set_payload(request.payload());
      response.set_backend("frames");
      response.set_method(s.path);
      s.response = grpcMessage(response.SerializeAsString());
      if (s.path == kCompressedPath) s.response[0] = 1;
      if (s.path == kHtmlPath) head[1] = header("content-type", "text/html");
      nghttp2_data_provider provider{};
      provider.read_callback = &FrameCountingBackend::readCallback;
      static const std::string near_limit(60000, 'n');
      nghttp2_nv fat[] = {head[0], head[1], header("x-near-limit", near_limit.c_str())};
      nghttp2_nv announced[] = {head[0], head[1], header("content-length", "1000")};
      if (s.path == kNearLimitHeadersPath) {
        nghttp2_submit_response(c.session, id, fat, 3, &provider);
      } else if (s.path == kLengthThenResetPath) {
        nghttp2_submit_response(c.session, id, announced, 3, &provider);
      } else {
        nghttp2_submit_response(c.session, id, head, 2, &provider);
      }
    } else if (s.path == kBigHeadersPath || s.path == kBigTrailersPath || s.path == kHugeHeadersPath) {
      static const std::string big(40000, 'b');
      nghttp2_nv bigs[] = {header("x-big-1", big.c_str()), header("x-big-2", big.c_str())};
      nghttp2_nv trailers[] = {header("grpc-status", "0"), bigs[0], bigs[1]};
      if (s.path == kHugeHeadersPath) {
        // Distinct names, so that HPACK cannot shrink the block on the wire.
        static const std::array<std::string, 8> names = {"x-huge-1", "x-huge-2", "x-huge-3", "x-huge-4",
                                                         "x-huge-5", "x-huge-6", "x-huge-7", "x-huge-8"};
        std::vector<nghttp2_nv> huge = {head[0], head[1]};
        for (const std::string& name : names) huge.push_back(header(name.c_str(), big.c_str()));
        nghttp2_submit_headers(c.session, NGHTTP2_FLAG_NONE, id, nullptr, huge.data(), huge.size(), nullptr);
        streams_held_++;
      } else if (s.path == kBigHeadersPath) {
        nghttp2_nv fat[] = {head[0], head[1], bigs[0], bigs[1]};
        nghttp2_submit_headers(c.session, NGHTTP2_FLAG_NONE, id, nullptr, fat, 4, nullptr);
        streams_held_++;
      } else {
        nghttp2_submit_headers(c.session, NGHTTP2_FLAG_NONE, id, nullptr, head, 2, nullptr);
        nghttp2_submit_headers(c.session, NGHTTP2_FLAG_END_STREAM, id, nullptr, trailers, 3, nullptr);
      }
    } else if (s.path == kDripPath) {
      s.response = std::string(5, '\0');
      s.response[1] = static_cast<char>(kDripAnnounced >> 24);
      s.response[2] = static_cast<char>(kDripAnnounced >> 16);
      s.response[3] = static_cast<char>(kDripAnnounced >> 8);
      s.response[4] = static_cast<char>(kDripAnnounced);
      s.response += std::string(kDripSent, 'd');
      nghttp2_data_provider provider{};
      provider.read_callback = &FrameCountingBackend::readCallback;
      nghttp2_submit_response(c.session, id, head, 2, &provider);
      streams_held_++;
    } else if (s.path == kBadBinHeadersPath || s.path == kBadBinTrailersPath) {
      const bool in_headers = s.path == kBadBinHeadersPath;
      nghttp2_nv heads[] = {head[0], head[1], header("x-h-bin", "Y")};
      nghttp2_nv trailers[] = {header("grpc-status", "0"), header("x-t-bin", "YQ-_")};
      nghttp2_submit_headers(c.session, NGHTTP2_FLAG_NONE, id, nullptr, heads, in_headers ? 3 : 2, nullptr);
      nghttp2_submit_headers(c.session, NGHTTP2_FLAG_END_STREAM, id, nullptr, trailers, in_headers ? 1 : 2, nullptr);
    } else if (s.path == kStatus503Path) {
      nghttp2_nv only[] = {header(":status", "503"), header("content-type", "text/plain"),
                           header("grpc-status", "8"), header("grpc-message", "busy")};
      nghttp2_submit_response(c.session, id, only, 4, nullptr);
    } else if (s.path == kNoStatusPath) {
      nghttp2_submit_response(c.session, id, head, 2, nullptr);
    } else if (s.path == kBadHeaderPath) {
      nghttp2_nv bad[] = {head[1], header("grpc-status", "0")};
      nghttp2_submit_headers(c.session, NGHTTP2_FLAG_END_STREAM, id, nullptr, bad, 2, nullptr);
    } else if (s.path == kServerStreamPath || s.path == kHealthCheckPath) {
      // Headers, then nothing: the call stays open until someone resets it
      // (a health check that never gets its answer).
      nghttp2_submit_headers(c.session, NGHTTP2_FLAG_NONE, id, nullptr, head, 2, nullptr);
      if (s.path == kServerStreamPath) streams_held_++;  // calls only
    } else {
      nghttp2_nv only[] = {header(":status", "200"), header("content-type", "application/grpc"),
                           header("grpc-status", options_.other_status)};
      nghttp2_submit_response(c.session, id, only, 3, nullptr);
    }
  }

  static ssize_t readCallback(nghttp2_session*, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                              nghttp2_data_source*, void* user) noexcept {
    auto* c = static_cast<Connection*>(user);
    return c->backend->readResponse(*c, id, buf, length, flags);
  }

  static nghttp2_session_callbacks* callbacks();

  // Sends everything nghttp2 has queued, in one write (frames queued
  // together arrive together); false when the connection is done.
  static bool flush(Connection& c) {
    const uint8_t* out;
    ssize_t n;
    std::string pending;
    while ((n = nghttp2_session_mem_send(c.session, &out)) > 0) pending.append(reinterpret_cast<const char*>(out), n);
    for (size_t off = 0; off < pending.size();) {
      pollfd p{c.fd, POLLOUT, 0};
      if (::poll(&p, 1, 100) <= 0) return false;
      ssize_t w = ::send(c.fd, pending.data() + off, pending.size() - off, MSG_NOSIGNAL);
      if (w <= 0) return false;
      off += static_cast<size_t>(w);
    }
    return n == 0 && (nghttp2_session_want_read(c.session) || nghttp2_session_want_write(c.session));
  }

  void accept() {
    int fd = ::accept(fd_, nullptr, nullptr);
    if (fd < 0) return;
    auto c = std::make_unique<Connection>();
    c->backend = this;
    c->fd = fd;
    // Blocks past nghttp2's default 64 KiB, for the big-block paths.
    nghttp2_option* option = nullptr;
    nghttp2_option_new(&option);
    nghttp2_option_set_max_send_header_block_length(option, 1 << 20);
    nghttp2_session_server_new2(&c->session, callbacks(), c.get(), option);
    nghttp2_option_del(option);
    c->settings_due = Clock::now() + options_.settings_delay;
    c->ordinal = connections_++;
    conns_.push_back(std::move(c));
  }

  static void drop(Connection& c) {
    nghttp2_session_del(c.session);
    ::close(c.fd);
  }

  void sendSettingsWhenDue(Connection& c) {
    if (c.settings_sent || Clock::now() < c.settings_due) return;
    c.settings_sent = true;
    std::optional<uint32_t> max;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      max = max_concurrent_streams_;
    }
    std::vector<nghttp2_settings_entry> settings;
    if (max) settings.push_back({NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, *max});
    if (options_.largest_windows) {
      settings.push_back({NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, NGHTTP2_MAX_WINDOW_SIZE});
      nghttp2_session_set_local_window_size(c.session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_MAX_WINDOW_SIZE);
    }
    nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
    if (options_.then_max_concurrent_streams) {
      nghttp2_settings_entry then{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, *options_.then_max_concurrent_streams};
      nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, &then, 1);
    }
  }

  void sendLimitChanges() {
    std::vector<std::pair<int, uint32_t>> changes;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      changes.swap(limit_changes_);
    }
    for (const auto& [ordinal, n] : changes) {
      for (auto& c : conns_) {
        if (c->ordinal != ordinal) continue;
        nghttp2_settings_entry entry{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, n};
        nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, &entry, 1);
      }
    }
  }

  // A PUSH_PROMISE for stream 2 on every held kServerStreamPath stream; its
  // header block uses the static table only, so nghttp2's HPACK state on
  // this side stays valid.
  void sendPushPromises(Connection& c) {
    for (const auto& [id, stream] : c.streams) {
      if (stream.path != kServerStreamPath) continue;
      const std::string block = {'\x82', '\x86', '\x84', '\x01', '\x01', 'x'};  // GET http / authority x
      std::string payload = {0, 0, 0, 2};
      payload += block;
      std::string frame = {0, 0, static_cast<char>(payload.size()), 0x5 /* PUSH_PROMISE */, 0x4 /* END_HEADERS */,
                           static_cast<char>(id >> 24), static_cast<char>(id >> 16), static_cast<char>(id >> 8),
                           static_cast<char>(id)};
      frame += payload;
      (void)::send(c.fd, frame.data(), frame.size(), MSG_NOSIGNAL);
    }
  }

  static void sendGoaways(Connection& c, int n) {
    const int32_t last = nghttp2_session_get_last_proc_stream_id(c.session);
    std::string frame = {0, 0, 8, 0x7 /* GOAWAY */, 0, 0, 0, 0, 0};
    frame += {static_cast<char>(last >> 24), static_cast<char>(last >> 16), static_cast<char>(last >> 8),
              static_cast<char>(last), 0, 0, 0, static_cast<char>(NGHTTP2_ENHANCE_YOUR_CALM)};
    std::string frames;
    for (int i = 0; i < n; ++i) frames += frame;
    for (size_t off = 0; off < frames.size();) {
      pollfd p{c.fd, POLLOUT, 0};
      if (::poll(&p, 1, 100) <= 0) return;
      ssize_t w = ::send(c.fd, frames.data() + off, frames.size() - off, MSG_NOSIGNAL);
      if (w <= 0) return;
      off += static_cast<size_t>(w);
    }
  }

  void serve() {
    while (!stop_) {
      if (push_requested_.exchange(false)) {
        for (auto& c : conns_) sendPushPromises(*c);
      }
      if (const int n = goaway_flood_.exchange(0); n > 0) {
        for (auto& c : conns_) sendGoaways(*c, n);
      }
      sendLimitChanges();
      if (drop_requested_.exchange(false)) {
        for (auto& c : conns_) drop(*c);
        conns_.clear();
      }
      for (auto it = conns_.begin(); it != conns_.end();) {
        sendSettingsWhenDue(**it);
        if (flush(**it)) {
          ++it;
        } else {
          drop(**it);
          it = conns_.erase(it);
        }
      }
      std::vector<pollfd> fds{{fd_, POLLIN, 0}};
      // Input waits until our SETTINGS have gone: nghttp2 would otherwise
      // acknowledge the gateway's SETTINGS before sending its own.
      for (auto& c : conns_) {
        const bool paused = c->ordinal < paused_below_;
        fds.push_back({c->fd, static_cast<short>(c->settings_sent && !paused ? POLLIN : 0), 0});
      }
      const int wait_ms = options_.settings_delay.count() > 0 ? 10 : 100;
      if (::poll(fds.data(), fds.size(), wait_ms) <= 0) continue;
      for (size_t i = conns_.size(); i > 0; --i) {
        if (fds[i].revents == 0) continue;
        Connection& c = *conns_[i - 1];
        uint8_t buf[16384];
        ssize_t got = ::recv(c.fd, buf, sizeof(buf), 0);
        if (got <= 0 || nghttp2_session_mem_recv(c.session, buf, static_cast<size_t>(got)) < 0) {
          drop(c);
          conns_.erase(conns_.begin() + static_cast<long>(i - 1));
          continue;
        }
        granted_stream_window_ =
            nghttp2_session_get_remote_settings(c.session, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
        granted_connection_window_ =
            std::max<int32_t>(granted_connection_window_, nghttp2_session_get_remote_window_size(c.session));
      }
      if (fds[0].revents & POLLIN) accept();
    }
    for (auto& c : conns_) drop(*c);
    conns_.clear();
  }

  const Options options_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> paused_below_{0};  // connections accepted before this many are not read
  std::atomic<bool> push_requested_{false};
  std::atomic<int> goaway_flood_{0};
  std::atomic<bool> drop_requested_{false};
  std::atomic<int> goaways_{0};
  std::atomic<uint32_t> last_goaway_code_{0};
  std::atomic<int> rst_streams_{0};
  std::atomic<int> rst_cancels_{0};
  std::atomic<int> unary_answered_{0};
  std::atomic<int> streams_held_{0};
  std::atomic<int> drips_sent_{0};
  std::atomic<int> connections_{0};
  std::atomic<int> refused_{0};
  std::atomic<uint32_t> granted_stream_window_{0};
  std::atomic<int32_t> granted_connection_window_{0};
  mutable std::mutex mutex_;
  std::vector<uint32_t> rst_codes_;
  std::vector<std::vector<std::pair<std::string, std::string>>> request_headers_;
  std::optional<uint32_t> max_concurrent_streams_;  // under mutex_
  std::vector<std::pair<int, uint32_t>> limit_changes_;  // under mutex_: (connection ordinal, limit)
  std::vector<std::unique_ptr<Connection>> conns_;  // the serving thread's alone
  std::thread thread_;
};

// A backend that resets its first `calls` calls with REFUSED_STREAM. (Not a
// designated initialiser: GCC 12 warns of the fields it leaves out.)
FrameCountingBackend::Options refusingFirst(int calls) {
  FrameCountingBackend::Options options;
  options.refuse_first = calls;
  return options;
}

using Connection = FrameCountingBackend::Connection;

Connection& conn(void* user) { return *static_cast<Connection*>(user); }

int onHeaderCallback(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                     const uint8_t* value, size_t valuelen, uint8_t, void* user) noexcept {
  conn(user).backend->onHeader(conn(user), frame->hd.stream_id,
                               {reinterpret_cast<const char*>(name), namelen},
                               {reinterpret_cast<const char*>(value), valuelen});
  return 0;
}
int onDataChunkCallback(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                        void* user) noexcept {
  conn(user).backend->onData(conn(user), id, {reinterpret_cast<const char*>(data), len});
  return 0;
}
int onFrameRecvCallback(nghttp2_session*, const nghttp2_frame* frame, void* user) noexcept {
  conn(user).backend->onFrame(conn(user), *frame);
  return 0;
}
int onStreamCloseCallback(nghttp2_session*, int32_t id, uint32_t, void* user) noexcept {
  conn(user).backend->onStreamClose(conn(user), id);
  return 0;
}

nghttp2_session_callbacks* FrameCountingBackend::callbacks() {
  // Built once per process; never freed (like the gateway's own table).
  static nghttp2_session_callbacks* table = [] {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, onHeaderCallback);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, onDataChunkCallback);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, onFrameRecvCallback);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, onStreamCloseCallback);
    return cbs;
  }();
  return table;
}

// A grpc-timeout with at most three significant digits, in [low, high].
bool coarseTimeoutWithin(const std::string& text, std::chrono::milliseconds low, std::chrono::milliseconds high) {
  if (text.size() < 2) return false;
  std::string digits = text.substr(0, text.size() - 1);
  if (digits.find_first_not_of("0123456789") != std::string::npos) return false;
  const std::map<char, double> unit_ms = {{'S', 1e3}, {'m', 1.0}, {'u', 1e-3}, {'n', 1e-6}};
  auto unit = unit_ms.find(text.back());
  if (unit == unit_ms.end()) return false;
  const double ms = std::stod(digits) * unit->second;
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  return digits.size() <= 3 && ms >= static_cast<double>(low.count()) && ms <= static_cast<double>(high.count());
}

nlohmann::json singleConnectionConfig(const std::string& backend) {
  auto config = catchAllConfig(backend);
  config["workers"] = 1;  // one worker: one upstream connection to watch
  return config;
}

// A unary call to `method` with a deadline of `timeout`: its status, and how
// long it took (a failure must come at once, not at the deadline).
struct TimedStatus {
  grpc::Status status;
  Clock::duration took;
};
TimedStatus timedUnary(grpc::Channel& channel, const std::string& method, std::chrono::seconds timeout) {
  grpc::ClientContext ctx;
  setTimeout(ctx, timeout);
  EchoResponse response;
  const auto start = Clock::now();
  grpc::Status status = callUnaryMethod(channel, method, ctx, EchoRequest(), &response);
  return {std::move(status), Clock::now() - start};
}

}  // namespace

TEST_CASE("the backend gets the client's metadata once and in order under the gateway's own pseudo-headers",
          "[e2e][upstream]") {
  // The proxy sends the gateway's :method/:scheme/:path/:authority and
  // grpc-timeout, then the client's fields read from the call's own map:
  // never the client's pseudo-headers again, nor its host header or its
  // grpc-timeout (what is left of the deadline goes instead).
  FrameCountingBackend backend;
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  RawH2Client raw("127.0.0.1", gateway.port());
  EchoRequest echo;
  echo.set_payload("headers");
  RawRequest request = RawRequest::grpc(kUnaryPath, grpcFrame(echo.SerializeAsString()));
  request.authority = "orders.internal";
  request.headers = {{"content-type", "application/grpc"}, {"te", "trailers"}, {"x-keep", "first"},
                     {"host", "client.example"}, {"grpc-timeout", "20S"}, {"x-keep", "second"},
                     {"x-request-id", "given-id"}};
  const RawResponse response = raw.request(request);
  INFO(response.describe());
  REQUIRE(response.grpcStatus() == 0);

  const auto blocks = backend.requestHeaders();
  REQUIRE(blocks.size() == 1);
  const auto& got = blocks[0];
  std::string listing;
  for (const auto& [name, value] : got) listing += name + ": " + value + "\n";
  INFO("the backend got:\n" << listing);
  auto all = [&](const std::string& name) {
    std::vector<std::string> values;
    for (const auto& [n, v] : got) {
      if (n == name) values.push_back(v);
    }
    return values;
  };
  using Values = std::vector<std::string>;
  CHECK(all(":method") == Values{"POST"});
  CHECK(all(":scheme") == Values{"http"});
  CHECK(all(":path") == Values{kUnaryPath});
  CHECK(all(":authority") == Values{"orders.internal"});
  CHECK(all("x-keep") == Values{"first", "second"});
  CHECK(all("x-request-id") == Values{"given-id"});
  CHECK(all("content-type") == Values{"application/grpc"});
  CHECK(all("te") == Values{"trailers"});
  CHECK(all("host").empty());
  // One grpc-timeout, the gateway's: what is left of the client's 20 s,
  // rounded up to three significant digits so that calls made alike send the
  // same text (an HPACK index hit, not a new table entry per call).
  const Values timeouts = all("grpc-timeout");
  REQUIRE(timeouts.size() == 1);
  CHECK(coarseTimeoutWithin(timeouts[0], 19'800ms, 20'000ms));
  // Pseudo-headers first, as HTTP/2 requires (nghttp2 would have reset the
  // stream otherwise, but say it).
  auto first_regular = std::find_if(got.begin(), got.end(), [](const auto& h) { return h.first[0] != ':'; });
  CHECK(std::none_of(first_regular, got.end(), [](const auto& h) { return h.first[0] == ':'; }));
}

// The gateway makes the backend's request, so it says what gRPC requires of
// one even when the client left it out: te: trailers, and the host the client
// asked for (its Host header when it sent no :authority, RFC 9113 §8.3.1).
TEST_CASE("the backend's request has te: trailers and the client's host, whatever the client left out",
          "[e2e][upstream]") {
  FrameCountingBackend backend;
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  RawH2Client raw("127.0.0.1", gateway.port());
  RawRequest request = RawRequest::grpc(kUnaryPath, grpcFrame(""));
  request.sendAuthority = false;
  request.headers = {{"content-type", "application/grpc"}, {"host", "orders.internal"}};
  const RawResponse response = raw.request(request);
  INFO(response.describe());
  CHECK(response.grpcStatus() == 0);
  const auto blocks = backend.requestHeaders();
  REQUIRE(blocks.size() == 1);
  std::vector<std::string> te, authority;
  for (const auto& [name, value] : blocks[0]) {
    if (name == "te") te.push_back(value);
    if (name == ":authority") authority.push_back(value);
  }
  CHECK(te == std::vector<std::string>{"trailers"});
  CHECK(authority == std::vector<std::string>{"orders.internal"});
}

TEST_CASE("a completed call sends the backend no RST_STREAM", "[e2e][upstream]") {
  FrameCountingBackend backend;
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  constexpr int kCalls = 20;
  for (int i = 0; i < kCalls; ++i) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoRequest request;
    request.set_payload("call-" + std::to_string(i));
    EchoResponse response;
    INFO("call " << i);
    REQUIRE_OK(stub->Unary(&ctx, request, &response));
    CHECK(response.payload() == request.payload());
    CHECK(response.backend() == "frames");
  }
  CHECK(backend.unaryAnswered() == kCalls);
  // Give a late RST_STREAM time to arrive.
  std::this_thread::sleep_for(300ms);
  INFO("RST_STREAM codes: " << backend.rstCodes());
  CHECK(backend.rstStreams() == 0);
  CHECK(backend.connections() == 1);
}

// RESOURCE_EXHAUSTED, as a gRPC client reports metadata past its limit, and
// never retried, the usual retry_on (UNAVAILABLE) listed or not: the
// backend ran the call and answered.
TEST_CASE("a backend's header or trailer block over the limit fails the call at once, and is reset",
          "[e2e][upstream]") {
  FrameCountingBackend backend;
  auto config = singleConnectionConfig(backend.address());
  config["admin"] = {{"address", "127.0.0.1:0"}};
  config["listeners"][0]["filters"][0]["config"]["routes"][0]["retry"] = {
      {"retry_on", {"UNAVAILABLE", "RESOURCE_EXHAUSTED"}}, {"num_retries", 2}};
  GatewayProcess gateway(config);
  auto channel = makeChannel(gateway.address());
  for (const char* path : {kBigHeadersPath, kBigTrailersPath}) {
    const size_t before = backend.requestHeaders().size();
    const auto [status, took] = timedUnary(*channel, path, 5s);
    INFO(path << ": " << describe(status));
    CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK_THAT(status.error_message(), Catch::Contains("over the limit of 65536 bytes"));
    CHECK(took < 2s);
    CHECK(backend.requestHeaders().size() == before + 1);  // run once
  }
  // The backend's stream that sent oversized headers (and would go on) is reset.
  CHECK(waitFor([&] { return backend.rstStreams() >= 1; }, 2s));
  // The connection goes on serving.
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse response;
  REQUIRE_OK(example::Echo::NewStub(channel)->Unary(&ctx, EchoRequest(), &response));
  CHECK(backend.connections() == 1);
  // The backend reset nothing: the gateway did (upstream_rq_reset counts
  // only the backend's resets).
  CHECK(statValue(gateway.adminAddress(), "cluster.echo.upstream_rq_reset") == 0);
}

TEST_CASE("a backend's header block too large to finish fails the call at once instead of hanging it",
          "[e2e][upstream]") {
  FrameCountingBackend backend;
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  auto channel = makeChannel(gateway.address());
  const auto [status, took] = timedUnary(*channel, kHugeHeadersPath, 5s);
  INFO(describe(status));
  CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(status.error_message(), Catch::Contains("header block over the limit of 65536 bytes"));
  CHECK(took < 2s);
  // The next call gets a connection that works.
  grpc::ClientContext next;
  setTimeout(next, kCallTimeout);
  EchoResponse response;
  REQUIRE_OK(example::Echo::NewStub(channel)->Unary(&next, EchoRequest(), &response));
}

TEST_CASE("a health check that gets no answer times out once per interval, with timeout_ms equal to interval_ms",
          "[e2e][upstream]") {
  FrameCountingBackend backend;
  auto config = singleConnectionConfig(backend.address());
  config["clusters"][0]["health_check"] = {{"interval_ms", 200}, {"timeout_ms", 200}, {"unhealthy_threshold", 1000}};
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  // Each check's timeout fires before the next check is due: one failure per
  // 200 ms. When the next check came first, it found the last one still
  // running and was skipped, so a hung backend was checked half as often.
  // Counted between two reads whose time apart is measured, so that start-up
  // and a slow machine's overshoot do not count.
  const auto failures = [&] { return statValue(gateway.adminAddress(), "cluster.echo.health_check.failure"); };
  REQUIRE(waitFor([&] { return failures() >= 1; }, 5s));
  const int64_t first = failures();
  const auto first_at = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(2s);
  const int64_t failed = failures() - first;
  const double periods = std::chrono::duration<double>(std::chrono::steady_clock::now() - first_at).count() / 0.2;
  INFO(failed << " failures in " << periods << " intervals");
  CHECK(failed >= 0.7 * periods);
  CHECK(failed <= periods + 2);
}

TEST_CASE("a backend's trailers-only answer without grpc-status is INTERNAL, not passed on", "[e2e][upstream]") {
  FrameCountingBackend backend;
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  auto channel = makeChannel(gateway.address());
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse response;
  const grpc::Status status = callUnaryMethod(*channel, kNoStatusPath, ctx, EchoRequest(), &response);
  INFO(describe(status));
  CHECK(status.error_code() == grpc::StatusCode::INTERNAL);
  CHECK_THAT(status.error_message(), Catch::Contains("ended the call without grpc-status"));
}

TEST_CASE("a backend's answer that breaks gRPC's rules reaches the client as a status it can read",
          "[e2e][upstream]") {
  FrameCountingBackend backend;
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  auto channel = makeChannel(gateway.address());
  auto call = [&](const char* path) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoResponse response;
    return callUnaryMethod(*channel, path, ctx, EchoRequest(), &response);
  };
  SECTION("a grpc-status outside 0-16 is UNKNOWN, naming the backend's value") {
    const grpc::Status status = call(kStatus99Path);
    INFO(describe(status));
    CHECK(status.error_code() == grpc::StatusCode::UNKNOWN);
    CHECK_THAT(status.error_message(), Catch::Contains("invalid grpc-status \"99\""));
  }
  SECTION("two grpc-status fields are UNKNOWN, naming both: clients differ in which they would read") {
    const grpc::Status status = call(kTwoStatusesPath);
    INFO(describe(status));
    CHECK(status.error_code() == grpc::StatusCode::UNKNOWN);
    CHECK_THAT(status.error_message(), Catch::Contains("invalid grpc-status \"0, 13\""));
  }
  SECTION("a response that is not gRPC (content-type text/html) is UNKNOWN before its headers go out") {
    const grpc::Status status = call(kHtmlPath);
    INFO(describe(status));
    CHECK(status.error_code() == grpc::StatusCode::UNKNOWN);
    CHECK_THAT(status.error_message(), Catch::Contains("content-type \"text/html\" (not gRPC)"));
  }
  SECTION("a compressed message without grpc-encoding is INTERNAL") {
    const grpc::Status status = call(kCompressedPath);
    INFO(describe(status));
    CHECK(status.error_code() == grpc::StatusCode::INTERNAL);
    CHECK_THAT(status.error_message(), Catch::Contains("compressed message without grpc-encoding"));
  }
  SECTION("a trailers-only answer keeps its grpc-status under a gRPC :status and content-type") {
    RawH2Client client("127.0.0.1", gateway.port());
    auto resp = client.request(RawRequest::grpc(kStatus503Path, grpcFrame("")));
    INFO(resp.describe());
    CHECK(resp.status == 200);
    CHECK(resp.header("content-type") == std::optional<std::string>("application/grpc"));
    CHECK(resp.grpcStatus() == 8);
    CHECK(resp.grpcMessage() == "busy");
  }
  SECTION("a backend's content-length is not passed on: a call the gateway ends early stays readable") {
    // An HTTP/2 client checks the body against content-length; with the
    // backend's 1000 passed on, the gateway's own trailers would end a
    // shorter body and the client would reset the stream instead.
    RawH2Client client("127.0.0.1", gateway.port());
    auto resp = client.request(RawRequest::grpc(kLengthThenResetPath, grpcFrame("")));
    INFO(resp.describe());
    CHECK(!resp.header("content-length"));
    CHECK(!resp.rstStreamCode);
    CHECK(resp.grpcStatus() == 13);
  }
}

TEST_CASE("a response the gateway's own HTTP/2 layer rejects is reported as the gateway's reset, not the backend's",
          "[e2e][upstream]") {
  FrameCountingBackend backend;
  auto config = singleConnectionConfig(backend.address());
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto channel = makeChannel(gateway.address());
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse response;
  const grpc::Status status = callUnaryMethod(*channel, kBadHeaderPath, ctx, EchoRequest(), &response);
  INFO(describe(status));
  CHECK(status.error_code() == grpc::StatusCode::INTERNAL);
  CHECK_THAT(status.error_message(), Catch::Contains("the gateway reset the stream (PROTOCOL_ERROR)"));
  // The backend got the reset; it did not send one.
  CHECK(waitFor([&] { return backend.rstStreams() == 1; }, 2s));
  CHECK(statValue(gateway.adminAddress(), "cluster.echo.upstream_rq_reset") == 0);
}

// A C-core client (grpc++ here) fails a call whose -bin metadata is not
// base64 with UNKNOWN "Stream removed", naming no cause: the gateway fails it
// INTERNAL saying why, as grpc-go's clients do, and nothing else on the
// client's connection is touched.
TEST_CASE("a backend's -bin metadata that is not base64 fails only its own call, INTERNAL", "[e2e][upstream]") {
  FrameCountingBackend backend;
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  auto channel = makeChannel(gateway.address());
  auto stub = example::Echo::NewStub(channel);
  grpc::ClientContext held_ctx;
  setTimeout(held_ctx, kCallTimeout);
  auto held = stub->ServerStream(&held_ctx, EchoRequest());  // the backend answers headers, then holds it
  held->WaitForInitialMetadata();
  for (const auto& [path, where] : {std::pair{kBadBinHeadersPath, "header \"x-h-bin\""},
                                    std::pair{kBadBinTrailersPath, "trailer \"x-t-bin\""}}) {
    TimedStatus result = timedUnary(*channel, path, std::chrono::seconds(5));
    INFO(path << ": " << describe(result.status));
    CHECK(result.status.error_code() == grpc::StatusCode::INTERNAL);
    CHECK_THAT(result.status.error_message(), Catch::Contains(std::string("malformed binary metadata in ") + where));
  }
  // The client's connection, and its other call, went on.
  held_ctx.TryCancel();
  EchoResponse response;
  CHECK_FALSE(held->Read(&response));
  grpc::Status held_status = held->Finish();
  INFO(describe(held_status));
  CHECK(held_status.error_code() == grpc::StatusCode::CANCELLED);
}

TEST_CASE("response headers that grow past what HTTP/2 can send fail the call at once instead of hanging it",
          "[e2e][upstream]") {
  FrameCountingBackend backend;
  nlohmann::json config = singleConnectionConfig(backend.address());
  auto& chain = config["listeners"][0]["filters"];
  chain.insert(chain.begin(), nlohmann::json{{"name", "metadata"},
                                             {"config", {{"response", {{"set", {{"x-extra", std::string(8000, 'e')}}}}}}}});
  GatewayProcess gateway(config);
  auto channel = makeChannel(gateway.address());
  const auto [status, took] = timedUnary(*channel, kNearLimitHeadersPath, 10s);
  INFO(describe(status));
  CHECK(status.error_code() == grpc::StatusCode::INTERNAL);
  CHECK(took < 3s);
  CHECK(waitFor([&] { return gateway.logs().find("header block could not be sent") != std::string::npos; }, 2s));
  // The connection goes on serving.
  grpc::ClientContext next;
  setTimeout(next, kCallTimeout);
  EchoResponse response;
  REQUIRE_OK(example::Echo::NewStub(channel)->Unary(&next, EchoRequest(), &response));
}

TEST_CASE("an informational (1xx) response before the real one is skipped", "[e2e][upstream]") {
  FrameCountingBackend backend;
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  auto channel = makeChannel(gateway.address());
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoRequest request;
  request.set_payload("after-103");
  EchoResponse response;
  REQUIRE_OK(callUnaryMethod(*channel, kEarlyHintsPath, ctx, request, &response));
  CHECK(response.payload() == "after-103");
  CHECK(response.backend() == "frames");
}

TEST_CASE("max_requests_per_connection retires a connection after its share of calls", "[e2e][upstream]") {
  FrameCountingBackend backend;
  auto config = singleConnectionConfig(backend.address());
  config["clusters"][0]["max_requests_per_connection"] = 3;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  // A call held open on the first connection outlives its retirement.
  grpc::ClientContext held;
  setTimeout(held, kCallTimeout);
  auto reader = stub->ServerStream(&held, EchoRequest());
  REQUIRE(waitFor([&] { return backend.streamsHeld() == 1; }, 5s));
  for (int i = 0; i < 8; ++i) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoResponse response;
    INFO("call " << i);
    REQUIRE_OK(stub->Unary(&ctx, EchoRequest(), &response));
  }
  // 9 calls, 3 per connection.
  CHECK(backend.connections() == 3);
  CHECK(backend.unaryAnswered() == 8);
  INFO("RST_STREAM codes: " << backend.rstCodes());
  CHECK(backend.rstStreams() == 0);  // the held call was not cut
  held.TryCancel();
  EchoResponse response;
  CHECK_FALSE(reader->Read(&response));
  reader->Finish();
}

// Calls that arrive together, before a new connection's SETTINGS, used to
// wait on it up to the backend's assumed stream limit (100) and all open
// there once SETTINGS came: one connection carried far more than its share.
TEST_CASE("max_requests_per_connection holds for calls that arrive together", "[e2e][upstream]") {
  FrameCountingBackend backend({.settings_delay = 300ms});
  auto config = singleConnectionConfig(backend.address());
  config["clusters"][0]["max_requests_per_connection"] = 3;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  constexpr int kCalls = 12;
  std::atomic<int> ok{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&] {
      grpc::ClientContext ctx;
      setTimeout(ctx, kCallTimeout);
      EchoResponse response;
      if (stub->Unary(&ctx, EchoRequest(), &response).ok()) ++ok;
    });
  }
  for (auto& t : callers) t.join();
  CHECK(ok == kCalls);
  CHECK(backend.unaryAnswered() == kCalls);
  CHECK(backend.connections() == kCalls / 3);
}

TEST_CASE("a cancelled call reaches the backend as RST_STREAM(CANCEL)", "[e2e][upstream]") {
  FrameCountingBackend backend;
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  {
    grpc::ClientContext ctx;
    setTimeout(ctx, 1000ms);  // time to reach the backend over connections not yet open
    auto reader = stub->ServerStream(&ctx, EchoRequest());
    EchoResponse response;
    CHECK_FALSE(reader->Read(&response));  // the backend never sends a message
    const grpc::Status status = reader->Finish();
    INFO("grpc status: " << describe(status));
    CHECK((status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
           status.error_code() == grpc::StatusCode::CANCELLED));
  }
  CHECK(backend.streamsHeld() == 1);
  CHECK(waitFor([&] { return backend.rstStreams() >= 1; }, 3s));
  // A second reset for the same call would show up here.
  std::this_thread::sleep_for(200ms);
  INFO("RST_STREAM codes: " << backend.rstCodes());
  CHECK(backend.rstStreams() == 1);
  CHECK(backend.rstCancels() == 1);
}

TEST_CASE("the gateway grants the configured HTTP/2 windows to clients and backends", "[e2e][upstream]") {
  constexpr uint32_t kDefaultClientStream = 1u << 20, kDefaultBackendStream = 8u << 20;
  constexpr int32_t kDefaultConnection = 16 << 20;
  FrameCountingBackend backend;
  auto config = singleConnectionConfig(backend.address());
  uint32_t client_stream = kDefaultClientStream, backend_stream = kDefaultBackendStream;
  int32_t client_connection = kDefaultConnection, backend_connection = kDefaultConnection;
  SECTION("defaults") {}
  SECTION("configured") {
    client_stream = 300000;
    client_connection = 5000000;
    backend_stream = 123456;
    backend_connection = 40000000;
    config["listeners"][0]["initial_stream_window_bytes"] = client_stream;
    config["listeners"][0]["initial_connection_window_bytes"] = client_connection;
    config["clusters"][0]["initial_stream_window_bytes"] = backend_stream;
    config["clusters"][0]["initial_connection_window_bytes"] = backend_connection;
  }
  GatewayProcess gateway(config);
  RawH2Client client("127.0.0.1", gateway.port());
  EchoRequest request;
  request.set_payload("windows");
  const std::string body = grpcFrame(request.SerializeAsString());
  auto response = client.request(RawRequest::grpc(kUnaryPath, body));
  INFO(response.describe());
  REQUIRE(response.grpcStatus() == 0);
  CHECK(client.remoteSetting(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE) == client_stream);
  // The request's bytes are returned in batches (half the window at a time).
  CHECK(client.remoteConnectionWindow() == client_connection - static_cast<int32_t>(body.size()));
  // Each stream starts with at most 256 KiB; one that streams is lent the
  // rest (ClusterConfig::baseStreamWindow).
  CHECK(backend.grantedStreamWindow() == std::min(backend_stream, 256u << 10));
  CHECK(backend.grantedConnectionWindow() == backend_connection);
}

TEST_CASE("calls past a backend's SETTINGS_MAX_CONCURRENT_STREAMS go to other connections instead of waiting",
          "[e2e][upstream]") {
  // The backend allows 2 streams per connection and tells so only 300 ms
  // after accepting: all 5 calls reach the gateway before it knows.
  FrameCountingBackend backend({.max_concurrent_streams = 2, .settings_delay = 300ms});
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  constexpr int kCalls = 5;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<EchoResponse>>> readers;
  for (int i = 0; i < kCalls; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    setTimeout(*contexts.back(), kCallTimeout);
    readers.push_back(stub->ServerStream(contexts.back().get(), EchoRequest()));
  }
  // Every long-lived call is open at the backend (2 + 2 + 1 over three
  // connections); none waits behind another or is refused.
  CHECK(waitFor([&] { return backend.streamsHeld() == kCalls; }, 3s));
  CHECK(backend.streamsHeld() == kCalls);
  CHECK(backend.connections() == 3);
  // A sixth fits on the third connection: new connections assume the limit
  // the backend advertised on the others.
  grpc::ClientContext sixth;
  setTimeout(sixth, kCallTimeout);
  auto sixth_reader = stub->ServerStream(&sixth, EchoRequest());
  CHECK(waitFor([&] { return backend.streamsHeld() == kCalls + 1; }, 3s));
  CHECK(backend.connections() == 3);
  sixth.TryCancel();
  sixth_reader->Finish();
  for (int i = 0; i < kCalls; ++i) {
    contexts[i]->TryCancel();
    const grpc::Status status = readers[i]->Finish();
    INFO("call " << i << ": " << describe(status));
    CHECK(status.error_code() == grpc::StatusCode::CANCELLED);
  }
}

TEST_CASE("health checks past max_connections keep a connection of their own that calls do not take",
          "[e2e][upstream]") {
  // One stream per connection and one connection allowed: a held call takes
  // it, and each health check needs a connection past the limit.
  FrameCountingBackend backend({.max_concurrent_streams = 1});
  auto config = singleConnectionConfig(backend.address());
  config["clusters"][0]["circuit_breakers"] = {{"max_connections", 1}};
  // Checks that get no answer (this backend holds them) and never mark the endpoint down.
  config["clusters"][0]["health_check"] = {{"interval_ms", 100}, {"timeout_ms", 30}, {"unhealthy_threshold", 1000}};
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeConnectedChannel(gateway.address()));
  // The held call: refused (breaker) when it comes while a check holds the
  // one connection's one stream, so tried until it is in.
  std::unique_ptr<grpc::ClientContext> held;
  std::unique_ptr<grpc::ClientReader<EchoResponse>> held_reader;
  for (int attempt = 0; attempt < 20 && backend.streamsHeld() == 0; ++attempt) {
    if (held_reader) {
      held->TryCancel();  // refused, or on its way: either way not waited for
      held_reader->Finish();
    }
    held = std::make_unique<grpc::ClientContext>();
    setTimeout(*held, kCallTimeout);
    held_reader = stub->ServerStream(held.get(), EchoRequest());
    waitFor([&] { return backend.streamsHeld() >= 1; }, 130ms);  // out of step with the checks
  }
  // Calls the backend has held, counting one a slow machine let in just as
  // its attempt was given up (the last attempt is then the one held).
  REQUIRE(waitFor([&] { return backend.streamsHeld() >= 1; }, 1s));
  std::this_thread::sleep_for(100ms);
  const int held_before = backend.streamsHeld();
  // Long calls keep coming while the checks run: before, each took the idle
  // connection the last check had opened, and the next check opened another.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<EchoResponse>>> readers;
  const auto until = Clock::now() + 1500ms;
  while (Clock::now() < until) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    setTimeout(*contexts.back(), kCallTimeout);
    readers.push_back(stub->ServerStream(contexts.back().get(), EchoRequest()));
    std::this_thread::sleep_for(30ms);
  }
  // The held call's connection and one for the checks; the calls past the
  // limit wait for the held call's stream (none reached the backend).
  CHECK(backend.streamsHeld() == held_before);
  CHECK(backend.connections() <= 2);
  CHECK(statValue(gateway.adminAddress(), "cluster.echo.upstream_cx_active") <= 2);
  for (size_t i = 0; i < readers.size(); ++i) {
    contexts[i]->TryCancel();
    readers[i]->Finish();
  }
  held->TryCancel();
  held_reader->Finish();
}

TEST_CASE("calls handed to a connection whose backend then allows no streams move on instead of hanging",
          "[e2e][upstream]") {
  // SETTINGS allowing 100 streams and, in the same write, one allowing 0:
  // the calls waiting for the first are opened on it, and their HEADERS are
  // still unsent when the second arrives. nghttp2 would hold them for a free
  // stream that never comes.
  FrameCountingBackend::Options options;
  options.max_concurrent_streams = 100;
  options.then_max_concurrent_streams = 0;
  options.settings_delay = 300ms;
  FrameCountingBackend backend(options);
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  auto channel = makeConnectedChannel(gateway.address());
  std::vector<std::thread> calls;
  std::vector<TimedStatus> results(3);
  for (size_t i = 0; i < results.size(); ++i) {
    calls.emplace_back([&, i] { results[i] = timedUnary(*channel, kUnaryPath, 10s); });
  }
  for (auto& t : calls) t.join();
  for (size_t i = 0; i < results.size(); ++i) {
    INFO("call " << i << ": " << describe(results[i].status));
    CHECK(results[i].status.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(results[i].status.error_message(), Catch::Contains("0 concurrent streams"));
    CHECK(results[i].took < 3s);
  }
  CHECK(backend.unaryAnswered() == 0);
}

TEST_CASE("one connection whose backend allows no more streams leaves the endpoint's other connections open",
          "[e2e][upstream]") {
  FrameCountingBackend backend;
  auto config = singleConnectionConfig(backend.address());
  config["clusters"][0]["connections_per_endpoint"] = 2;
  GatewayProcess gateway(config);
  auto channel = makeConnectedChannel(gateway.address());
  auto stub = example::Echo::NewStub(channel);
  // One held stream on each of two connections.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<EchoResponse>>> readers;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    setTimeout(*contexts.back(), kCallTimeout);
    readers.push_back(stub->ServerStream(contexts.back().get(), EchoRequest()));
    REQUIRE(waitFor([&] { return backend.streamsHeld() == i + 1; }, 5s));
  }
  REQUIRE(backend.connections() == 2);
  // The first connection's backend now allows none: the second still has
  // room, and new calls take it (the whole endpoint was refused, "takes no
  // calls now", while any connection said 0).
  backend.advertiseStreamLimitOn(0, 0);
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 3; ++i) {
    const TimedStatus call = timedUnary(*channel, kUnaryPath, 5s);
    INFO("call " << i << ": " << describe(call.status));
    CHECK(call.status.ok());
  }
  // (A third connection may open: the first no longer counts as one that
  // takes calls, and calls spread over two.)
  CHECK(backend.connections() <= 3);
  for (size_t i = 0; i < readers.size(); ++i) {
    contexts[i]->TryCancel();
    readers[i]->Finish();
  }
}

TEST_CASE("a backend that allows no streams fails calls at once, without a connection per call",
          "[e2e][upstream]") {
  FrameCountingBackend backend({.max_concurrent_streams = 0, .settings_delay = 300ms});
  auto config = singleConnectionConfig(backend.address());
  config["clusters"][0]["idle_timeout_ms"] = 1500;
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoResponse response;
    const auto start = Clock::now();
    const grpc::Status status = stub->Unary(&ctx, EchoRequest(), &response);
    INFO("call " << i << ": " << describe(status));
    CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(status.error_message(), Catch::Contains("SETTINGS_MAX_CONCURRENT_STREAMS 0"));
    CHECK(Clock::now() - start < 2s);
  }
  CHECK(backend.connections() == 1);

  // That connection closes (idle); the backend now takes streams again. What
  // it said before is forgotten: five calls at once (all before the new
  // connection's SETTINGS, 300 ms late) share it instead of each opening its own.
  backend.setMaxConcurrentStreams(100);
  REQUIRE(waitFor([&] { return gateway.logs().find("closing: idle") != std::string::npos; }, 5s));
  std::vector<std::thread> calls;
  std::atomic<int> ok{0};
  for (int i = 0; i < 5; ++i) {
    calls.emplace_back([&] {
      grpc::ClientContext ctx;
      setTimeout(ctx, kCallTimeout);
      EchoResponse response;
      if (stub->Unary(&ctx, EchoRequest(), &response).ok()) ok++;
    });
  }
  for (auto& t : calls) t.join();
  CHECK(ok == 5);
  CHECK(backend.connections() == 2);
}

TEST_CASE("a call the backend refuses unprocessed is refused to the client the same way", "[e2e][upstream]") {
  // No retry policy on the route: the gateway passes the refusal on as
  // RST_STREAM(REFUSED_STREAM), which tells the client the call was never
  // processed. grpc-go and grpc-java then retry it once by themselves (gRFC
  // A6); Debian 12's grpc++ (1.51) reports UNAVAILABLE.
  FrameCountingBackend backend(refusingFirst(2));
  auto config = singleConnectionConfig(backend.address());
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  RawH2Client raw("127.0.0.1", gateway.port());
  RawResponse refused = raw.request(RawRequest::grpc(kUnaryPath, grpcMessage(EchoRequest().SerializeAsString())));
  INFO(refused.describe());
  CHECK(refused.rstStreamCode == std::optional<uint32_t>(NGHTTP2_REFUSED_STREAM));
  CHECK_FALSE(refused.grpcStatus().has_value());

  auto stub = example::Echo::NewStub(grpc::CreateChannel(gateway.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse response;
  const grpc::Status status = stub->Unary(&ctx, EchoRequest(), &response);
  INFO(describe(status));
  CHECK(backend.refused() == 2);
  if (status.ok()) {
    // A grpc++ that retries refused calls (later than 1.51) got the answer.
    CHECK(backend.unaryAnswered() == 1);
  } else {
    CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  // The gateway's log says why.
  CHECK(gateway.logs().find("reset (REFUSED_STREAM): upstream cluster") != std::string::npos);
  // Both refusals were resets the backend sent.
  CHECK(statValue(gateway.adminAddress(), "cluster.echo.upstream_rq_reset") == 2);
}

TEST_CASE("upstream_rq_reset counts resets a backend sent, not connections that failed", "[e2e][upstream]") {
  auto config = singleConnectionConfig("127.0.0.1:1");  // nothing listens there: refused
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    EchoResponse response;
    CHECK(stub->Unary(&ctx, EchoRequest(), &response).error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  CHECK(statValue(gateway.adminAddress(), "cluster.echo.upstream_rq_total") == 3);
  CHECK(statValue(gateway.adminAddress(), "cluster.echo.upstream_rq_reset") == 0);
}

TEST_CASE("a call an earlier attempt may have run is never passed on as refused", "[e2e][upstream]") {
  // One endpoint answers (UNIMPLEMENTED: it ran the call), the other refuses.
  // With one retry, a call whose answered attempt came first and refused one
  // second ends with a gRPC status: telling the client "never processed"
  // would let it run the call again.
  FrameCountingBackend answering;
  FrameCountingBackend refusing(refusingFirst(1000));
  nlohmann::json r = route("prefix", "/", "pair");
  r["retry"] = {{"retry_on", {"UNIMPLEMENTED", "UNAVAILABLE"}}, {"num_retries", 1}};
  auto config = gatewayConfig(nlohmann::json::array({r}),
                              nlohmann::json::array({cluster("pair", {answering.address(), refusing.address()})}));
  config["workers"] = 1;
  GatewayProcess gateway(config);
  RawH2Client raw("127.0.0.1", gateway.port());
  int answered_with_status = 0;
  for (int i = 0; i < 6; ++i) {
    RawResponse response = raw.request(RawRequest::grpc("/no.Such/Method", grpcMessage("")));
    INFO("call " << i << ": " << response.describe());
    CHECK_FALSE(response.rstStreamCode.has_value());
    if (response.grpcStatus().has_value()) answered_with_status++;
  }
  CHECK(answered_with_status == 6);
  CHECK(refusing.refused() >= 3);  // round robin: half the calls tried it
}

namespace {

// A server-streaming call that the backend answered with headers and holds open.
struct HeldStream {
  HeldStream(example::Echo::Stub& stub, FrameCountingBackend& backend) {
    setTimeout(ctx, kCallTimeout);
    const int before = backend.streamsHeld();
    reader = stub.ServerStream(&ctx, EchoRequest());
    REQUIRE(waitFor([&] { return backend.streamsHeld() > before; }, 5s));
  }
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<EchoResponse>> reader;
};

}  // namespace

TEST_CASE("a backend's PUSH_PROMISE is a protocol error: push is off toward backends", "[e2e][upstream]") {
  FrameCountingBackend backend;
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  HeldStream held(*stub, backend);
  backend.pushPromise();
  // nghttp2 would otherwise keep every pushed stream until the connection ends.
  REQUIRE(waitFor([&] { return backend.goaways() >= 1; }, 5s));
  CHECK(backend.lastGoawayCode() == NGHTTP2_PROTOCOL_ERROR);
  EchoResponse response;
  CHECK_FALSE(held.reader->Read(&response));
  grpc::Status status = held.reader->Finish();
  INFO(describe(status));
  CHECK(status.error_code() != grpc::StatusCode::OK);
  // The client and the log say why the connection ended, not just that it did.
  CHECK_THAT(status.error_message(), Catch::Contains("the backend broke HTTP/2, GOAWAY PROTOCOL_ERROR sent"));
  CHECK(gateway.logs().find("[warning] [U1]") != std::string::npos);
}

TEST_CASE("a backend repeating its GOAWAY is logged once, and its open call goes on", "[e2e][upstream]") {
  FrameCountingBackend backend;
  GatewayProcess gateway(singleConnectionConfig(backend.address()));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  HeldStream held(*stub, backend);
  backend.goawayFlood(5000);
  const std::string line = "GOAWAY ENHANCE_YOUR_CALM from";
  REQUIRE(waitFor([&] { return logCount(gateway, line) >= 1; }, 5s));
  std::this_thread::sleep_for(500ms);
  CHECK(logCount(gateway, line) == 1);
  // The call named in the GOAWAYs is still open; a new one takes a new connection.
  grpc::ClientContext next;
  setTimeout(next, kCallTimeout);
  EchoResponse response;
  REQUIRE_OK(stub->Unary(&next, EchoRequest(), &response));
  CHECK(backend.connections() == 2);
  held.ctx.TryCancel();
}

TEST_CASE("a new call does not wait behind a backend connection that stopped reading", "[e2e][upstream]") {
  // Its HEADERS would queue in nghttp2 behind the backlog for as long as the
  // backend does not read (and a call cancelled there used to crash the
  // gateway once the backend read again: test/unit/http2_session_test.cc).
  FrameCountingBackend::Options options;
  options.largest_windows = true;
  FrameCountingBackend backend(options);
  auto config = singleConnectionConfig(backend.address());
  const bool one_connection = GENERATE(false, true);
  // With no second connection allowed, the call waits on the backed-up one
  // rather than being refused.
  if (one_connection) config["clusters"][0]["circuit_breakers"] = {{"max_connections", 1}};
  INFO("max_connections 1: " << one_connection);
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  EchoRequest request;
  request.set_payload("warm");
  EchoResponse response;
  {
    grpc::ClientContext warm;
    setTimeout(warm, kCallTimeout);
    REQUIRE_OK(stub->Unary(&warm, request, &response));
  }
  backend.pauseReading(true);  // the first connection only
  grpc::ClientContext filler;
  setTimeout(filler, kCallTimeout);
  EchoResponse filler_response;
  auto writer = stub->ClientStream(&filler, &filler_response);
  EchoRequest big;
  big.set_payload(std::string(1 << 20, 'x'));
  std::thread filling([&] {
    for (int i = 0; i < 24; ++i) {
      if (!writer->Write(big)) break;
    }
  });
  std::this_thread::sleep_for(1500ms);
  std::thread resume;
  if (one_connection) {
    resume = std::thread([&] {
      std::this_thread::sleep_for(1000ms);
      filler.TryCancel();
      backend.pauseReading(false);
    });
  }
  grpc::ClientContext ctx;
  setTimeout(ctx, 5000ms);
  request.set_payload("around the backlog");
  grpc::Status status = stub->Unary(&ctx, request, &response);
  CHECK(status.ok());
  CHECK(response.payload() == "around the backlog");
  CHECK(backend.connections() == (one_connection ? 1 : 2));
  if (resume.joinable()) resume.join();
  filler.TryCancel();
  filling.join();
  backend.pauseReading(false);
}

// A call given to a connection whose HEADERS are still queued in nghttp2
// (behind a backlog its backend does not read) when the connection dies was
// never seen by a backend: it goes to another endpoint, as a gRPC client
// moves a call its transport never sent, instead of failing UNAVAILABLE
// (which only a retry policy would have saved).
TEST_CASE("calls queued unsent on a backend connection that dies go to another endpoint", "[e2e][upstream]") {
  FrameCountingBackend::Options options;
  options.largest_windows = true;
  FrameCountingBackend stuck(options);
  TestBackend good("good");
  auto config = gatewayConfig(nlohmann::json::array({route("prefix", "/", "pair")}),
                              nlohmann::json::array({cluster("pair", {stuck.address(), good.address()})}));
  config["workers"] = 1;
  // One connection per endpoint: a call picked for the stuck endpoint waits
  // on its backed-up connection rather than opening another.
  config["clusters"][0]["circuit_breakers"] = {{"max_connections", 2}};
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  EchoRequest request;
  EchoResponse response;
  for (int i = 0; i < 2; ++i) {  // round robin: a connection to each endpoint
    grpc::ClientContext warm;
    setTimeout(warm, kCallTimeout);
    request.set_payload("warm");
    REQUIRE_OK(stub->Unary(&warm, request, &response));
  }
  REQUIRE(stuck.connections() == 1);
  stuck.pauseReading(true);
  // Two client streams of 24 MiB, one to each endpoint: the stuck one's
  // backs the connection up, in the kernel and then in the gateway.
  constexpr int kFillers = 2;
  std::array<grpc::ClientContext, kFillers> fillers;
  std::array<EchoResponse, kFillers> filler_responses;
  std::vector<std::thread> filling;
  for (int f = 0; f < kFillers; ++f) {
    setTimeout(fillers[f], kCallTimeout);
    filling.emplace_back([&, f] {
      auto writer = stub->ClientStream(&fillers[f], &filler_responses[f]);
      EchoRequest big;
      big.set_payload(std::string(1 << 20, 'x'));
      for (int i = 0; i < 24; ++i) {
        if (!writer->Write(big)) break;
      }
      writer->WritesDone();
      (void)writer->Finish();
    });
  }
  std::this_thread::sleep_for(1500ms);
  // Round robin gives half of these to the stuck endpoint, where they wait.
  constexpr int kCalls = 4;
  std::array<grpc::Status, kCalls> statuses;
  std::array<EchoResponse, kCalls> responses;
  std::vector<std::thread> calls;
  for (int i = 0; i < kCalls; ++i) {
    calls.emplace_back([&, i] {
      grpc::ClientContext ctx;
      setTimeout(ctx, 5000ms);
      EchoRequest r;
      r.set_payload("queued " + std::to_string(i));
      statuses[i] = stub->Unary(&ctx, r, &responses[i]);
    });
  }
  std::this_thread::sleep_for(500ms);
  stuck.dropConnections();
  for (auto& t : calls) t.join();
  for (int i = 0; i < kCalls; ++i) {
    INFO("call " << i << ": " << describe(statuses[i]));
    CHECK(statuses[i].ok());
    CHECK(responses[i].payload() == "queued " + std::to_string(i));
    CHECK(responses[i].backend() == "good");
  }
  CHECK(stuck.connections() == 1);  // they waited on its one connection
  for (auto& f : fillers) f.TryCancel();
  for (auto& t : filling) t.join();
}

TEST_CASE("response messages a backend leaves unfinished are capped per connection (max_incomplete_response_bytes)",
          "[e2e][upstream]") {
  FrameCountingBackend backend;
  auto config = singleConnectionConfig(backend.address());
  config["listeners"][0]["max_message_bytes"] = 4 << 20;
  config["listeners"][0]["max_incomplete_response_bytes"] = 4 << 20;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto channel = makeChannel(gateway.address());
  // Each call's backend announces a 3 MiB message and sends 2.5 MiB of it.
  grpc::ClientContext first;
  setTimeout(first, kCallTimeout);
  grpc::ClientContext second;
  setTimeout(second, kCallTimeout);
  EchoResponse response;
  grpc::Status first_status;
  std::thread first_call([&] { first_status = callUnaryMethod(*channel, kDripPath, first, EchoRequest(), &response); });
  REQUIRE(waitFor([&] { return backend.dripsSent() == 1; }, 5s));
  std::this_thread::sleep_for(300ms);  // its 2.5 MiB, on their way, arrived
  EchoResponse second_response;
  grpc::Status status = callUnaryMethod(*channel, kDripPath, second, EchoRequest(), &second_response);
  CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(status.error_message(), Catch::Contains("max_incomplete_response_bytes"));
  // The first call is untouched; once it is gone, its bytes no longer count.
  first.TryCancel();
  first_call.join();
  CHECK(first_status.error_code() == grpc::StatusCode::CANCELLED);
  grpc::ClientContext third;
  setTimeout(third, 1500ms);
  status = callUnaryMethod(*channel, kDripPath, third, EchoRequest(), &second_response);
  CHECK(status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);  // held, not refused
  CHECK(statValue(gateway.adminAddress(), "listener.grpc.local_reply.message_too_large") == 1);
}

}  // namespace sluice::test

namespace sluice::test {

// gRPC libraries answer some calls with a trailers-only status before they
// look the method up (grpc++: DEADLINE_EXCEEDED for a deadline passed on
// arrival). Such an answer proved the method: made-up names sent with a tiny
// deadline took every series, and a real method called next had none.
TEST_CASE("a trailers-only status a library sends before dispatch does not prove a method", "[e2e][upstream]") {
  FrameCountingBackend::Options options;
  options.other_status = "4";  // DEADLINE_EXCEEDED for every path but the backend's own
  FrameCountingBackend backend(options);
  auto config = catchAllConfig(backend.address());
  config["workers"] = 1;
  config["admin"] = {{"address", "127.0.0.1:0"}};
  GatewayProcess gateway(config);
  auto channel = makeChannel(gateway.address());
  constexpr int kMadeUp = 150;
  for (int i = 0; i < kMadeUp; ++i) {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    example::EchoResponse resp;
    REQUIRE(callUnaryMethod(*channel, "/made.Up/M" + std::to_string(i), ctx, example::EchoRequest(), &resp)
                .error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  {
    grpc::ClientContext ctx;
    setTimeout(ctx, kCallTimeout);
    example::EchoResponse resp;
    REQUIRE_OK(callUnaryMethod(*channel, kUnaryPath, ctx, example::EchoRequest(), &resp));
  }
  const std::string text = http(gateway.adminAddress(), "GET", "/stats/prometheus").body;
  INFO(text.substr(0, 3000));
  // The made-up names take only the unproven series (100); the rest count
  // under "(other)"; the method the backend served has its own.
  CHECK(metric(text, "grpc_server_started_total", {"grpc_service=\"made.Up\""}) == 100);
  CHECK(metric(text, "grpc_server_started_total", {"grpc_method=\"(other)\""}) == kMadeUp - 100);
  CHECK(metric(text, "grpc_server_started_total", {"grpc_method=\"Unary\""}) == 1);
}

}  // namespace sluice::test
