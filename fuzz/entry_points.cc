// The stateless fuzz entry points (frame decoder, config loader, gRPC header
// helpers) and the name -> entry point table. The session entry point, which
// needs sockets and a worker, is in session_entry_point.cc.
#include "fuzz/fuzz_entry_points.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "codecs/grpc/frame_decoder.h"
#include "codecs/grpc/grpc_headers.h"
#include "core/config.h"
#include "core/config_errors.h"
#include "core/registry.h"
#include "filters/builtin.h"
#include "fuzz/fuzz_check.h"

namespace sluice {
namespace {

// ---- GrpcFrameDecoder ------------------------------------------------------

// What the decoder must produce for a whole buffer: the messages, then either
// nothing left, a partial message (`leftover` bytes), or an error found when
// the prefix ending at `error_offset` was complete.
struct ReferenceResult {
  std::vector<Message> messages;
  std::vector<size_t> message_ends;  // offset just past each message
  size_t leftover = 0;
  std::optional<StatusCode> error;
  size_t error_offset = 0;
};

ReferenceResult referenceDecode(std::string_view data, uint32_t limit) {
  ReferenceResult r;
  size_t pos = 0;
  while (data.size() - pos >= kGrpcPrefixBytes) {
    auto flags = static_cast<uint8_t>(data[pos]);
    uint32_t len = 0;
    for (size_t i = 1; i < kGrpcPrefixBytes; ++i) len = (len << 8) | static_cast<uint8_t>(data[pos + i]);
    if (flags > 1) {
      r.error = StatusCode::Internal;
    } else if (len > limit) {
      r.error = StatusCode::ResourceExhausted;
    }
    if (r.error) {
      r.error_offset = pos + kGrpcPrefixBytes;
      return r;
    }
    if (data.size() - pos - kGrpcPrefixBytes < len) break;
    Message m;
    m.compressed = flags == 1;
    m.payload.assign(data.substr(pos + kGrpcPrefixBytes, len));
    pos += kGrpcPrefixBytes + len;
    r.messages.push_back(std::move(m));
    r.message_ends.push_back(pos);
  }
  r.leftover = data.size() - pos;
  return r;
}

class RecordingSink : public MessageSink {
 public:
  RecordingSink(const GrpcFrameDecoder& decoder, uint32_t limit, size_t stop_after)
      : decoder_(decoder), limit_(limit), stop_after_(stop_after) {}

  bool onMessage(Message&& message) override {
    FUZZ_CHECK(message.payload.size() <= limit_, "a message of %zu bytes passed the limit of %u",
               message.payload.size(), limit_);
    // The decoder resets before calling out: nothing of this message is still buffered.
    FUZZ_CHECK(decoder_.bufferedBytes() == 0, "bufferedBytes() is %zu inside onMessage",
               decoder_.bufferedBytes());
    FUZZ_CHECK(!stopped_, "onMessage after the sink returned false");
    messages.push_back(std::move(message));
    if (stop_after_ != 0 && messages.size() == stop_after_) stopped_ = true;
    return !stopped_;
  }

  std::vector<Message> messages;

