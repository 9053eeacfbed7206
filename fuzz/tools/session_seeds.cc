// Writes the seed corpus of the "session" fuzzer: client byte streams made
// with nghttp2's own client session (so they are valid HTTP/2 and HPACK), plus
// a few hand-made malformed frames. The fuzzer sends the connection preface
// itself, so every seed starts at the client's SETTINGS frame; "<<wait>>"
// makes it run the gateway until quiet before sending the rest.
//
//   session_seeds OUT_DIR     (fuzz/run.sh --seeds rewrites fuzz/corpus/session/)
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr size_t kPrefaceBytes = 24;
constexpr const char* kWait = "<<wait>>";

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string grpcMessage(const std::string& payload, uint8_t flags = 0) {
  std::string out(5, '\0');
  out[0] = static_cast<char>(flags);
  uint32_t n = static_cast<uint32_t>(payload.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + payload;
}

// A raw frame, for what nghttp2 would refuse to produce.
std::string rawFrame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f(9, '\0');
  uint32_t n = static_cast<uint32_t>(payload.size());
  f[0] = static_cast<char>(n >> 16);
  f[1] = static_cast<char>(n >> 8);
  f[2] = static_cast<char>(n);
  f[3] = static_cast<char>(type);
  f[4] = static_cast<char>(flags);
  f[5] = static_cast<char>(stream >> 24);
  f[6] = static_cast<char>(stream >> 16);
  f[7] = static_cast<char>(stream >> 8);
  f[8] = static_cast<char>(stream);
  return f + payload;
}

Headers grpcRequest(const std::string& path, Headers extra = {}) {
  Headers h = {{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", "fuzz"},
               {"content-type", "application/grpc"}, {"te", "trailers"}};
  for (auto& e : extra) h.push_back(std::move(e));
  return h;
}

// One client connection's bytes, built frame by frame through nghttp2.
class Script {
 public:
  Script() {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry s[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
                                  {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, s, 2);
    flush();
    out_.erase(0, kPrefaceBytes);
  }
  ~Script() { nghttp2_session_del(session_); }

  int32_t headers(const Headers& h, bool end_stream = false, int32_t stream = -1) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [k, v] : h) {
      nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(k.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), k.size(), v.size(),
                    NGHTTP2_NV_FLAG_NONE});
    }
    int32_t id = nghttp2_submit_headers(session_, end_stream ? NGHTTP2_FLAG_END_STREAM : NGHTTP2_FLAG_NONE, stream,
                                        nullptr, nv.data(), nv.size(), nullptr);
    flush();
    return id;
  }
  void data(int32_t stream, const std::string& bytes, bool end_stream = false) {
    // DATA frames by hand: nghttp2 needs a data provider for these, and the
    // bytes are the same.
    out_ += rawFrame(NGHTTP2_DATA, end_stream ? NGHTTP2_FLAG_END_STREAM : 0, static_cast<uint32_t>(stream), bytes);
  }
  void reset(int32_t stream, uint32_t code = NGHTTP2_CANCEL) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, code);
    flush();
  }
  void ping() {
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
    flush();
  }
  void windowUpdate(int32_t stream, int32_t n) {
    nghttp2_submit_window_update(session_, NGHTTP2_FLAG_NONE, stream, n);
    flush();
  }
  void settings(uint32_t window) {
    nghttp2_settings_entry s[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, s, 1);
    flush();
  }
  void goaway() {
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
    flush();
  }
  void raw(const std::string& bytes) { out_ += bytes; }
  void wait() { out_ += kWait; }
  const std::string& bytes() const { return out_; }

 private:
  void flush() {
    const uint8_t* p;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(session_, &p)) > 0) out_.append(reinterpret_cast<const char*>(p), n);
  }
  nghttp2_session* session_;
  std::string out_;
};

