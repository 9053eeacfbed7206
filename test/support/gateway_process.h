// Runs the real gateway binary (SLUICE_BINARY_PATH) for an end-to-end test.
//
// A GatewayProcess owns one child process and a temp directory holding its
// config, its ready file and its log (stdout and stderr together). The
// constructor returns once the gateway has written its ready file, so every
// listener is bound and port() is known; it throws std::runtime_error (with
// the log) when the gateway exits or is not ready within the timeout. stop()
// or the destructor ends it: SIGTERM, then SIGKILL after 10 s.
//
// Create it on the test's main thread: the child is told to die with the
// thread that forked it (PR_SET_PDEATHSIG), so a crashed test run leaves no
// gateway behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sluice::test {

// Where a run of the binary ended: the exit code, or 128 + signal number when
// a signal killed it, or -1 when it had to be killed after the timeout.
struct ProcessResult {
  int exitCode = -1;
  std::string output;       // stdout, then stderr
  std::string errorOutput;  // stderr alone
  bool timedOut = false;
};

// build/sluice plus the test-only filters of test/gateway/ (test_faults).
std::string testGatewayBinary();

// Runs `sluice args...` (or `binary args...`) to completion (at most `timeout`).
ProcessResult runSluice(const std::vector<std::string>& args,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10),
                        const std::vector<std::string>& extraEnv = {}, const std::string& binary = {});
// `sluice --validate FILE` with `configJson` written to FILE.
// `extraEnv`: "NAME=value" entries added to the gateway's environment.
ProcessResult runValidate(const std::string& configJson, const std::vector<std::string>& extraEnv = {},
                          const std::string& binary = {});

class GatewayProcess {
 public:
  struct Options {
    std::string logLevel = "debug";
    std::chrono::milliseconds readyTimeout{10'000};
    std::vector<std::string> extraArgs;
    // "NAME=value" entries added to (or replacing in) the gateway's environment.
    std::vector<std::string> extraEnv;
    // The gateway binary; empty: build/sluice (or SLUICE_E2E_BINARY).
    std::string binary;
  };

  explicit GatewayProcess(const std::string& configJson) : GatewayProcess(configJson, Options{}) {}
  explicit GatewayProcess(const char* configJson) : GatewayProcess(std::string(configJson)) {}
  GatewayProcess(const std::string& configJson, Options options);
  explicit GatewayProcess(const nlohmann::json& config) : GatewayProcess(config.dump(2)) {}
  GatewayProcess(const nlohmann::json& config, Options options)
      : GatewayProcess(config.dump(2), std::move(options)) {}
  ~GatewayProcess();
  GatewayProcess(const GatewayProcess&) = delete;
  GatewayProcess& operator=(const GatewayProcess&) = delete;

  // The bound port / "127.0.0.1:port" of a listener, from the ready file.
  // Throws std::out_of_range for a listener the gateway did not report.
  int port(const std::string& listener = "grpc") const;
  std::string address(const std::string& listener = "grpc") const;

  // "127.0.0.1:port" of the admin endpoint; throws when the config has none.
  std::string adminAddress() const {
    if (adminAddress_.empty()) throw std::out_of_range("the gateway reported no admin address");
    return adminAddress_;
  }
  // The config file the gateway runs: rewrite it, then signal(SIGHUP) to reload.
  const std::string& configPath() const { return configPath_; }
  pid_t pid() const { return pid_; }
  bool running();
  // Resident set size from /proc/PID/status (VmRSS), -1 when unavailable.
  long rssKiB() const;

  // SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit code (see
  // ProcessResult); later calls return the same value.
  int stop();
  // Sends a signal without waiting (e.g. to test draining).
  void signal(int signalNumber);

  // Everything the gateway wrote so far; tailBytes > 0 keeps only the end.
  std::string logs(size_t tailBytes = 0) const;
  const std::string& logPath() const { return logPath_; }

  // Calls fn for every gateway still alive in this test process; the e2e
  // main uses it to print logs when an assertion fails.
  static void forEachLive(const std::function<void(GatewayProcess&)>& fn);
  // Set once this gateway's logs were printed, so they are printed once.
  bool logsDumped = false;

 private:
  std::optional<int> reap(bool block);

  std::string dir_;
  std::string configPath_;
  std::string readyPath_;
  std::string logPath_;
  pid_t pid_ = -1;
  std::optional<int> exitCode_;
  bool stop_called_ = false;  // the test stopped it (and judges the exit code itself)
  std::map<std::string, std::string> listeners_;
  std::string adminAddress_;
};

}  // namespace sluice::test
