// Fuzz entry points: the logic of every libFuzzer target in fuzz/, callable
// from the fuzzers (fuzz/<name>_fuzz.cc, one line each) and from the unit test
// binary (test/unit/fuzz_regression_test.cc replays fuzz/regressions/<name>/
// and fuzz/corpus/<name>/ through them).
//
// Each function takes one input, must return normally for any input, and
// aborts with a message on stderr when an invariant is broken (the fuzzer
// reports that as a crash and keeps the input). The functions keep no state
// between calls: an input reproduces on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice {

// GrpcFrameDecoder: the input's first bytes choose the message limit, the chunk
// sizes and when the sink stops; the rest is DATA. Checked against a
// reference decoder run on the whole buffer at once.
void fuzzFrameDecoder(const uint8_t* data, size_t size);

// loadConfig() with every built-in filter registered: a config or errors, each
// naming a JSON pointer, never both, never a crash; loading twice agrees.
void fuzzConfig(const uint8_t* data, size_t size);

// grpc-timeout (parseTimeout / formatTimeout) and grpc-message
// (percentEncode / percentDecode) round trips.
void fuzzGrpcHeaders(const uint8_t* data, size_t size);

// A whole downstream session: a real Worker (listener on 127.0.0.1:0) is fed
// the HTTP/2 client preface followed by the input over a loopback connection,
// and runs until the connection closes or goes quiet. Calls are proxied to a
// second listener of the same worker (so the upstream client path runs too),
// which answers them itself or proxies them to a port that refuses. After
// the client hangs up, no stream may be left open.
void fuzzDownstreamSession(const uint8_t* data, size_t size);

// grpc.health.v1 HealthCheckRequest and HealthCheckResponse as the gateway
// reads them (codecs/grpc/health_messages.h): never a crash or a read past
// the input; what is read survives being encoded and read again.
void fuzzHealthMessages(const uint8_t* data, size_t size);

// Target name ("frame_decoder", "config", "grpc_headers", "session",
// "health_messages") -> entry
// point; nullptr for an unknown name.
using FuzzEntryPoint = void (*)(const uint8_t*, size_t);
FuzzEntryPoint fuzzEntryPoint(std::string_view target);

}  // namespace sluice
