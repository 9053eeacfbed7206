// The e2e test runner. Besides Catch2's main, it prints the log of every
// gateway still running when an assertion fails, once per gateway, so a
// failure report shows what the gateway thought happened.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>

#include "test/support/gateway_process.h"

namespace {

constexpr size_t kLogTailBytes = 16 * 1024;

class GatewayLogOnFailure : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testRunStarting(const Catch::TestRunInfo&) override {
    // Raw sockets write to peers that may have hung up; report, don't die.
    std::signal(SIGPIPE, SIG_IGN);
  }

  bool assertionEnded(const Catch::AssertionStats& stats) override {
    if (stats.assertionResult.isOk()) return true;
    sluice::test::GatewayProcess::forEachLive([](sluice::test::GatewayProcess& gateway) {
      if (gateway.logsDumped) return;
      gateway.logsDumped = true;
      std::fprintf(stderr, "---- gateway pid %d log (tail) ----\n%s---- end of gateway log ----\n",
                   static_cast<int>(gateway.pid()), gateway.logs(kLogTailBytes).c_str());
    });
    return true;
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(GatewayLogOnFailure)
