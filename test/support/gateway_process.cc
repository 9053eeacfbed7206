#include "test/support/gateway_process.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

#ifndef SLUICE_TEST_GATEWAY_PATH
#error "SLUICE_TEST_GATEWAY_PATH must name the test gateway binary (test/CMakeLists.txt defines it)"
#endif
#ifndef SLUICE_BINARY_PATH
#error "SLUICE_BINARY_PATH must name the gateway binary (test/CMakeLists.txt defines it)"
#endif

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

// SLUICE_E2E_BINARY runs the suite against another build of the gateway
// without recompiling the tests.
std::string binaryPath() {
  const char* override = std::getenv("SLUICE_E2E_BINARY");
  return override && *override ? override : SLUICE_BINARY_PATH;
}

std::string makeTempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "sluice-e2e-XXXXXX").string();
  if (!mkdtemp(pattern.data())) {
    throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  }
  return pattern;
}

void removeTempDir(const std::string& dir) {
  // SLUICE_E2E_KEEP_TMP keeps configs and logs around for a post-mortem.
  if (dir.empty() || std::getenv("SLUICE_E2E_KEEP_TMP")) return;
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

void writeFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

int exitCodeOf(int waitStatus) {
  if (WIFEXITED(waitStatus)) return WEXITSTATUS(waitStatus);
  if (WIFSIGNALED(waitStatus)) return 128 + WTERMSIG(waitStatus);
  return -1;
}

// fork + exec with stdout going to `outputPath` and stderr to `errorPath`
// (the same file when they are equal, interleaved as written). Everything
// the child needs is prepared before fork: the test process has grpc++
// threads, so the child may only make async-signal-safe calls before exec.
// `extraEnv` ("NAME=value") is added to this process's environment for the child.
pid_t spawn(const std::vector<std::string>& args, const std::string& outputPath,
            const std::string& errorPath, const std::vector<std::string>& extraEnv = {}) {
  std::vector<char*> argv;
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    bool replaced = std::any_of(extraEnv.begin(), extraEnv.end(), [&](const std::string& extra) {
      return entry.substr(0, entry.find('=') + 1) == std::string_view(extra).substr(0, extra.find('=') + 1);
    });
    if (!replaced) envp.push_back(*e);
  }
  for (const auto& extra : extraEnv) envp.push_back(const_cast<char*>(extra.c_str()));
  envp.push_back(nullptr);
  int output = ::open(outputPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int error = errorPath == outputPath
                  ? ::fcntl(output, F_DUPFD_CLOEXEC, 0)
                  : ::open(errorPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int devNull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (output < 0 || error < 0 || devNull < 0) {
    throw std::runtime_error("cannot open " + outputPath + " or " + errorPath + ": " +
                             std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // Start the gateway as a shell would: no inherited signal mask, SIGPIPE
    // at its default (a gateway that forgets to ignore it must fail here).
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(devNull, STDIN_FILENO);
    ::dup2(output, STDOUT_FILENO);
    ::dup2(error, STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    static const char kMessage[] = "exec of the gateway binary failed\n";
    [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
    ::_exit(127);
  }
  ::close(output);
  ::close(error);
  ::close(devNull);
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  return pid;
}

// Waits up to `timeout` for the child to exit; SIGKILLs it after that.
ProcessResult waitFor(pid_t pid, std::chrono::milliseconds timeout) {
  ProcessResult result;
  const auto until = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      result.exitCode = exitCodeOf(status);
      return result;
    }
    if (done < 0 && errno != EINTR) return result;
    if (std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(10ms);
  }
  result.timedOut = true;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return result;
}

std::mutex& liveMutex() {
  static std::mutex mutex;
  return mutex;
}

std::vector<GatewayProcess*>& liveGateways() {
  static std::vector<GatewayProcess*> gateways;
  return gateways;
}

}  // namespace

std::string testGatewayBinary() { return SLUICE_TEST_GATEWAY_PATH; }

ProcessResult runSluice(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                        const std::vector<std::string>& extraEnv, const std::string& binary) {
  const std::string dir = makeTempDir();
  const std::string outputPath = dir + "/stdout.log";
  const std::string errorPath = dir + "/stderr.log";
  std::vector<std::string> argv{binary.empty() ? binaryPath() : binary};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult result;
  try {
    result = waitFor(spawn(argv, outputPath, errorPath, extraEnv), timeout);
    result.errorOutput = readFile(errorPath).value_or("");
    result.output = readFile(outputPath).value_or("") + result.errorOutput;
  } catch (...) {
    removeTempDir(dir);
    throw;
  }
  removeTempDir(dir);
  return result;
}

ProcessResult runValidate(const std::string& configJson, const std::vector<std::string>& extraEnv,
                          const std::string& binary) {
  const std::string dir = makeTempDir();
  const std::string configPath = dir + "/config.json";
  ProcessResult result;
  try {
    writeFile(configPath, configJson);
    result = runSluice({"--validate", configPath}, std::chrono::seconds(10), extraEnv, binary);
  } catch (...) {
    removeTempDir(dir);
    throw;
  }
  removeTempDir(dir);
  return result;
}

GatewayProcess::GatewayProcess(const std::string& configJson, Options options)
    : dir_(makeTempDir()),
      configPath_(dir_ + "/config.json"),
      readyPath_(dir_ + "/ready.json"),
      logPath_(dir_ + "/gateway.log") {
  try {
    writeFile(configPath_, configJson);
    // SLUICE_E2E_LOG_LEVEL (e.g. trace) overrides every test's log level.
    const char* level = std::getenv("SLUICE_E2E_LOG_LEVEL");
    std::vector<std::string> argv{options.binary.empty() ? binaryPath() : options.binary,
                                  "--config",
                                  configPath_,
                                  "--log-level",
                                  level && *level ? level : options.logLevel,
                                  "--ready-file",
                                  readyPath_};
    argv.insert(argv.end(), options.extraArgs.begin(), options.extraArgs.end());
    pid_ = spawn(argv, logPath_, logPath_, options.extraEnv);
    {
      std::lock_guard lock(liveMutex());
      liveGateways().push_back(this);
    }

    const auto until = std::chrono::steady_clock::now() + options.readyTimeout;
    while (true) {
      // The gateway renames the ready file into place, so once it exists it
      // is complete; a parse failure means someone else's bug, reported below.
      if (auto ready = readFile(readyPath_)) {
        auto json = nlohmann::json::parse(*ready, nullptr, /*allow_exceptions=*/false);
        if (json.is_object() && json.contains("listeners") && json["listeners"].is_object()) {
          for (const auto& [name, address] : json["listeners"].items()) {
            listeners_[name] = address.get<std::string>();
          }
          if (json.contains("admin") && json["admin"].is_string()) adminAddress_ = json["admin"].get<std::string>();
          break;
        }
        throw std::runtime_error("gateway ready file is not {\"listeners\": {...}}: " + *ready);
      }
      if (auto code = reap(false)) {
        throw std::runtime_error("gateway exited with " + std::to_string(*code) +
                                 " before it was ready; its log:\n" + logs());
      }
      if (std::chrono::steady_clock::now() >= until) {
        throw std::runtime_error("gateway not ready after " +
                                 std::to_string(options.readyTimeout.count()) +
                                 " ms; its log:\n" + logs());
      }
      std::this_thread::sleep_for(10ms);
    }
  } catch (...) {
    // The destructor does not run for a half-built object.
    if (pid_ > 0) stop();
    {
      std::lock_guard lock(liveMutex());
      std::erase(liveGateways(), this);
    }
    removeTempDir(dir_);
    throw;
  }
}

GatewayProcess::~GatewayProcess() {
  // A test that does not stop the gateway itself still expects a clean exit
  // at SIGTERM: a crash or a hang at the end (or earlier) fails it.
  if (!stop_called_) {
    const int code = stop();
    if (code != 0) {
      FAIL_CHECK("the gateway (pid " << pid_ << ") did not exit cleanly at the end of the test: "
                                     << (code < 0 ? std::string("killed after 10 s") : "status " + std::to_string(code))
                                     << "; its log:\n"
                                     << logs(8000));
    }
  }
  {
    std::lock_guard lock(liveMutex());
    std::erase(liveGateways(), this);
  }
  if (std::getenv("SLUICE_E2E_VERBOSE")) {
    std::fprintf(stderr, "---- gateway log (%s) ----\n%s---- end of gateway log ----\n",
                 logPath_.c_str(), logs().c_str());
  }
  removeTempDir(dir_);
}

void GatewayProcess::forEachLive(const std::function<void(GatewayProcess&)>& fn) {
  std::lock_guard lock(liveMutex());
  for (GatewayProcess* gateway : liveGateways()) fn(*gateway);
}

int GatewayProcess::port(const std::string& listener) const {
  const std::string& address = listeners_.at(listener);
  return std::stoi(address.substr(address.rfind(':') + 1));
}

std::string GatewayProcess::address(const std::string& listener) const {
  return listeners_.at(listener);
}

std::optional<int> GatewayProcess::reap(bool block) {
  if (exitCode_) return exitCode_;
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  pid_t done = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (done == pid_) exitCode_ = exitCodeOf(status);
  return exitCode_;
}

bool GatewayProcess::running() { return pid_ > 0 && !reap(false); }

long GatewayProcess::rssKiB() const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

int GatewayProcess::stop() {
  stop_called_ = true;
  if (pid_ <= 0) return -1;
  if (auto code = reap(false)) return *code;
  ::kill(pid_, SIGTERM);
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < until) {
    if (auto code = reap(false)) return *code;
    std::this_thread::sleep_for(10ms);
  }
  ::kill(pid_, SIGKILL);
  reap(true);
  // Report the kill as a failure to stop, whatever the signal status says.
  exitCode_ = -1;
  return *exitCode_;
}

void GatewayProcess::signal(int signalNumber) {
  if (running()) ::kill(pid_, signalNumber);
}

std::string GatewayProcess::logs(size_t tailBytes) const {
  std::string all = readFile(logPath_).value_or("");
  if (tailBytes == 0 || all.size() <= tailBytes) return all;
  return "[... " + std::to_string(all.size() - tailBytes) + " bytes cut ...]\n" +
         all.substr(all.size() - tailBytes);
}

}  // namespace sluice::test
