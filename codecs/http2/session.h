// Http2Session: one nghttp2 session (server or client side) with its callbacks
// bridged to C++ interfaces.
//
// Ownership: the connection owns the session and every Http2StreamHandler; the
// session only holds raw pointers to handlers (as nghttp2 stream user data).
// A handler must call Http2Session::detach() before it dies: later callbacks
// for that stream then find no handler and are ignored.
//
// Input: receive() feeds socket bytes in; callbacks fire synchronously inside.
// Output: nothing is written from inside callbacks; the owner calls
// writeTo(socket) after events (Dispatcher flush). DATA payloads go from the
// streams' queues to the socket without a copy (NGHTTP2_DATA_FLAG_NO_COPY).
// Flow control: automatic WINDOW_UPDATEs are off. The connection window is
// acknowledged as soon as bytes arrive (they are in our buffers, counted per
// stream); the stream window only when the handler says the bytes moved on
// (consume()). So each stream buffers at most one window.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codecs/http2/idle_reset_filter.h"
#include "core/headers.h"
#include "core/status.h"

struct nghttp2_session;

namespace sluice {

class OutboundData;
class TcpSocket;

class Http2StreamHandler {
 public:
  virtual ~Http2StreamHandler() = default;
  virtual void onHeader(std::string_view name, std::string_view value) = 0;
  // A header block ended. `trailers` is true for a second block after data.
  virtual void onHeadersComplete(bool trailers, bool end_stream) = 0;
  virtual void onData(const uint8_t* data, size_t len) = 0;
  // The peer half-closed (END_STREAM on a DATA frame; HEADERS report it above).
  virtual void onEndStream() = 0;
  // The peer sent RST_STREAM (onClose follows). A close with an error and
  // no such frame before it is our own nghttp2's reset (the peer broke a
  // protocol rule) or a GOAWAY's refusal.
  virtual void onPeerReset(uint32_t /*error_code*/) {}
  // The stream is gone: after a normal end (error_code 0) or a reset.
  virtual void onClose(uint32_t error_code) = 0;
  // Where nghttp2 pulls this stream's outgoing DATA from.
  virtual OutboundData& outbound() = 0;
  // Outgoing data is done: true once everything queued should end the stream.
  virtual bool outboundEnded() const = 0;
  // Trailers to send after the data (server side), or nullptr to end with DATA.
  virtual const HeaderMap* outboundTrailers() const = 0;
  // nghttp2 took `n` bytes out of outbound() (they are on their way).
  virtual void onOutboundDrained(size_t n) {}
  // Server side: a response HEADERS (or trailers) block could not be sent
  // (`why`, from nghttp2): the stream is being reset, onClose follows.
  virtual void onHeadersNotSent(std::string_view why) {}
};

class Http2SessionOwner {
 public:
  virtual ~Http2SessionOwner() = default;
  // Server side: a peer opened stream `id`; return its handler (or nullptr to refuse).
  virtual Http2StreamHandler* onNewStream(int32_t stream_id) { return nullptr; }
  virtual void onGoaway(int32_t last_stream_id, uint32_t error_code) {}
  virtual void onRemoteSettings() {}
  // A GOAWAY with an error went out: nghttp2 sends one of its own for a peer
  // that broke the protocol or went past its limits (e.g. RST_STREAMs past
  // the bucket). `detail`: nghttp2's last error message, or empty.
  virtual void onErrorGoawaySent(uint32_t /*error_code*/, std::string_view /*detail*/) {}
  // A PING we sent came back: `sequence` is what ping() returned for it
  // (ACKs carrying any other payload are ignored: a peer must not keep itself
  // alive, or end a drain early, with ACKs it was never asked for).
  virtual void onPingAck(uint64_t /*sequence*/) {}
};

// How the first bytes a client sent compare with the HTTP/2 client preface.
enum class ClientStart {
  Undecided,  // too few bytes to tell (a beginning of the preface or of a method name)
  Http2,      // the preface
  Http1,      // an HTTP/1.x request line ("GET / HTTP/1.1"): curl, a browser, an h2c upgrade
  Other,      // anything else (TLS, garbage): nghttp2 rejects it
};
ClientStart classifyClientStart(std::string_view first_bytes);

// What one header field counts toward SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113).
inline size_t headerListBytes(std::string_view name, std::string_view value) {
  return name.size() + value.size() + 32;
}
inline constexpr uint32_t kDefaultMaxHeaderListBytes = 64 << 10;

struct Http2Settings {
  uint32_t max_concurrent_streams = 1024;
  uint32_t initial_stream_window = 1 << 20;
  uint32_t connection_window = 16 << 20;
  uint32_t max_header_list_bytes = kDefaultMaxHeaderListBytes;
  // Largest frame we accept (peers may send big DATA frames: fewer frames per
  // message); ours are as large as the peer allows, up to 256 KiB.
  uint32_t max_frame_size = 1 << 20;
  // Peer-abuse limits (server side). The peer's RST_STREAMs of open calls: a
  // token bucket (the "rapid reset" attack, CVE-2023-44487) that gets a
  // token back for every call the peer let finish (refundPeerReset): a
  // client's cancels and deadline expiries cost it nothing while its
  // other calls finish, as Envoy's ratio of premature resets; an attacker
  // pays a whole call for every reset past the bucket. Past it, GOAWAY
  // ENHANCE_YOUR_CALM and the session ends (onErrorGoawaySent tells the
  // owner). nghttp2's own limiter, which counts every RST_STREAM and gives
  // nothing back, is off. The same bucket sizes bound, in a second bucket,
  // the streams the peer makes *us* reset by breaking a stream rule (a WINDOW_UPDATE of 0 or
  // past 2^31-1 on a stream, a frame on a half-closed stream, a malformed
  // request, a header block past the cutoff below): the "MadeYouReset"
  // attack (CVE-2025-8671) opens a backend call per such stream and never
  // sends an RST_STREAM of its own. Past it, GOAWAY ENHANCE_YOUR_CALM.
  uint64_t reset_burst = 1000;
  uint64_t reset_rate_per_second = 33;
  // PING and SETTINGS acknowledgements queued but unsent (a peer that floods
  // PING/SETTINGS and does not read).
  size_t max_outbound_ack = 1000;
  // Entries in one SETTINGS frame.
  size_t max_settings = 32;
};

// A header block decoded past this many times max_header_list_bytes is cut
// off: its stream is reset (INTERNAL_ERROR) and nghttp2 decodes the rest of
// the block without checking or delivering a field. HPACK lets a 16 KiB
// frame of 1-byte references to one 4 KiB table entry stand for 64 MiB of
// fields, each of which nghttp2 would otherwise validate byte by byte (a
// worker at 100% CPU from ~1 MB/s of input). Up to the cutoff, a block over
// the limit still reaches the handler, which answers RESOURCE_EXHAUSTED.
inline constexpr size_t kHeaderBlockCutoffFactor = 4;

// Frames a client may send that make no progress (Envoy's limits against the
// floods of CVE-2019-9513/9515/9518): PRIORITY frames per stream it opened,
// WINDOW_UPDATE frames per stream and per 4 KiB of DATA sent to it (Envoy
// counts DATA frames of at most 16 KiB; ours are up to 256 KiB), and DATA
// frames without data or END_STREAM in a row. Each costs the gateway a
// frame's handling for free; past a limit the connection ends with GOAWAY
// ENHANCE_YOUR_CALM. (Frames on closed streams, which nghttp2 drops without
// a callback, are not counted.)
inline constexpr uint64_t kMaxPriorityFramesPerStream = 100;
inline constexpr uint64_t kMaxWindowUpdatesPerDataUnitSent = 10;
inline constexpr size_t kDataUnitBytes = 4096;
inline constexpr uint32_t kMaxEmptyDataFramesInARow = 10;

// A token bucket of stream errors a peer caused (see Http2Settings::reset_burst).
class StreamErrorBudget {
 public:
  StreamErrorBudget(uint64_t burst, uint64_t rate_per_second)
      : burst_(static_cast<double>(burst)), rate_(static_cast<double>(rate_per_second)), tokens_(burst_) {}
  // Takes one token at `now_seconds` (a monotonic clock); false when none was left.
  bool take(double now_seconds);
  // One token back (up to the burst), for something the peer paid for.
  void give() { tokens_ = std::min(burst_, tokens_ + 1); }

