#include "codecs/http2/session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <random>
#include <utility>

#include <fmt/format.h>

#include "codecs/http2/outbound_data.h"
#include "codecs/http2/session_memory.h"
#include "core/request_id.h"
#include "core/tcp_socket.h"

namespace sluice {
namespace {

// The names a gRPC call sends on every call, as static text: nghttp2 need
// not copy (and lowercase) a name that outlives the frame and is lowercase
// already. nullptr for any other name.
const char* staticName(std::string_view name) {
  // By length, then against literals: each comparison is of a known size,
  // which the compiler inlines (a loop over a table cost as much as the copy
  // it saves).
  auto is = [&](std::string_view known) { return name == known ? known.data() : nullptr; };
  const char* found = nullptr;
  switch (name.size()) {
    case 2: return is("te");
    case 5: return is(":path");
    case 7:
      if ((found = is(":method")) || (found = is(":scheme"))) return found;
      return is(":status");
    case 10:
      if ((found = is(":authority"))) return found;
      return is("user-agent");
    case 11: return is("grpc-status");
    case 12:
      if ((found = is("content-type")) || (found = is("grpc-timeout")) || (found = is("grpc-message"))) return found;
      return is(request_id::kHeader);
    case 13: return is("grpc-encoding");
    case 20: return is("grpc-accept-encoding");
    default: return nullptr;
  }
}

// The header block as nghttp2 wants it, pseudo-headers first (HTTP/2
// requires it, whatever order a filter added them in). nghttp2 copies the
// block when it is submitted (but for the static names above), so one vector
// per thread serves every call.
const std::vector<nghttp2_nv>& toNv(const HeaderBlock& block) {
  thread_local std::vector<nghttp2_nv> nv;
  nv.clear();
  block.forEach([](const Header& h) {
    const char* name = staticName(h.name);
    uint8_t flags = NGHTTP2_NV_FLAG_NONE;
    if (name != nullptr) {
      flags = NGHTTP2_NV_FLAG_NO_COPY_NAME;
      // A value new on every call (the request id) would only push the
      // headers that do repeat out of HPACK's table: sent as a literal, never
      // indexed. (staticName gives kHeader's own text for it: one comparison.)
      if (name == request_id::kHeader.data()) flags |= NGHTTP2_NV_FLAG_NO_INDEX;
    } else {
      name = h.name.data();
    }
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(h.value.data())), h.name.size(), h.value.size(),
                  flags});
  });
  return nv;
}

const std::vector<nghttp2_nv>& toNv(const HeaderMap& headers) {
  HeaderBlock block;
  block.forwarded = &headers;
  return toNv(block);
}

// WriteBatch: what one writeTo() gathers for a single writev: serialised
// control frames (copied: they are small) and DATA frames (9-byte header
// copied, payload referenced in the streams' queues until written). One per
// thread: writeTo() fills and flushes it before returning.
struct WriteBatch {
  static constexpr size_t kMaxPiecesPerFrame = 16;
  static constexpr size_t kMaxSpans = 256;
  static constexpr size_t kMaxFrames = 64;
  static constexpr size_t kControlBytes = 64 * 1024;

  TcpSocket* socket = nullptr;
  size_t max_pending = 0;  // writeTo()'s: what the socket may hold unwritten
  ByteSpan spans[kMaxSpans];
  size_t span_count = 0;
  uint8_t headers[kMaxFrames][9];
  struct Taken {
    Http2StreamHandler* handler;
    size_t len;
  };
  Taken taken[kMaxFrames];
  size_t frames = 0;
  size_t bytes = 0;         // gathered since the last flush
  bool took_data = false;   // a DATA frame joined during the current mem_send
  std::string control;  // capacity reserved once: pointers into it stay valid

  static WriteBatch& local() {
    thread_local WriteBatch batch;
    return batch;
  }
  WriteBatch() { control.reserve(kControlBytes); }

  void addControl(const uint8_t* data, size_t len) {
    if (control.size() + len > kControlBytes || span_count == kMaxSpans) flush();
    if (len > kControlBytes) {  // a huge HEADERS block: written on its own
      ByteSpan one{data, len};
      socket->write(&one, 1);
      return;
    }
    bytes += len;
    const char* at = control.data() + control.size();
    control.append(reinterpret_cast<const char*>(data), len);
    if (span_count > 0 && reinterpret_cast<const char*>(spans[span_count - 1].data) + spans[span_count - 1].len == at) {
      spans[span_count - 1].len += len;  // contiguous with the previous control bytes
    } else {
      spans[span_count++] = {reinterpret_cast<const uint8_t*>(at), len};
    }
  }

