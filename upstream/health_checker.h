// HealthChecker: active gRPC health checking of one endpoint
// (grpc.health.v1.Health/Check), as gRPC load balancers and Envoy do it.
//
// Owned by its Endpoint, on the one worker that checks (upstream/health_role.h):
// every result also goes to the other workers' endpoints. Every interval it
// opens one call on the endpoint's pool (outside the circuit breakers), and
// counts consecutive successes (grpc-status 0 and SERVING) and failures
// (anything else, or no answer within the timeout) against the thresholds to
// flip the endpoint's health.
#pragma once

#include <memory>
#include <string>

#include "codecs/grpc/frame_decoder.h"
#include "core/cluster_config.h"
#include "core/timer.h"
#include "upstream/upstream_stream.h"

namespace sluice {

class Dispatcher;
class Endpoint;

class HealthChecker final : public UpstreamCallbacks, public MessageSink {
 public:
  HealthChecker(Dispatcher& dispatcher, Endpoint& endpoint, const HealthCheckConfig& config);
  ~HealthChecker() override;

  void start();
  // The endpoint moved to another backend: past results, and a check still
  // out to the old one, count for nothing; the new one is checked now.
  void restart();

  // ---- UpstreamCallbacks ----
  void onUpstreamHeaders(HeaderMap&& headers, bool end_stream) override;
  void onUpstreamData(const uint8_t* data, size_t len) override;
  void onUpstreamEnd(HeaderMap&& trailers) override;
  void onUpstreamReset(UpstreamReset reset) override { finish(false, reset.detail); }
  void onUpstreamRequestWatermark(bool) override {}
  // ---- MessageSink ----
  bool onMessage(Message&& message) override;

 private:
  void runCheck();
  void finish(bool ok, const std::string& why);

  Dispatcher& dispatcher_;
  Endpoint& endpoint_;
  const HealthCheckConfig& config_;
  TimerPtr interval_timer_;
  TimerPtr timeout_timer_;
  std::unique_ptr<UpstreamStream> stream_;  // kept until the next check: never freed in its own callback
  GrpcFrameDecoder decoder_;
  bool in_flight_ = false;
  bool serving_ = false;
  uint32_t successes_ = 0;
  uint32_t failures_ = 0;
};

}  // namespace sluice