 private:
  double burst_;
  double rate_;
  double tokens_;
  double last_ = -1;
};

class Http2Session {
 public:
  enum class Side { Server, Client };

  Http2Session(Side side, Http2SessionOwner& owner, const Http2Settings& settings);
  ~Http2Session();
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // Feeds received bytes. A non-OK status means the connection is broken
  // (a GOAWAY has been queued when the protocol allows one).
  Status receive(const uint8_t* data, size_t len);
  // Server side: RST_STREAM frames dropped for streams the client never
  // opened (see IdleResetFilter).
  uint64_t idleResetsDropped() const { return idle_resets_.dropped(); }
  // Serialises frames into `socket` until nghttp2 has nothing more or the
  // socket holds `max_pending` unwritten bytes. False on a fatal session error.
  bool writeTo(TcpSocket& socket, size_t max_pending);
  // True while the session still wants to read or write; false = close it.
  bool alive() const;
  bool wantWrite() const;
  // Frames nghttp2 holds unserialised, DATA waiting for window not counted:
  // HEADERS, RST_STREAM, WINDOW_UPDATE, acknowledgements.
  size_t queuedFrames() const;

  // Client side: opens a stream; returns its id or a negative nghttp2 error.
  int32_t submitRequest(const HeaderBlock& headers, Http2StreamHandler* handler);
  // submitRequest's answer for a block over the peer's
  // SETTINGS_MAX_HEADER_LIST_SIZE: not submitted (a grpc++ server ends the
  // whole connection on one). lastHeaderListBytes() says how large it was.
  static constexpr int32_t kOverPeerHeaderListLimit = -100000;
  size_t lastHeaderListBytes() const { return last_header_list_bytes_; }
  // Server side: response headers; data and trailers follow from the handler.
  // With `end_stream` the HEADERS frame ends the stream (trailers-only / error).
  bool submitResponse(int32_t stream_id, const HeaderMap& headers, bool end_stream);
  // Wakes the stream's data provider after data (or the end) was queued.
  void resumeData(int32_t stream_id);
  void resetStream(int32_t stream_id, uint32_t error_code);
  // We have sent END_STREAM on this stream (its DATA or trailers went out).
  bool localEnded(int32_t stream_id) const;
  // nghttp2 has the stream open: on the client side, its HEADERS left the
  // queue for the wire (a request still queued behind a backed-up socket has
  // an id but no stream yet).
  bool streamOpen(int32_t stream_id) const;
  // The handler's bytes moved on: return them to the peer's stream window.
  void consume(int32_t stream_id, size_t n);
  // Sets our receive window for the stream to `size` (a larger one goes out
  // as a WINDOW_UPDATE); later consume() calls refill it to that size.
  void setReceiveWindow(int32_t stream_id, uint32_t size);
  // What the peer lets us send on the stream now (its window and the
  // connection's); 0 when it has not made room.
  int32_t sendWindow(int32_t stream_id) const;
  // Stops delivering callbacks for this stream to its handler, also for a
  // request still queued (not yet sent). Once per stream.
  void detach(int32_t stream_id);
  void goaway(uint32_t error_code);
  // Sends a PING; its sequence number (0, 1, ...), which onPingAck gives back.
  uint64_t ping();
  // Server side: GOAWAY with the largest stream id ("finish up, more may come").
  void shutdownNotice();
  // GOAWAY naming the last stream processed: newer streams are refused, open
  // ones finish, and the session ends (alive() false) once they have.
  void gracefulGoaway();
  // Server side, from the stream's handler, which knows how its call went:
  // the peer reset a call before its response ended (a token of the peer's
  // reset budget, Http2Settings::reset_burst; past it the session ends), or
  // let a call a backend served finish (a token back).
  void chargePeerReset() { spend(peer_resets_, "calls the client reset before their end"); }
  void refundPeerReset() { peer_resets_.give(); }
  // Server side: the peer sent a header block over the SETTINGS_MAX_HEADER_LIST_SIZE
  // we advertised (answered, but decoding it cost far more than its bytes on
  // the wire): a token of the budget of streams it made us reset.
  void chargeOversizedHeaders() { spend(stream_errors_, "header blocks over max_header_list_bytes"); }