  void addData(const uint8_t* framehd, Http2StreamHandler& h, size_t len) {
    if (frames == kMaxFrames || span_count + 1 + kMaxPiecesPerFrame > kMaxSpans) flush();
    std::memcpy(headers[frames], framehd, 9);
    spans[span_count++] = {headers[frames], 9};
    span_count += h.outbound().take(len, spans + span_count, kMaxPiecesPerFrame);
    taken[frames++] = {&h, len};
    bytes += 9 + len;
    took_data = true;
  }

  // What is gathered and what the socket holds reach max_pending: gather no more.
  bool full() const { return socket->bytesPending() + bytes >= max_pending; }

  // Writes everything gathered, then lets the streams drop what was written.
  void flush() {
    if (span_count > 0) socket->write(spans, span_count);
    for (size_t i = 0; i < frames; ++i) {
      taken[i].handler->outbound().consume(taken[i].len);
      taken[i].handler->onOutboundDrained(taken[i].len);
    }
    span_count = 0;
    frames = 0;
    bytes = 0;
    control.clear();
  }
};

Http2StreamHandler* handlerOf(nghttp2_session* s, int32_t stream_id) {
  return static_cast<Http2StreamHandler*>(nghttp2_session_get_stream_user_data(s, stream_id));
}

}  // namespace

// nghttp2 callbacks: each one casts user_data and forwards; none throws.
struct Http2Session::Bridge {
  static Http2Session& self(void* user_data) { return *static_cast<Http2Session*>(user_data); }