void write(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const std::string msg = grpcMessage(std::string("\x0a\x05hello", 7));

  {  // Unary, relayed outer -> inner -> refused port: UNAVAILABLE back the whole way.
    Script s;
    int32_t id = s.headers(grpcRequest("/sluice.example.Echo/Unary", {{"grpc-timeout", "5S"}}));
    s.data(id, msg, true);
    write(dir, "unary", s.bytes());
  }
  {  // No route on the inner listener: UNIMPLEMENTED from upstream.
    Script s;
    int32_t id = s.headers(grpcRequest("/sluice.example.Echo/ServerStream"));
    s.data(id, msg, true);
    write(dir, "server_stream_unimplemented", s.bytes());
  }
  {  // Client streaming across pauses, ending with client trailers.
    Script s;
    int32_t id = s.headers(grpcRequest("/sluice.example.Echo/ClientStream", {{"x-debug", "1"}}));
    s.data(id, msg);
    s.wait();
    s.data(id, msg + msg);
    s.wait();
    s.headers({{"x-client-trailer", "t"}}, true, id);
    write(dir, "client_stream", s.bytes());
  }
  {  // Bidi cancelled by the client once the upstream call is running.
    Script s;
    int32_t id = s.headers(grpcRequest("/sluice.example.Echo/Bidi"));
    s.data(id, msg);
    s.wait();
    s.data(id, msg);
    s.wait();
    s.reset(id);
    write(dir, "bidi_cancel", s.bytes());
  }
  {  // A cluster that refuses connections, with retries (1 ms backoff).
    Script s;
    int32_t id = s.headers(grpcRequest("/fuzz.Refused/Call", {{"x-api-key", "fuzz-key"}}));
    s.data(id, msg, true);
    write(dir, "refused_retry", s.bytes());
  }
  {  // auth: no key, wrong key, right key (then rate_limit keyed on the principal).
    Script s;
    int32_t a = s.headers(grpcRequest("/sluice.example.Other/Unary"));
    s.data(a, msg, true);
    int32_t b = s.headers(grpcRequest("/sluice.example.Other/Unary", {{"x-api-key", "wrong"}}));
    s.data(b, msg, true);
    int32_t c = s.headers(grpcRequest("/sluice.example.Other/Unary",
                                      {{"x-api-key", "fuzz-key"}, {"x-principal", "forged"}}));
    s.data(c, msg + msg + msg, true);
    write(dir, "auth_keys", s.bytes());
  }
  {  // Metadata: -bin values, x-forwarded-for, removed and set keys.
    Script s;
    int32_t id = s.headers(grpcRequest("/sluice.example.Echo/Unary",
                                       {{"x-trace-bin", "AAECAw=="}, {"x-bad-bin", "!!notbase64"},
                                        {"x-forwarded-for", "10.0.0.1"}, {"x-debug", "yes"},
                                        {"x-tenant", "other"}, {"grpc-accept-encoding", "identity"}}));
    s.data(id, msg, true);
    write(dir, "metadata", s.bytes());
  }
  {  // The gateway's own answers: 405, 415, malformed path.
    Script s;
    Headers get = grpcRequest("/sluice.example.Echo/Unary");
    get[0].second = "GET";
    s.headers(get, true);
    Headers text = grpcRequest("/sluice.example.Echo/Unary");
    text[4].second = "text/plain";
    s.headers(text, true);
    int32_t id = s.headers(grpcRequest("no-slash"));
    s.data(id, msg, true);
    write(dir, "local_replies", s.bytes());
  }
  {  // Messages over the limits: inner (1 KiB), outer (64 KiB, announced only).
    Script s;
    int32_t a = s.headers(grpcRequest("/sluice.example.Echo/Bidi"));
    s.data(a, grpcMessage(std::string(2000, 'x')), true);
    int32_t b = s.headers(grpcRequest("/sluice.example.Echo/Bidi"));
    s.data(b, std::string("\x00\x00\x02\x00\x00", 5) + "short", true);
    write(dir, "message_limits", s.bytes());
  }
  {  // Malformed gRPC framing: a bad flags byte; a stream ending mid-message.
    Script s;
    int32_t a = s.headers(grpcRequest("/sluice.example.Echo/Unary"));
    s.data(a, grpcMessage("abc", 2), true);
    int32_t b = s.headers(grpcRequest("/sluice.example.Echo/Unary"));
    s.data(b, msg.substr(0, 6), true);
    write(dir, "bad_framing", s.bytes());
  }
  {  // Deadlines: 1 ms (expires), then an unparsable one.
    Script s;
    int32_t a = s.headers(grpcRequest("/sluice.example.Echo/Bidi", {{"grpc-timeout", "1m"}}));
    s.data(a, msg);
    int32_t b = s.headers(grpcRequest("/sluice.example.Echo/Unary", {{"grpc-timeout", "12x"}}));
    s.data(b, msg, true);
    write(dir, "deadlines", s.bytes());
  }
  {  // More streams than max_concurrent_streams (16).
    Script s;
    for (int i = 0; i < 20; ++i) s.headers(grpcRequest("/sluice.example.Echo/Bidi"));
    write(dir, "too_many_streams", s.bytes());
  }
  {  // Rapid reset: open and cancel past rst_stream_burst (20).
    Script s;
    for (int i = 0; i < 30; ++i) {
      int32_t id = s.headers(grpcRequest("/sluice.example.Echo/Bidi"));
      s.reset(id);
    }
    write(dir, "rapid_reset", s.bytes());
  }
  {  // Control frames: PINGs, SETTINGS, window updates, then GOAWAY.
    Script s;
    int32_t id = s.headers(grpcRequest("/sluice.example.Echo/Bidi"));
    for (int i = 0; i < 5; ++i) s.ping();
    s.settings(65535);
    s.windowUpdate(0, 1 << 20);
    s.windowUpdate(id, 1000);
    s.data(id, msg);
    s.wait();
    s.settings(0);
    s.windowUpdate(id, 1);
    s.goaway();
    write(dir, "control_frames", s.bytes());
  }
  {  // Request headers past max_header_list_bytes (8 KiB).
    Script s;
    int32_t id = s.headers(grpcRequest("/sluice.example.Echo/Unary", {{"x-big", std::string(9000, 'b')}}));
    s.data(id, msg, true);
    write(dir, "big_headers", s.bytes());
  }
  {  // Protocol errors: DATA on stream 0, then a frame far over the frame size.
    Script s;
    s.raw(rawFrame(NGHTTP2_DATA, 0, 0, "xx"));
    write(dir, "data_on_stream_0", s.bytes());
    Script t;
    t.raw(rawFrame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, std::string("\xff\xff\xff\xff", 4)));
    write(dir, "bad_hpack", t.bytes());
  }
  {  // Half-close from the client with the response still to come, then more DATA (a stream error).
    Script s;
    int32_t id = s.headers(grpcRequest("/sluice.example.Echo/ClientStream"));
    s.data(id, msg, true);
    s.wait();
    s.data(id, msg);
    write(dir, "data_after_end", s.bytes());
  }
  return 0;
}
