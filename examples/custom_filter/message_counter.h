// message_counter: an example filter written outside Sluice, by subclassing.
//
// It shows the four things a custom filter usually needs:
//  - its own JSON config, validated at load with errors naming JSON paths;
//  - looking at messages: it counts request and response messages, refuses a
//    request message containing a configured byte string, and ends a call
//    mid-stream with sendLocalReply() after too many request messages;
//  - leaving messages out of a stream (DropMessage): request messages the
//    backend, and response messages the client, never sees;
//  - changing the response: the counts go back to the client as trailers;
//  - asynchronous work: with "hold_ms" every call is paused at its headers
//    (StopIteration) and resumed from a timer on the stream's own loop, as a
//    filter waiting for an external check would; "hold_response_ms" does the
//    same to the response, at its headers (the gateway stops reading from the
//    backend while the held response messages pile up).
//
// Config ("config" of a filter entry named "message_counter"):
//   {"max_request_messages": 100, "reject_payload_containing": "forbidden",
//    "drop_request_containing": "", "drop_response_containing": "",
//    "hold_ms": 0, "hold_response_ms": 0, "trailer_prefix": "x-message-count"}
// The response count in the trailer leaves out dropped messages.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/filter.h"
#include "core/registry.h"
#include "core/timer.h"

namespace sluice {
class Counter;
}

namespace example::message_counter {

struct Config {
  std::optional<uint64_t> max_request_messages;
  std::string reject_payload_containing;  // empty: no check
  std::string drop_request_containing;    // empty: none dropped
  std::string drop_response_containing;
  uint64_t hold_ms = 0;
  uint64_t hold_response_ms = 0;
  std::string trailer_prefix = "x-message-count";
};

class Filter : public sluice::Filter {
 public:
  explicit Filter(const Config& config) : config_(config) {}

  sluice::FilterStatus onRequestHeaders(sluice::StreamContext& ctx) override;
  sluice::FilterStatus onRequestMessage(sluice::StreamContext& ctx, sluice::Message& message) override;
  sluice::FilterStatus onResponseHeaders(sluice::StreamContext& ctx) override;
  sluice::FilterStatus onResponseMessage(sluice::StreamContext& ctx, sluice::Message& message) override;
  sluice::FilterStatus onResponseTrailers(sluice::StreamContext& ctx) override;
  void onStreamDone(sluice::StreamContext& ctx) override;

 private:
  const Config& config_;
  uint64_t request_messages_ = 0;
  uint64_t response_messages_ = 0;
  // The pending resume; destroying it (stream ended first) cancels it.
  sluice::TimerPtr hold_timer_;
  sluice::TimerPtr response_hold_timer_;
  // This worker's count of dropped messages (filter.messages_dropped
  // in /stats), looked up at the call's first drop, not per message.
  sluice::Counter& dropped(sluice::StreamContext& ctx);
  sluice::Counter* dropped_ = nullptr;
};

// Registered under the name the config uses: registry.add("message_counter", ...).
class ConfigFactory : public sluice::FilterConfigFactory {
 public:
  sluice::FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                        sluice::FilterBuildContext& ctx) const override;
};

}  // namespace example::message_counter