  static int onBeginHeaders(nghttp2_session* s, const nghttp2_frame* frame, void* ud) noexcept {
    Http2Session& session = self(ud);
    session.receiving_ = {};
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (session.side_ != Side::Server || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      session.receiving_ = {frame->hd.stream_id, handlerOf(s, frame->hd.stream_id)};
      return 0;
    }
    ++session.streams_begun_;
    // (A session ended on a peer's abuse, by nghttp2's limits or by
    // onPeerCausedStreamError, ignores the rest of its input: terminating
    // sets nghttp2 to skip everything, so no later stream starts a call.)
    Http2StreamHandler* h = session.owner_.onNewStream(frame->hd.stream_id);
    if (h == nullptr) {
      // Without a handler the stream's frames are ignored until the reset
      // lands; its header block still counts toward the cutoff.
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
      session.receiving_ = {frame->hd.stream_id, nullptr};
      return 0;
    }
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, h);
    ++session.open_streams_;
    session.receiving_ = {frame->hd.stream_id, h};
    return 0;
  }

  // The handler of the header block being received (see ReceivingBlock).
  static Http2StreamHandler* receivingHandler(Http2Session& session, nghttp2_session* s, int32_t stream_id) {
    if (stream_id == session.receiving_.stream_id) return session.receiving_.handler;
    return handlerOf(s, stream_id);
  }

  static int onHeader(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* ud) noexcept {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Http2Session& session = self(ud);
    if (frame->hd.stream_id == session.receiving_.stream_id) {
      session.receiving_.bytes += namelen + valuelen + 32;  // headerListBytes()
      if (session.receiving_.bytes > session.header_block_cutoff_) {
        session.receiving_ = {};
        if (session.side_ == Side::Server) session.onPeerCausedStreamError();
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // nghttp2 resets the stream
      }
    }
    if (auto* h = receivingHandler(session, s, frame->hd.stream_id)) {
      h->onHeader({reinterpret_cast<const char*>(name), namelen},
                  {reinterpret_cast<const char*>(value), valuelen});
    }
    return 0;
  }

  // nghttp2's account of what went wrong (e.g. "PUSH_PROMISE: push is
  // disabled"), kept for the GOAWAY that usually follows.
  static int onError(nghttp2_session*, int, const char* msg, size_t len, void* ud) noexcept {
    self(ud).last_error_.assign(msg, std::min<size_t>(len, 256));
    return 0;
  }

  // nghttp2 found a frame breaking a rule and answers it with RST_STREAM (a
  // stream error) or GOAWAY (a connection error, which ends the session
  // anyway). Registered for server sessions only. Counted at once: the rest
  // of what was read may hold many more such streams, each starting a call.
  // nghttp2 also resets streams without calling this (a request's DATA past
  // its content-length, or short of it, or past the stream's window): a
  // call's stream closing with such a reset is counted then (onStreamClose),
  // unless it was counted here.
  static int onInvalidFrameRecv(nghttp2_session* s, const nghttp2_frame* frame, int, void* ud) noexcept {
    if (frame->hd.stream_id == 0) return 0;
    Http2Session& session = self(ud);
    if (handlerOf(s, frame->hd.stream_id) != nullptr) session.counted_resets_.push_back(frame->hd.stream_id);
    session.onPeerCausedStreamError();
    return 0;
  }

  // The codes only nghttp2's own resets use: the gateway's are NO_ERROR,
  // CANCEL, REFUSED_STREAM, INTERNAL_ERROR and ENHANCE_YOUR_CALM.
  static bool isRuleBreakReset(uint32_t error_code) {
    return error_code == NGHTTP2_PROTOCOL_ERROR || error_code == NGHTTP2_FLOW_CONTROL_ERROR ||
           error_code == NGHTTP2_STREAM_CLOSED || error_code == NGHTTP2_FRAME_SIZE_ERROR;
  }

  static int onFrameRecv(nghttp2_session* s, const nghttp2_frame* frame, void* ud) noexcept {
    Http2Session& session = self(ud);
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        session.empty_data_in_a_row_ = 0;
        auto* h = receivingHandler(session, s, frame->hd.stream_id);
        session.receiving_ = {};
        if (h == nullptr) return 0;
        bool trailers = frame->headers.cat == NGHTTP2_HCAT_HEADERS;
        h->onHeadersComplete(trailers, (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
        return 0;
      }
      case NGHTTP2_DATA:
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
          session.empty_data_in_a_row_ = 0;
          if (auto* h = handlerOf(s, frame->hd.stream_id)) h->onEndStream();
        } else if (frame->hd.length > frame->data.padlen) {  // data, not only padding
          session.empty_data_in_a_row_ = 0;
        } else if (session.side_ == Side::Server && ++session.empty_data_in_a_row_ > kMaxEmptyDataFramesInARow) {
          session.endFlood("empty DATA frames in a row");
        }
        return 0;
      case NGHTTP2_PRIORITY:
        if (session.side_ == Side::Server &&
            ++session.priority_frames_ > 1 + kMaxPriorityFramesPerStream * (1 + session.streams_begun_)) {
          session.endFlood("PRIORITY frames for the streams it opened");
        }
        return 0;
      case NGHTTP2_WINDOW_UPDATE:
        // Envoy's allowance: clients (grpc++) also open each stream's window
        // as they start it, before any DATA came.
        if (session.side_ == Side::Server &&
            ++session.window_updates_ >
                1 + 2 * (session.streams_begun_ + kMaxWindowUpdatesPerDataUnitSent * session.data_units_sent_)) {
          session.endFlood("WINDOW_UPDATE frames for the DATA sent to it");
        }
        return 0;
      case NGHTTP2_GOAWAY:
        session.owner_.onGoaway(frame->goaway.last_stream_id, frame->goaway.error_code);
        return 0;
      case NGHTTP2_RST_STREAM:
        // nghttp2 closes the stream right after this, with the peer's code.
        session.peer_reset_stream_ = frame->hd.stream_id;
        if (auto* h = handlerOf(s, frame->hd.stream_id)) h->onPeerReset(frame->rst_stream.error_code);
        return 0;
      case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
          if (auto sequence = session.ourPing(frame->ping.opaque_data)) session.owner_.onPingAck(*sequence);
        }
        return 0;
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) session.owner_.onRemoteSettings();
        return 0;
      default:
        return 0;
    }
  }

  static int onDataChunk(nghttp2_session* s, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t len, void*) noexcept {
    // The connection window is ours to manage: the bytes are now counted
    // against the stream, which is acknowledged when they move on.
    nghttp2_session_consume_connection(s, len);
    if (auto* h = handlerOf(s, stream_id)) h->onData(data, len);
    return 0;
  }

  static int onStreamClose(nghttp2_session* s, int32_t stream_id, uint32_t error_code,
                           void* ud) noexcept {
    if (self(ud).receiving_.stream_id == stream_id) self(ud).receiving_ = {};
    auto* h = handlerOf(s, stream_id);
    if (h == nullptr) return 0;
    Http2Session& session = self(ud);
    // A call's stream that nghttp2 reset for a broken rule: the "MadeYouReset"
    // budget. (The client's own resets: the rapid-reset budget, charged by
    // the handler, which knows whether the call had ended.)
    if (session.side_ == Side::Server) {
      const bool counted = std::erase(session.counted_resets_, stream_id) != 0;
      const bool by_peer = std::exchange(session.peer_reset_stream_, 0) == stream_id;
      if (!counted && !by_peer && isRuleBreakReset(error_code)) session.onPeerCausedStreamError();
    }
    nghttp2_session_set_stream_user_data(s, stream_id, nullptr);
    --self(ud).open_streams_;
    h->onClose(error_code);
    return 0;
  }

  // Server side: a response that ends before its request did ends the stream
  // too (RST_STREAM NO_ERROR, RFC 9113 §8.1): otherwise the stream stays
  // half-open, holding a slot of max_concurrent_streams, until the client
  // thinks to end it, and whatever it still sends would be read for nothing.
  // Both sides report a GOAWAY with an error (the session ends for it).
  static int onFrameSend(nghttp2_session* s, const nghttp2_frame* frame, void* ud) noexcept {
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
      self(ud).owner_.onErrorGoawaySent(frame->goaway.error_code, self(ud).last_error_);
      return 0;
    }
    if (self(ud).side_ != Side::Server) return 0;
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    if (nghttp2_session_get_stream_remote_close(s, frame->hd.stream_id) == 0) {
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    }
    return 0;
  }

  // A HEADERS frame nghttp2 could not send, its block being over the 64 KiB
  // HTTP/2 lets it send: nghttp2 drops it and leaves the stream open, so the
  // client would wait for an answer that never comes. The stream is reset
  // (its handler hears why first). Client side, nghttp2 closes the stream
  // itself, so this is registered for servers only.
  static int onFrameNotSend(nghttp2_session* s, const nghttp2_frame* frame, int lib_error, void*) noexcept {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    // The session is ending (a connection error, a GOAWAY sent): every
    // queued reply is dropped, each a call the connection's end reports.
    // Not a header block too large, nor a warning each (a client's one bad
    // frame after a thousand quick replies would make a thousand).
    if (lib_error == NGHTTP2_ERR_SESSION_CLOSING) return 0;
    if (nghttp2_session_find_stream(s, frame->hd.stream_id) == nullptr) return 0;
    if (auto* h = handlerOf(s, frame->hd.stream_id)) h->onHeadersNotSent(nghttp2_strerror(lib_error));
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_INTERNAL_ERROR);
    return 0;
  }

  // How much of the stream's queue goes into the next DATA frame. The bytes
  // are not copied here (NO_COPY): sendData() adds them to the write batch.
  static ssize_t readData(nghttp2_session* s, int32_t stream_id, uint8_t*, size_t length,
                          uint32_t* data_flags, nghttp2_data_source*, void*) noexcept {
    auto* h = handlerOf(s, stream_id);
    if (h == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    OutboundData& out = h->outbound();
    size_t n = out.readable(length, WriteBatch::kMaxPiecesPerFrame);
    if (n > 0) *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == out.untaken() && h->outboundEnded()) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      if (const HeaderMap* trailers = h->outboundTrailers()) {
        const auto& nv = toNv(*trailers);
        if (nghttp2_submit_trailer(s, stream_id, nv.data(), nv.size()) == 0) {
          *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
      }
      return static_cast<ssize_t>(n);
    }
    if (n == 0) return NGHTTP2_ERR_DEFERRED;
    return static_cast<ssize_t>(n);
  }

  // One whole DATA frame: its header and payload join the write batch.
  static int sendData(nghttp2_session* s, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                      nghttp2_data_source*, void* ud) noexcept {
    auto* h = handlerOf(s, frame->hd.stream_id);
    WriteBatch& batch = WriteBatch::local();
    if (h == nullptr || batch.socket == nullptr) return NGHTTP2_ERR_CALLBACK_FAILURE;
    batch.addData(framehd, *h, length);
    // In 4 KiB units, not frames: ours carry up to 256 KiB, and a client
    // may hand back credit every 4 KiB it reads (Go's x/net/http2 does).
    self(ud).data_units_sent_ += (length + kDataUnitBytes - 1) / kDataUnitBytes;
    // nghttp2 goes on to the next DATA frame within the same mem_send, for
    // as long as there are any: stop it once the batch is full.
    return batch.full() ? NGHTTP2_ERR_PAUSE : 0;
  }

  // DATA frames as large as the peer and the windows allow (nghttp2 stops at
  // 16 KiB otherwise): a 64 KiB message goes out as one frame, not four.
  static ssize_t readLength(nghttp2_session*, uint8_t, int32_t, int32_t session_window, int32_t stream_window,
                            uint32_t remote_max_frame_size, void*) noexcept {
    constexpr int32_t kMaxDataFrame = 256 * 1024;
    int32_t n = std::min({session_window, stream_window, static_cast<int32_t>(remote_max_frame_size), kMaxDataFrame});
    return std::max<int32_t>(n, 1);
  }

  static nghttp2_session_callbacks* makeCallbacks(Side side) {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cbs, onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, onFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, onDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, onStreamClose);
    nghttp2_session_callbacks_set_send_data_callback(cbs, sendData);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, readLength);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, onFrameSend);
    nghttp2_session_callbacks_set_error_callback2(cbs, onError);
    if (side == Side::Server) {
      nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, onFrameNotSend);
      nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, onInvalidFrameRecv);
    }
    return cbs;
  }

  static const nghttp2_session_callbacks* callbacks(Side side) {
    // Built once per side for the process and never changed: shared by every session.
    static const nghttp2_session_callbacks* server = makeCallbacks(Side::Server);
    static const nghttp2_session_callbacks* client = makeCallbacks(Side::Client);
    return side == Side::Server ? server : client;
  }

};

