#include "listeners/admin_listener.h"

#include <http_parser.h>
#include <netinet/in.h>
#include <uv.h>

#include <algorithm>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/dispatcher.h"
#include "core/headers.h"
#include "core/tcp_socket.h"
#include "core/timer.h"

namespace sluice {
namespace {

// Requests larger than this (URL and headers) are refused: admin requests are small.
constexpr size_t kMaxRequestBytes = 16 * 1024;
// The kernel's share of an answer a client reads slowly (Linux doubles it):
// 512 KiB a round trip to a remote scraper.
constexpr int kAdminSendBufferBytes = 256 * 1024;
// Answers this small are never held back by max_pending_answer_bytes.
constexpr size_t kSmallAnswerBytes = 16 * 1024;
// How long a stopping gateway lets an answer being written finish.
constexpr std::chrono::seconds kShutdownGrace{1};
// How long the rest of a request answered with an error is read and dropped.
constexpr std::chrono::seconds kErrorLinger{1};
constexpr size_t kMaxBodyBytes = 64 * 1024;
// A request still arriving after this long is stuck or slow on purpose
// (slowloris): with every slot taken, it gives up its slot to a newer
// connection. A real client's request (a few hundred bytes) takes
// milliseconds.
constexpr std::chrono::seconds kStalledRequest{1};

const char* reasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

}  // namespace

// One admin connection: parse one request, answer, close.
class AdminConnection final : public TcpSocketCallbacks, public DeferredDeletable {
 public:
  AdminConnection(AdminListener& listener, uint64_t id)
      : listener_(listener),
        id_(id),
        socket_(listener.dispatcher(), *this),
        timer_(listener.dispatcher(), [this] { onTimeout(); }) {
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
  }

  int accept(uv_stream_t* server) {
    int rv = socket_.accept(server);
    accepted_at_ = std::chrono::steady_clock::now();
    if (rv == 0) {
      // What a client leaves unread stays in bytesPending(), counted against
      // max_pending_answer_bytes, not up to 4 MiB a connection in the kernel.
      socket_.limitKernelSendBuffer(kAdminSendBufferBytes);
      socket_.startReading();
      timer_.enable(std::chrono::milliseconds(listener_.limits().request_timeout_ms));
    }
    return rv;
  }

  // Over max_connections: accepted only to be closed at once.
  int acceptAndClose(uv_stream_t* server) {
    int rv = socket_.accept(server);
    if (rv == 0) listener_.logRefusal(socket_.peerAddress());
    finished_ = true;
    socket_.close();
    return rv;
  }

  // Answered already, an error's answer, reading and dropping the rest of
  // its request (written()): owed nothing, the slot goes first.
  bool lingering() const { return lingering_ && !finished_; }
  // Nothing received yet: the slot may go to a newer connection. Not one
  // whose request waits in the kernel: accepted in the same loop turn as
  // others, it is read after them (a probe was evicted so, answered 408).
  bool silent() const { return !received_any_ && !answered_ && !finished_ && socket_.bytesReadable() == 0; }
  // Part of a request received, for kStalledRequest or more by `now`: the
  // slot may go to a newer connection once no silent one is left.
  bool stalled(std::chrono::steady_clock::time_point now) const {
    return received_any_ && !dispatched_ && !answered_ && !finished_ && now - accepted_at_ >= kStalledRequest;
  }
  // Its answer not all taken kStalledRequest after it was written: a client
  // not reading (a scraper of a large /stats) holds the slot until
  // request_timeout_ms otherwise, and forty of them kept probes out.
  bool answerStalled(std::chrono::steady_clock::time_point now) const {
    return answered_ && !lingering_ && !finished_ && socket_.bytesPending() > 0 && now - answered_at_ >= kStalledRequest;
  }
  size_t bytesPending() const { return socket_.bytesPending(); }
  // Closes a silent or stalled connection to make room for a new one: idle,
  // stuck or slowloris clients holding every slot must not keep health
  // probes out.
  void evict() {
    if (answered_) {  // its answer went out, or part of it: nothing more to say
      done();
      return;
    }
    respond({408, "text/plain; charset=utf-8",
             received_any_ ? "request not complete; closed to make room for a newer connection (admin max_connections)\n"
                           : "no request received; closed to make room for a newer connection (admin max_connections)\n",
             ""});
    // Closed now, not after lingering to read the rest of its request: the
    // slot is the newcomer's (the small answer is in the kernel already).
    done();
  }