  uint32_t remoteMaxConcurrentStreams() const;
  // The peer's SETTINGS_MAX_HEADER_LIST_SIZE (UINT32_MAX if it sent none).
  uint32_t remoteMaxHeaderListBytes() const;
  size_t openStreams() const;
  Side side() const { return side_; }

  // Called by the nghttp2 bridge functions only.
  struct Bridge;

 private:
  // The peer made us reset a stream (server side): past the budget the
  // session ends with GOAWAY ENHANCE_YOUR_CALM.
  void onPeerCausedStreamError();
  // Takes a token from `budget`, or ends the session saying `why`.
  void spend(StreamErrorBudget& budget, const char* why);

  Http2StreamHandler* handler(int32_t stream_id) const;
  // The sequence number of our PING whose payload a PING ACK carries; none
  // for a payload we never sent.
  std::optional<uint64_t> ourPing(const uint8_t* opaque) const;

  Side side_;
  Http2SessionOwner& owner_;
  nghttp2_session* session_ = nullptr;
  size_t open_streams_ = 0;
  size_t last_header_list_bytes_ = 0;  // of the last block submitRequest was given
  // The stream whose header block nghttp2 is delivering, looked up once per
  // block instead of once per field (a map lookup each). Set when a block
  // begins; cleared when it ends, and when its stream closes or lets go.
  struct ReceivingBlock {
    int32_t stream_id = 0;  // 0: none (no HEADERS frame uses stream 0)
    Http2StreamHandler* handler = nullptr;  // nullptr: a refused stream's block
    size_t bytes = 0;                       // decoded so far, as headerListBytes() counts
  };
  ReceivingBlock receiving_;
  size_t header_block_cutoff_;
  StreamErrorBudget stream_errors_;
  StreamErrorBudget peer_resets_;
  // Server side: resets of streams the client never opened, taken out
  // before nghttp2 (which would end the connection for one) reads them.
  http2::IdleResetFilter idle_resets_;
  // The flood limits above (server side): what the peer sent, against what
  // it earned them with.
  uint64_t streams_begun_ = 0;
  uint64_t data_units_sent_ = 0;  // DATA payload sent, in kDataUnitBytes
  uint64_t priority_frames_ = 0;
  uint64_t window_updates_ = 0;
  uint32_t empty_data_in_a_row_ = 0;
  // Past a flood limit: GOAWAY ENHANCE_YOUR_CALM, saying which.
  void endFlood(const char* what);
  // Our PINGs carry ping_base_ + n, n counting them: an ACK is ours if its
  // payload is among those.
  uint64_t ping_base_ = 0;
  std::string last_error_;  // nghttp2's last error message (its error callback)
  // The stream of the last RST_STREAM received: its close is the peer's
  // reset, not one nghttp2 made (the MadeYouReset count).
  int32_t peer_reset_stream_ = 0;
  // Calls' streams counted as broken by onInvalidFrameRecv, not closed yet
  // (not counted again as they close). Few: past the budget the session ends.
  std::vector<int32_t> counted_resets_;
  uint64_t pings_sent_ = 0;
};

}  // namespace sluice