namespace {

// Options are per session: the abuse limits come from the listener's config.
nghttp2_option* makeOptions(const Http2Settings& settings) {
  nghttp2_option* o;
  nghttp2_option_new(&o);
  nghttp2_option_set_no_auto_window_update(o, 1);
  // Off (a bucket that never empties): the session keeps its own, which
  // gives tokens back for finished calls (Http2Settings::reset_burst).
  nghttp2_option_set_stream_reset_rate_limit(o, UINT64_MAX, UINT64_MAX);
  nghttp2_option_set_max_outbound_ack(o, settings.max_outbound_ack);
  nghttp2_option_set_max_settings(o, settings.max_settings);
  // gRPC never uses RFC 7540 priorities, so closed streams need not be kept
  // for the priority tree. Kept, a server session holds ~220 bytes per
  // finished call until max_concurrent_streams of them pile up: up to
  // ~220 KiB per busy long-lived connection, released only when it closes.
  nghttp2_option_set_no_closed_streams(o, 1);
  // gRPC stacks send values with a leading or trailing space (a grpc-message
  // such as "missing field: ", padded metadata) and accept them: refused here
  // (RFC 9113 8.2.1, which nghttp2 1.52 applies by default), such a call
  // failed through the gateway that works direct, and the reset counted
  // against the endpoint or the client's connection. Passed on as they came.
  nghttp2_option_set_no_rfc9113_leading_and_trailing_ws_validation(o, 1);
  return o;
}

}  // namespace