  // ---- http-parser bridges ----
  static AdminConnection& self(http_parser* p) { return *static_cast<AdminConnection*>(p->data); }
  int onUrl(const char* at, size_t len) {
    url_.append(at, len);
    return grow(len);
  }
  int grow(size_t len) {
    header_bytes_ += len;
    if (header_bytes_ > kMaxRequestBytes) {
      too_large_ = true;
      return 1;
    }
    return 0;
  }
  // Only whether an Origin header came, and an Expect header's value, are
  // kept (a field name or value may arrive in pieces).
  int onHeaderField(const char* at, size_t len) {
    if (!in_field_) {
      in_field_ = true;
      field_.clear();
    }
    if (field_.size() + len <= kFieldNameBytes) field_.append(at, len);
    else field_ = "-";  // longer than "origin" and "expect": neither
    return grow(len);
  }
  int onHeaderValue(const char* at, size_t len) {
    if (in_field_) {
      in_field_ = false;
      in_expect_ = equalsLowercaseAscii(field_, "expect");
      has_origin_ = has_origin_ || equalsLowercaseAscii(field_, "origin");
    }
    if (in_expect_ && expect_.size() + len <= kContinue.size()) expect_.append(at, len);
    else if (in_expect_) expect_ = "-";
    return grow(len);
  }
  // curl sends `Expect: 100-continue` with a body over 1 KiB, and waits a
  // second for this before sending it; a client that waits for it would
  // get 408.
  int onHeadersComplete() {
    // HTTP/1.0 clients know no 100 (RFC 9110 10.1.1: ignore the expectation).
    const bool http11 = parser_.http_major > 1 || (parser_.http_major == 1 && parser_.http_minor >= 1);
    if (http11 && equalsLowercaseAscii(expect_, kContinue)) {
      socket_.write(std::string("HTTP/1.1 100 Continue\r\n\r\n"));
    }
    return 0;
  }
  int onBody(size_t len) {
    body_bytes_ += len;
    if (body_bytes_ > kMaxBodyBytes) {
      body_too_large_ = true;
      return 1;
    }
    return 0;
  }
  int onMessageComplete() {
    complete_ = true;
    return 1;  // one request per connection: stop parsing here
  }

  // ---- TcpSocketCallbacks ----
  void onRead(const uint8_t* data, size_t len) override {
    // One request per connection: bytes after it (a stray CRLF, a pipelined
    // request) must not hand it to the handler twice.
    if (answered_ || dispatched_) return;
    received_any_ = true;
    static const http_parser_settings settings = [] {
      http_parser_settings s{};
      s.on_url = [](http_parser* p, const char* at, size_t len) { return self(p).onUrl(at, len); };
      s.on_header_field = [](http_parser* p, const char* at, size_t len) { return self(p).onHeaderField(at, len); };
      s.on_header_value = [](http_parser* p, const char* at, size_t len) { return self(p).onHeaderValue(at, len); };
      s.on_headers_complete = [](http_parser* p) { return self(p).onHeadersComplete(); };
      s.on_body = [](http_parser* p, const char*, size_t len) { return self(p).onBody(len); };
      s.on_message_complete = [](http_parser* p) { return self(p).onMessageComplete(); };
      return s;
    }();
    http_parser_execute(&parser_, &settings, reinterpret_cast<const char*>(data), len);
    if (complete_) {
      dispatch();
    } else if (too_large_ && url_.size() == header_bytes_) {  // past the limit inside the URL
      respond({414, "text/plain; charset=utf-8", "request URL too long\n", ""});
    } else if (too_large_) {
      respond({431, "text/plain; charset=utf-8", "request headers too large\n", ""});
    } else if (body_too_large_) {
      respond({413, "text/plain; charset=utf-8", "request body too large\n", ""});
    } else if (HTTP_PARSER_ERRNO(&parser_) != HPE_OK) {
      respond({400, "text/plain; charset=utf-8",
               fmt::format("bad request: {}\n", http_errno_description(HTTP_PARSER_ERRNO(&parser_))), ""});
    }
  }
  void onDisconnected(int status) override {
    // A client that half-closes after its request (`printf ... | nc -N`, a
    // probe script) still reads: its answer, now or later (a reload looking
    // up host names), goes out in full before the socket closes. Before a
    // whole request, or on an error, there is nothing to answer.
    if (status == UV_EOF && (dispatched_ || answered_) && !finished_ && !lingering_) {
      peer_done_sending_ = true;  // nothing more to read: no linger after the answer
      socket_.stopReading();
      return;
    }
    done();
  }
  // The gateway is stopping: an answer being written gets a short grace,
  // anything else closes now (an idle or slow client must not keep the
  // process alive for request_timeout_ms after its drain).
  void closeForShutdown() {
    if (answered_ && !finished_ && socket_.bytesPending() > 0) {
      timer_.enable(kShutdownGrace);
      return;
    }
    done();
  }

