// Http2Session on a real socket pair (no network): what reaches a stream's
// handler after it detached.
#include "codecs/http2/session.h"

#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "codecs/http2/outbound_data.h"
#include "core/dispatcher.h"
#include "core/tcp_socket.h"

namespace sluice {
namespace {

struct QuietSocket : TcpSocketCallbacks {
  void onRead(const uint8_t*, size_t) override {}
  void onDisconnected(int) override {}
};

struct CountingHandler : Http2StreamHandler {
  void onHeader(std::string_view, std::string_view) override { ++calls; }
  void onHeadersComplete(bool, bool) override { ++calls; }
  void onData(const uint8_t*, size_t) override { ++calls; }
  void onEndStream() override { ++calls; }
  void onClose(uint32_t) override { ++calls; }
  void onHeadersNotSent(std::string_view) override { ++calls; }
  OutboundData& outbound() override { return out; }
  bool outboundEnded() const override { return false; }
  const HeaderMap* outboundTrailers() const override { return nullptr; }
  OutboundData out{1 << 20, 1 << 19};
  int calls = 0;
};

HeaderBlock requestHeaders() {
  HeaderBlock block;
  HeaderMap& h = block.own;
  h.add(":method", "POST");
  h.add(":scheme", "http");
  h.add(":authority", "backend");
  h.add(":path", "/pkg.Svc/Method");
  h.add("content-type", "application/grpc");
  h.add("te", "trailers");
  return block;
}

// A client session whose socket is one end of a socket pair; nobody reads
// the other end.
struct ClientOnSocketPair {
  ClientOnSocketPair() {
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    REQUIRE(socket.open(fds[0]) == 0);
  }
  ~ClientOnSocketPair() {
    socket.close();
    ::close(fds[1]);
  }
  int fds[2] = {-1, -1};
  Dispatcher dispatcher;
  QuietSocket callbacks;
  TcpSocket socket{dispatcher, callbacks};
  Http2SessionOwner owner;
  Http2Session session{Http2Session::Side::Client, owner, Http2Settings{}};
};

}  // namespace

TEST_CASE("a request detached while its HEADERS are still queued gets no callback", "[http2_session]") {
  // A backend that stops reading holds a call's HEADERS in nghttp2's queue; a
  // call cancelled then (client deadline, per-try timeout, health check
  // timeout) detaches and is deleted. When the queue finally moves, nghttp2
  // opens the stream with the pointer submitRequest gave it and reports it
  // closed: the handler must not hear of it.
  ClientOnSocketPair pair;
  Http2Session& session = pair.session;
  TcpSocket& socket = pair.socket;

  CountingHandler cancelled;
  CountingHandler kept;
  const int32_t cancelled_id = session.submitRequest(requestHeaders(), &cancelled);
  const int32_t kept_id = session.submitRequest(requestHeaders(), &kept);
  REQUIRE(cancelled_id > 0);
  REQUIRE(kept_id > 0);
  CHECK(session.openStreams() == 2);
  session.detach(cancelled_id);
  session.resetStream(cancelled_id, 8 /* CANCEL */);
  CHECK(session.openStreams() == 1);

  REQUIRE(session.writeTo(socket, 1 << 20));
  CHECK(cancelled.calls == 0);
  // The other request went out and is still open.
  CHECK(session.openStreams() == 1);
  session.detach(kept_id);
  CHECK(session.openStreams() == 0);
}

TEST_CASE("a request is open in the session only once its HEADERS leave the queue", "[http2_session]") {
  // What the retry budget asks of a lost request: could a backend have seen
  // it? Queued HEADERS (an id, but nothing written) say no.
  ClientOnSocketPair pair;
  Http2Session& session = pair.session;
  TcpSocket& socket = pair.socket;
  CountingHandler handler;
  const int32_t id = session.submitRequest(requestHeaders(), &handler);
  REQUIRE(id > 0);
  CHECK_FALSE(session.streamOpen(id));
  REQUIRE(session.writeTo(socket, 1 << 20));
  CHECK(session.streamOpen(id));
  session.detach(id);
}

}  // namespace sluice