ClientStart classifyClientStart(std::string_view first_bytes) {
  const std::string_view preface(NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
  const size_t n = std::min(first_bytes.size(), preface.size());
  if (first_bytes.substr(0, n) == preface.substr(0, n)) {
    return n == preface.size() ? ClientStart::Http2 : ClientStart::Undecided;
  }
  // A method token (upper-case letters) and a space: the start of a request line.
  size_t i = 0;
  while (i < first_bytes.size() && i < preface.size() && first_bytes[i] >= 'A' && first_bytes[i] <= 'Z') ++i;
  if (i == first_bytes.size()) return ClientStart::Undecided;
  return i > 0 && first_bytes[i] == ' ' ? ClientStart::Http1 : ClientStart::Other;
}

bool StreamErrorBudget::take(double now_seconds) {
  if (last_ >= 0) tokens_ = std::min(burst_, tokens_ + (now_seconds - last_) * rate_);
  last_ = now_seconds;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

Http2Session::Http2Session(Side side, Http2SessionOwner& owner, const Http2Settings& settings)
    : side_(side),
      owner_(owner),
      header_block_cutoff_(static_cast<size_t>(settings.max_header_list_bytes) * kHeaderBlockCutoffFactor),
      stream_errors_(settings.reset_burst, settings.reset_rate_per_second),
      peer_resets_(settings.reset_burst, settings.reset_rate_per_second) {
  nghttp2_option* options = makeOptions(settings);
  if (side == Side::Server) {
    nghttp2_session_server_new3(&session_, Bridge::callbacks(side), this, options, http2::sessionAllocator());
  } else {
    nghttp2_session_client_new3(&session_, Bridge::callbacks(side), this, options, http2::sessionAllocator());
  }
  nghttp2_option_del(options);
  // A client turns server push off (nghttp2 allows it by default): a pushed
  // stream would never be read or reset, and a backend pushing in a loop
  // would grow the gateway's memory a stream at a time until the connection
  // closed. With push off, a PUSH_PROMISE is a connection error.
  nghttp2_settings_entry entries[] = {
      side == Side::Server ? nghttp2_settings_entry{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                                    settings.max_concurrent_streams}
                           : nghttp2_settings_entry{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings.initial_stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings.max_header_list_bytes},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, settings.max_frame_size},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, entries, std::size(entries));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(settings.connection_window));
}