  uint64_t id() const { return id_; }
  // The handler's answer, now or later.
  void answer(const AdminResponse& r) {
    if (answered_ || finished_) return;
    respond(r);
  }
  void onWriteDrained() override {
    if (answered_) written();
  }

 private:
  // request_timeout_ms passed: a request still arriving gets 408 (and a short
  // grace to take it); an answer the client is not reading is dropped.
  void onTimeout() {
    if (answered_) {
      done();
      return;
    }
    if (dispatched_) {
      // The handler is still working (a reload looking up host names): it
      // goes on, and logs its outcome.
      respond({503, "text/plain; charset=utf-8",
               fmt::format("no answer within {} ms; the request goes on and its outcome is logged\n",
                           listener_.limits().request_timeout_ms),
               ""});
    } else {
      respond({408, "text/plain; charset=utf-8",
               fmt::format("no complete request within {} ms\n", listener_.limits().request_timeout_ms), ""});
    }
    if (!finished_) timer_.enable(std::chrono::seconds(1));
  }

  void dispatch() {
    http_parser_url u;
    http_parser_url_init(&u);
    std::string path = url_;
    std::string query;
    if (http_parser_parse_url(url_.data(), url_.size(), 0, &u) == 0 && (u.field_set & (1 << UF_PATH))) {
      path = url_.substr(u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
      if (u.field_set & (1 << UF_QUERY)) query = url_.substr(u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    }
    std::string method = http_method_str(static_cast<http_method>(parser_.method));
    dispatched_ = true;
    if (parser_.method == HTTP_POST && has_origin_) {
      // Browsers send Origin with every cross-site POST, curl and scripts
      // do not: a web page open on this host must not drain or reload the
      // gateway through its admin port.
      respond({403, "text/plain; charset=utf-8",
               "admin POST requests with an Origin header (from a browser page) are refused\n", ""});
      return;
    }
    listener_.handler().handleAdmin(method, path, query, listener_.replyTo(id_));
  }

  void respond(const AdminResponse& r) {
    if (r.body.size() > kSmallAnswerBytes) {
      const size_t held = listener_.answerBytesPending();
      // One answer alone always goes (a limit under the scrape's size must
      // not refuse every scrape).
      if (held > 0 && held + r.body.size() > listener_.limits().max_pending_answer_bytes) {
        // Scrapes of many MB each, to clients reading slowly: one more would
        // add its whole size to the heap (and push it toward `overload`).
        // Small answers (/healthz, /ready) always go out.
        respond({503, "text/plain; charset=utf-8",
                 fmt::format("admin answers not yet read by their clients hold {} bytes; try again\n", held), ""});
        return;
      }
    }
    answered_ = true;
    answered_at_ = std::chrono::steady_clock::now();
    std::string head = fmt::format(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-cache\r\n"
        "connection: close\r\n",
        r.status, reasonPhrase(r.status), r.content_type, r.body.size());
    if (!r.allow.empty()) head += fmt::format("allow: {}\r\n", r.allow);
    head += "\r\n";
    // A HEAD answer has the GET answer's headers and no body (RFC 9110 9.3.2).
    const bool head_request = dispatched_ && parser_.method == HTTP_HEAD;
    // Gathered: a scrape of many MB is copied only for what the kernel does
    // not take at once.
    const ByteSpan spans[] = {{reinterpret_cast<const uint8_t*>(head.data()), head.size()},
                              {reinterpret_cast<const uint8_t*>(r.body.data()), head_request ? 0 : r.body.size()}};
    socket_.write(spans, 2);
    if (socket_.bytesPending() == 0) written();
  }

  // The answer is in the kernel. A request not read to its end (too large,
  // malformed) leaves bytes unread: closing now would send RST, which can
  // destroy the answer before the client reads it (curl: "connection reset"
  // instead of 413). So FIN first, and the rest of its request is read and
  // dropped until it closes, or kErrorLinger.
  void written() {
    if (complete_ || !received_any_ || peer_done_sending_ || lingering_) {  // nothing left unread (or lingering)
      if (!lingering_) done();
      return;
    }
    lingering_ = true;
    socket_.shutdownWrite();
    timer_.enable(kErrorLinger);
  }

  void done() {
    if (finished_) return;
    finished_ = true;
    timer_.disable();
    socket_.close();
    listener_.onConnectionDone(*this);
  }

  AdminListener& listener_;
  const uint64_t id_;
  TcpSocket socket_;
  Timer timer_;
  http_parser parser_;
  std::string url_;
  size_t header_bytes_ = 0;
  size_t body_bytes_ = 0;
  bool too_large_ = false;
  bool body_too_large_ = false;
  bool complete_ = false;
  bool dispatched_ = false;  // handed to the AdminHandler
  bool answered_ = false;
  bool finished_ = false;
  bool received_any_ = false;
  std::chrono::steady_clock::time_point accepted_at_;
  std::chrono::steady_clock::time_point answered_at_;
  bool lingering_ = false;  // an error answered before the whole request was read (written())
  bool peer_done_sending_ = false;  // its FIN came after the request was handled
  static constexpr size_t kFieldNameBytes = 6;  // "origin", "expect"
  static constexpr std::string_view kContinue = "100-continue";
  std::string field_;       // the header name being read, up to kFieldNameBytes
  bool in_field_ = false;
  bool has_origin_ = false;
  bool in_expect_ = false;  // the value being read is an Expect header's
  std::string expect_;      // its value, up to kContinue's length ("-" if longer)
};

AdminListener::AdminListener(Dispatcher& dispatcher, AdminHandler& handler, SocketAddress address,
                             AdminLimits limits)
    : dispatcher_(dispatcher),
      handler_(handler),
      address_(std::move(address)),
      limits_(limits),
      socket_(dispatcher, [this](uv_stream_t* server) { onAccept(server); }) {}

void AdminListener::onAccept(uv_stream_t* server) {
  auto conn = std::make_unique<AdminConnection>(*this, next_connection_id_++);
  bool room = connections_.size() < limits_.max_connections;
  if (!room) {
    // Who gives up a slot, in this order: the oldest lingering after an
    // error answer (owed nothing), the oldest that sent nothing yet
    // (answered 408 and closed once that is written), the oldest whose
    // request is still arriving after kStalledRequest, the oldest whose
    // answer its client has not taken kStalledRequest after it was written.
    const auto now = std::chrono::steady_clock::now();
    auto first = [this](auto&& pred) { return std::find_if(connections_.begin(), connections_.end(), pred); };
    auto victim = first([](const auto& c) { return c->lingering(); });
    if (victim == connections_.end()) victim = first([](const auto& c) { return c->silent(); });
    if (victim == connections_.end()) victim = first([now](const auto& c) { return c->stalled(now); });
    if (victim == connections_.end()) victim = first([now](const auto& c) { return c->answerStalled(now); });
    if (victim != connections_.end()) {
      (*victim)->evict();
      room = true;
    }
  }
  if (!room) {
    conn->acceptAndClose(server);
    dispatcher_.deferredDelete(std::move(conn));
    return;
  }
  if (conn->accept(server) == 0) {
    connections_.push_back(std::move(conn));
  } else {
    dispatcher_.deferredDelete(std::move(conn));
  }
}

AdminListener::~AdminListener() {
  // Destroyed with its loop: the connections go with it, not through the
  // dispatcher's deferred deletion.
  socket_.close();
  connections_.clear();
}

Status AdminListener::start() {
  Status s = socket_.listen(address_, /*reuse_port=*/false, "admin");
  if (s.isOk()) spdlog::info("admin listening on {}", boundAddress().toString());
  return s;
}

void AdminListener::stop() {
  socket_.close();
  // Closing may remove a connection from connections_ at once.
  std::vector<AdminConnection*> open;
  for (auto& c : connections_) open.push_back(c.get());
  for (AdminConnection* c : open) c->closeForShutdown();
}

AdminReply AdminListener::replyTo(uint64_t connection_id) {
  return [this, connection_id](const AdminResponse& response) {
    for (auto& c : connections_) {
      if (c->id() == connection_id) {
        c->answer(response);
        return;
      }
    }
  };
}

void AdminListener::logRefusal(const std::string& peer) {
  // At most one line a second: a client reconnecting in a loop must not
  // flood the log.
  uint64_t skipped = 0;
  if (!refusal_log_.admit(skipped)) return;
  spdlog::warn("admin: max_connections ({}) reached, every connection busy with a request: refused {} ({} more "
               "refused since the last such line)",
               limits_.max_connections, peer, skipped);
}

size_t AdminListener::answerBytesPending() const {
  size_t held = 0;
  for (const auto& c : connections_) held += c->bytesPending();
  return held;
}

void AdminListener::onConnectionDone(AdminConnection& connection) {
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [&](const auto& c) { return c.get() == &connection; });
  if (it == connections_.end()) return;
  dispatcher_.deferredDelete(std::move(*it));
  connections_.erase(it);
}

}  // namespace sluice
