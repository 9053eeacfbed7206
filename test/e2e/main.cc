// The e2e test runner. Besides Catch2's main, it prints the log of every
// gateway still running when an assertion fails, once per gateway, so a
// failure report shows what the gateway thought happened.
//
// Environment: SLUICE_E2E_BINARY (another gateway build), SLUICE_E2E_LOG_LEVEL
// (e.g. trace), SLUICE_E2E_VERBOSE (print every gateway's whole log),
// SLUICE_E2E_KEEP_TMP (keep configs and logs under $TMPDIR/sluice-e2e-*).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <csignal>
#include <iostream>
#include <string>

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

  // The log is read now, while the gateway still runs, but printed when the
  // section ends: after the reporter has printed the failure it explains.
  bool assertionEnded(const Catch::AssertionStats& stats) override {
    if (stats.assertionResult.isOk()) return true;
    sluice::test::GatewayProcess::forEachLive([this](sluice::test::GatewayProcess& gateway) {
      if (gateway.logsDumped) return;
      gateway.logsDumped = true;
      pending_ += "---- log of gateway pid " + std::to_string(gateway.pid()) +
                  " (tail), for the failure above ----\n" + gateway.logs(kLogTailBytes) +
                  "---- end of gateway log ----\n";
    });
    return true;
  }

  void sectionEnded(const Catch::SectionStats&) override { flush(); }
  void testCaseEnded(const Catch::TestCaseStats&) override { flush(); }

 private:
  void flush() {
    if (pending_.empty()) return;
    std::cout << pending_ << std::flush;
    pending_.clear();
  }

  std::string pending_;
};

}  // namespace

CATCH_REGISTER_LISTENER(GatewayLogOnFailure)