Http2Session::~Http2Session() { nghttp2_session_del(session_); }

void Http2Session::onPeerCausedStreamError() {
  spend(stream_errors_, "streams the client made the gateway reset");
}

void Http2Session::endFlood(const char* what) {
  if (!last_error_.empty() && last_error_.starts_with("a flood")) return;  // said once
  last_error_ = fmt::format("a flood of {} (more than the limit)", what);
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
}

void Http2Session::spend(StreamErrorBudget& budget, const char* why) {
  // Only called for resets, so reading the clock here costs the data path nothing.
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (budget.take(now)) return;
  // Queues GOAWAY; the owner hears of it (onErrorGoawaySent), with why, once
  // it is sent.
  last_error_ = fmt::format("{}, past rst_stream_burst and rst_stream_rate", why);
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
}

Status Http2Session::receive(const uint8_t* data, size_t len) {
  ssize_t rv = 0;
  if (side_ == Side::Client) {
    rv = nghttp2_session_mem_recv(session_, data, len);
  } else {
    idle_resets_.feed(data, len, [&](const uint8_t* bytes, size_t n) {
      rv = nghttp2_session_mem_recv(session_, bytes, n);
      return rv >= 0;
    });
  }
  if (rv < 0) {
    nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    return {StatusCode::Internal, fmt::format("http/2 error: {}", nghttp2_strerror(static_cast<int>(rv)))};
  }
  return Status::ok();
}

bool Http2Session::writeTo(TcpSocket& socket, size_t max_pending) {
  // Everything nghttp2 serialises goes into one gather write: DATA payloads
  // straight from the streams' queues, no copy. mem_send hands us NO_COPY
  // DATA frames (sendData) as it goes, and returns a control frame's bytes
  // or 0: 0 both when it has nothing more and when sendData paused it (the
  // batch is full). Only the first ends the gathering, so a response's
  // HEADERS, DATA and trailers leave in one writev. A write that completes at
  // once brings no callback: loop here rather than wait for one.
  WriteBatch& batch = WriteBatch::local();
  batch.socket = &socket;
  batch.max_pending = max_pending;
  bool ok = true;
  while (socket.bytesPending() < max_pending && !socket.closed()) {
    batch.took_data = false;
    const uint8_t* data;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      ok = false;
      break;
    }
    if (n > 0) batch.addControl(data, static_cast<size_t>(n));
    bool more = n > 0 || batch.took_data;
    // What the kernel does not take joins what is pending: the two together
    // stay within max_pending (but for the last frame gathered).
    if (more && !batch.full()) continue;
    if (batch.span_count == 0) break;
    batch.flush();
  }
  batch.flush();
  batch.socket = nullptr;
  return ok;
}

bool Http2Session::alive() const {
  return nghttp2_session_want_read(session_) != 0 || nghttp2_session_want_write(session_) != 0;
}

bool Http2Session::wantWrite() const { return nghttp2_session_want_write(session_) != 0; }

int32_t Http2Session::sendWindow(int32_t stream_id) const {
  const int32_t stream = nghttp2_session_get_stream_remote_window_size(session_, stream_id);
  const int32_t connection = nghttp2_session_get_remote_window_size(session_);
  return std::max(0, std::min(stream, connection));
}

size_t Http2Session::queuedFrames() const { return nghttp2_session_get_outbound_queue_size(session_); }