 private:
  const GrpcFrameDecoder& decoder_;
  uint32_t limit_;
  size_t stop_after_;
  bool stopped_ = false;
};

void fuzzFrameDecoderImpl(const uint8_t* bytes, size_t size) {
  // Layout: limit (2 bytes, or "no limit" with the top bit of the first),
  // stop_after (1 byte, 0 = never), four chunk sizes, then the DATA bytes.
  constexpr size_t kHeader = 7;
  if (size < kHeader) return;
  uint32_t limit = (uint32_t{bytes[0]} << 8) | bytes[1];
  if (bytes[0] & 0x80) limit = std::numeric_limits<uint32_t>::max();
  const size_t stop_after = bytes[2];
  const size_t chunk_sizes[4] = {size_t{bytes[3]} + 1, size_t{bytes[4]} + 1, size_t{bytes[5]} + 1,
                                 size_t{bytes[6]} + 1};
  std::string_view data(reinterpret_cast<const char*>(bytes + kHeader), size - kHeader);

  const ReferenceResult ref = referenceDecode(data, limit);
  // Where the reference stops because the sink said so (if it does).
  const bool ref_stops = stop_after != 0 && ref.messages.size() >= stop_after;

  GrpcFrameDecoder decoder(limit);
  RecordingSink sink(decoder, limit, stop_after);
  size_t pos = 0;
  size_t chunk = 0;
  std::optional<StatusCode> error;
  while (pos < data.size()) {
    size_t n = std::min(chunk_sizes[chunk++ % 4], data.size() - pos);
    Status s = decoder.decode(data.substr(pos, n), sink);
    pos += n;
    if (error) {
      FUZZ_CHECK(s.code() == *error, "decode() after a failure returned %d, first error %d",
                 static_cast<int>(s.code()), static_cast<int>(*error));
      continue;
    }
    if (!s.isOk()) {
      error = s.code();
      FUZZ_CHECK(decoder.failed(), "decode() returned an error but failed() is false");
      FUZZ_CHECK(ref.error && !ref_stops, "decode() failed (%d: %s) where the reference did not",
                 static_cast<int>(s.code()), s.message().c_str());
      FUZZ_CHECK(*ref.error == s.code(), "decode() failed with %d, the reference with %d",
                 static_cast<int>(s.code()), static_cast<int>(*ref.error));
      // The error belongs to the chunk that completed the bad prefix.
      FUZZ_CHECK(pos - n < ref.error_offset && ref.error_offset <= pos,
                 "error reported in chunk [%zu, %zu), bad prefix ends at %zu", pos - n, pos, ref.error_offset);
    } else {
      FUZZ_CHECK(!decoder.failed(), "decode() returned OK but failed() is true");
    }
  }

  // The same messages, in order, as the reference (up to where the sink stopped).
  size_t expected = ref_stops ? stop_after : ref.messages.size();
  FUZZ_CHECK(sink.messages.size() == expected, "%zu messages decoded, %zu expected", sink.messages.size(),
             expected);
  for (size_t i = 0; i < expected; ++i) {
    FUZZ_CHECK(sink.messages[i].compressed == ref.messages[i].compressed &&
                   sink.messages[i].payload == ref.messages[i].payload,
               "message %zu differs from the reference", i);
  }

  Status fin = decoder.finish();
  if (ref.error && !ref_stops) {
    FUZZ_CHECK(error.has_value(), "the reference failed, the decoder never did");
    FUZZ_CHECK(fin.code() == *error, "finish() returned %d after failing with %d", static_cast<int>(fin.code()),
               static_cast<int>(*error));
    // Failed for good: more bytes change nothing.
    Status again = decoder.decode(std::string_view("\0\0\0\0\0", 5), sink);
    FUZZ_CHECK(again.code() == *error && sink.messages.size() == expected, "a failed decoder decoded again");
  } else if (ref_stops) {
    FUZZ_CHECK(fin.isOk(), "finish() after the sink stopped returned %s", fin.toString().c_str());
    Status again = decoder.decode(std::string_view("\0\0\0\0\0", 5), sink);
    FUZZ_CHECK(again.isOk() && sink.messages.size() == expected, "a stopped decoder decoded again");
  } else {
    FUZZ_CHECK(decoder.bufferedBytes() == ref.leftover, "bufferedBytes() is %zu, %zu bytes are left over",
               decoder.bufferedBytes(), ref.leftover);
    FUZZ_CHECK(fin.isOk() == (ref.leftover == 0), "finish() says %s with %zu bytes left over",
               fin.toString().c_str(), ref.leftover);
    if (!fin.isOk()) FUZZ_CHECK(fin.code() == StatusCode::Internal, "finish() failed with %d", static_cast<int>(fin.code()));
  }
}

// ---- Config loader ---------------------------------------------------------

void fuzzConfigImpl(const uint8_t* bytes, size_t size) {
  std::string text(reinterpret_cast<const char*>(bytes), size);
  // The loader reads the files a config names (JWKS, API keys) and checks
  // access_log directories. A device or pseudo file could block or never
  // end; that is the operator's own doing, not a bug worth a crash report.
  for (const char* avoid : {"/dev", "/proc", "/sys"}) {
    if (text.find(avoid) != std::string::npos) return;
  }
  FilterRegistry registry;
  registerBuiltinFilters(registry);

  ConfigErrors errors;
  GatewayConfigConstPtr config = loadConfig(text, registry, errors);
  FUZZ_CHECK((config != nullptr) != !errors.empty(), "loadConfig returned %s with %zu errors",
             config ? "a config" : "nullptr", errors.size());
  for (const ConfigError& e : errors.all()) {
    FUZZ_CHECK(e.path.empty() || e.path[0] == '/', "error path \"%s\" is not a JSON pointer", e.path.c_str());
    FUZZ_CHECK(!e.message.empty(), "an empty error message at \"%s\"", e.path.c_str());
  }
  (void)errors.format();
  if (config) {
    FUZZ_CHECK(!config->listeners.empty(), "a config without listeners was accepted");
    for (const ListenerConfig& l : config->listeners) {
      FUZZ_CHECK(!l.filters.empty(), "listener \"%s\" has no filters", l.name.c_str());
      for (const FilterEntryConfig& f : l.filters) {
        FUZZ_CHECK(f.factory != nullptr, "filter \"%s\" has no factory", f.name.c_str());
      }
      FUZZ_CHECK(registry.find(l.filters.back().name)->isTerminal(), "listener \"%s\" does not end in a terminal filter",
                 l.name.c_str());
      FUZZ_CHECK(l.max_message_bytes >= 1 && l.max_message_bytes <= (1u << 30),
                 "max_message_bytes %u outside [1, 1 GiB]", l.max_message_bytes);
    }
  }

  // Loading is deterministic: the same text gives the same errors.
  ConfigErrors again;
  GatewayConfigConstPtr config2 = loadConfig(text, registry, again);
  FUZZ_CHECK((config2 != nullptr) == (config != nullptr) && again.format() == errors.format(),
             "loading the same config twice disagreed:\n%s---\n%s", errors.format().c_str(), again.format().c_str());
}

// ---- grpc-timeout, grpc-message, -bin values -------------------------------

void checkTimeoutRoundTrip(std::chrono::nanoseconds t) {
  std::string text = grpc_headers::formatTimeout(t);
  FUZZ_CHECK(text.size() >= 2 && text.size() <= 9, "formatTimeout(%lld) = \"%s\": wrong length",
             static_cast<long long>(t.count()), text.c_str());
  auto back = grpc_headers::parseTimeout(text);
  FUZZ_CHECK(back.has_value(), "formatTimeout(%lld) = \"%s\" does not parse", static_cast<long long>(t.count()),
             text.c_str());
  if (t.count() <= 0) {
    FUZZ_CHECK(back->count() > 0, "an expired timeout formats as \"%s\"", text.c_str());
    return;
  }
  FUZZ_CHECK(*back >= t, "formatTimeout(%lld) = \"%s\" = %lld ns is shorter", static_cast<long long>(t.count()),
             text.c_str(), static_cast<long long>(back->count()));
  // Rounded up by less than one of the unit chosen (the saturated maximum aside).
  const int64_t unit_ns[] = {1, 1000, 1000000, 1000000000, 60000000000, 3600000000000};
  size_t u = std::string("numSMH").find(text.back());
  FUZZ_CHECK(u != std::string::npos, "unknown unit in \"%s\"", text.c_str());
  if (back->count() != std::numeric_limits<int64_t>::max()) {
    FUZZ_CHECK(back->count() - t.count() < unit_ns[u], "formatTimeout(%lld) = \"%s\" rounds up by a unit or more",
               static_cast<long long>(t.count()), text.c_str());
  }
  // Exact when it fits in 8 digits of nanoseconds.
  if (t.count() <= 99999999) FUZZ_CHECK(*back == t, "formatTimeout(%lld) = \"%s\" is not exact",
                                        static_cast<long long>(t.count()), text.c_str());

  // The coarse form the proxy sends upstream: parses, never earlier, and
  // under 1% later.
  const std::string coarse = grpc_headers::formatTimeoutCoarse(t);
  auto coarse_back = grpc_headers::parseTimeout(coarse);
  FUZZ_CHECK(coarse_back.has_value() && *coarse_back >= t, "formatTimeoutCoarse(%lld) = \"%s\" is shorter or bad",
             static_cast<long long>(t.count()), coarse.c_str());
  if (coarse_back->count() != std::numeric_limits<int64_t>::max()) {
    FUZZ_CHECK((coarse_back->count() - t.count()) < t.count() / 100 + 1,
               "formatTimeoutCoarse(%lld) = \"%s\" rounds up by 1%% or more", static_cast<long long>(t.count()),
               coarse.c_str());
  }
}

void fuzzGrpcHeadersImpl(const uint8_t* bytes, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(bytes), size);