int32_t Http2Session::submitRequest(const HeaderBlock& headers, Http2StreamHandler* handler) {
  const auto& nv = toNv(headers);
  // RFC 9113's count (name + value + 32 a field), but a binary (-bin) value
  // at its decoded size, as gRPC's C-core servers count it: what they
  // advertise (8 KiB) is of those bytes, and a call within it that worked
  // direct must work through the gateway.
  size_t list_bytes = 0;
  for (const auto& field : nv) {
    const bool binary = field.namelen > 4 && std::memcmp(field.name + field.namelen - 4, "-bin", 4) == 0;
    list_bytes += field.namelen + (binary ? field.valuelen * 3 / 4 : field.valuelen) + 32;
  }
  last_header_list_bytes_ = list_bytes;
  if (list_bytes > remoteMaxHeaderListBytes()) return kOverPeerHeaderListLimit;
  nghttp2_data_provider provider{};
  provider.read_callback = Bridge::readData;
  int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), &provider, handler);
  if (id > 0) ++open_streams_;
  return id;
}

bool Http2Session::submitResponse(int32_t stream_id, const HeaderMap& headers, bool end_stream) {
  const auto& nv = toNv(headers);
  nghttp2_data_provider provider{};
  provider.read_callback = Bridge::readData;
  return nghttp2_submit_response(session_, stream_id, nv.data(), nv.size(),
                                 end_stream ? nullptr : &provider) == 0;
}

void Http2Session::resumeData(int32_t stream_id) { nghttp2_session_resume_data(session_, stream_id); }

void Http2Session::resetStream(int32_t stream_id, uint32_t error_code) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, error_code);
}

bool Http2Session::localEnded(int32_t stream_id) const {
  return nghttp2_session_get_stream_local_close(session_, stream_id) == 1;
}

bool Http2Session::streamOpen(int32_t stream_id) const {
  return nghttp2_session_find_stream(session_, stream_id) != nullptr;
}

void Http2Session::consume(int32_t stream_id, size_t n) {
  if (n > 0) nghttp2_session_consume_stream(session_, stream_id, n);
}

void Http2Session::setReceiveWindow(int32_t stream_id, uint32_t size) {
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, stream_id, static_cast<int32_t>(size));
}

void Http2Session::detach(int32_t stream_id) {
  if (receiving_.stream_id == stream_id) receiving_ = {};
  if (nghttp2_session_find_stream(session_, stream_id) != nullptr) {
    if (handlerOf(session_, stream_id) != nullptr) {
      nghttp2_session_set_stream_user_data(session_, stream_id, nullptr);
      --open_streams_;
    }
    return;
  }
  // Client side: a request whose HEADERS nghttp2 still queues (a backend not
  // reading holds them behind the socket) has no stream yet, and would open
  // with the handler given to submitRequest, then call it back (frame not
  // sent, stream closed) after it died. This clears the queued HEADERS' copy;
  // it fails for a stream that is gone already.
  if (side_ == Side::Client && nghttp2_session_set_stream_user_data(session_, stream_id, nullptr) == 0) {
    --open_streams_;
  }
}

void Http2Session::goaway(uint32_t error_code) { nghttp2_session_terminate_session(session_, error_code); }

uint64_t Http2Session::ping() {
  if (pings_sent_ == 0) ping_base_ = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  const uint64_t sequence = pings_sent_++;
  const uint64_t payload = ping_base_ + sequence;
  uint8_t opaque[8];
  std::memcpy(opaque, &payload, sizeof(opaque));
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, opaque);
  return sequence;
}

std::optional<uint64_t> Http2Session::ourPing(const uint8_t* opaque) const {
  uint64_t payload;
  std::memcpy(&payload, opaque, sizeof(payload));
  const uint64_t sequence = payload - ping_base_;  // unsigned: wraps for payloads before the base
  if (sequence >= pings_sent_) return std::nullopt;
  return sequence;
}

void Http2Session::gracefulGoaway() {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
}

void Http2Session::shutdownNotice() {
  if (side_ == Side::Server) nghttp2_submit_shutdown_notice(session_);
}

uint32_t Http2Session::remoteMaxConcurrentStreams() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

uint32_t Http2Session::remoteMaxHeaderListBytes() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE);
}

size_t Http2Session::openStreams() const { return open_streams_; }

Http2StreamHandler* Http2Session::handler(int32_t stream_id) const { return handlerOf(session_, stream_id); }

}  // namespace sluice