  // grpc-timeout as a peer sends it.
  if (auto t = grpc_headers::parseTimeout(input)) {
    FUZZ_CHECK(t->count() >= 0, "parseTimeout(\"%.*s\") is negative", static_cast<int>(size), input.data());
    checkTimeoutRoundTrip(*t);
  }
  // Any duration we might forward (the time left of a deadline).
  if (size >= 8) {
    int64_t ns = 0;
    std::memcpy(&ns, bytes, sizeof(ns));
    checkTimeoutRoundTrip(std::chrono::nanoseconds(ns));
  }

  // grpc-message: what we encode decodes back, and is printable ASCII.
  std::string encoded = grpc_headers::percentEncode(input);
  for (char c : encoded) {
    FUZZ_CHECK(c >= 0x20 && c <= 0x7E, "percentEncode produced byte 0x%02x", static_cast<unsigned char>(c));
  }
  FUZZ_CHECK(grpc_headers::percentDecode(encoded) == input, "percentDecode(percentEncode(x)) != x");
  // Decoding what a peer sent (lenient) never grows it.
  FUZZ_CHECK(grpc_headers::percentDecode(input).size() <= input.size(), "percentDecode grew its input");

  // grpc-status.
  if (auto code = grpc_headers::parseGrpcStatus(input)) {
    FUZZ_CHECK(static_cast<int>(*code) <= 16, "parseGrpcStatus gave %d", static_cast<int>(*code));
  }

  // -bin metadata: base64 round trip, and decoding arbitrary text is safe.
  std::string b64 = grpc_headers::base64Encode(input);
  auto decoded = grpc_headers::base64Decode(b64);
  FUZZ_CHECK(decoded && *decoded == input, "base64Decode(base64Encode(x)) != x");
  if (auto d = grpc_headers::base64Decode(input)) {
    FUZZ_CHECK(d->size() <= input.size(), "base64Decode grew its input");
  }
}

}  // namespace

void fuzzFrameDecoder(const uint8_t* data, size_t size) { fuzzFrameDecoderImpl(data, size); }
void fuzzConfig(const uint8_t* data, size_t size) { fuzzConfigImpl(data, size); }
void fuzzGrpcHeaders(const uint8_t* data, size_t size) { fuzzGrpcHeadersImpl(data, size); }

FuzzEntryPoint fuzzEntryPoint(std::string_view target) {
  if (target == "frame_decoder") return fuzzFrameDecoder;
  if (target == "config") return fuzzConfig;
  if (target == "grpc_headers") return fuzzGrpcHeaders;
  if (target == "session") return fuzzDownstreamSession;
  if (target == "health_messages") return fuzzHealthMessages;
  return nullptr;
}

}  // namespace sluice
