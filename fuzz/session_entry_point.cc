// fuzzDownstreamSession: a real Worker fed raw HTTP/2 bytes over loopback.
//
// Per input: load a fixed config (two listeners on one worker: "outer", where
// the fuzz input goes, proxies to "inner", which answers by itself or proxies
// to a port that refuses connections), start the worker, connect a plain
// non-blocking client socket, write the client preface and the input, and run
// the worker's loop by hand (uv_run NOWAIT) until the gateway closes the
// connection or nothing moves any more. The input may contain the token
// kPauseToken: the bytes before it are sent and the loop runs until quiet
// before the rest follows, so a fuzzer can place frames after the gateway's
// answers (a RST_STREAM after the upstream call started, a WINDOW_UPDATE
// after a stall, ...). Everything is built afresh per input (config, rate
// limit buckets, upstream pools), so an input reproduces on its own.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/config.h"
#include "core/config_errors.h"
#include "core/overload.h"
#include "core/registry.h"
#include "filters/builtin.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_entry_points.h"
#include "listeners/connection_balancer.h"
#include "listeners/worker.h"

namespace sluice {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::string_view kPauseToken = "<<wait>>";
// Nothing happened for this long (and no timer is due sooner): the exchange is over.
constexpr int kQuietMs = 2;
// Timers due within this are waited for (short grpc-timeouts, 1 ms retries).
constexpr int kNearTimerMs = 20;
// Hard limits per input, so a stuck exchange cannot stall the fuzzer.
constexpr auto kPhaseLimit = std::chrono::milliseconds(1500);
constexpr auto kCleanupLimit = std::chrono::milliseconds(2000);

// Keeps the gateway's logs (a protocol error is logged at info) out of the
// fuzzer's output; restores the level for the unit tests. SLUICE_FUZZ_LOG=debug
// (or any level) shows them, to see what an input does.
class QuietLogs {
 public:
  QuietLogs() : level_(spdlog::get_level()) {
    const char* wanted = std::getenv("SLUICE_FUZZ_LOG");
    spdlog::set_level(wanted != nullptr ? spdlog::level::from_str(wanted) : spdlog::level::off);
  }
  ~QuietLogs() { spdlog::set_level(level_); }

 private:
  spdlog::level::level_enum level_;
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

sockaddr_in loopback(uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

uint16_t boundPort(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  FUZZ_CHECK(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0, "getsockname: %d", errno);
  return ntohs(sa.sin_port);
}

// A socket bound to a loopback port but not listening: connecting to it is
// refused at once, and no other process can take the port meanwhile.
Fd bindUnlistened() {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  FUZZ_CHECK(fd.get() >= 0, "socket: %d", errno);
  sockaddr_in sa = loopback(0);
  FUZZ_CHECK(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0, "bind: %d", errno);
  return fd;
}

std::string sessionConfig(uint16_t inner_port, uint16_t refused_port) {
  // Small limits so that inputs reach them; every built-in filter in the chain.
  return fmt::format(R"({{
  "listeners": [
    {{ "name": "outer", "address": "127.0.0.1:0", "max_message_bytes": 65536,
      "max_concurrent_streams": 16, "max_header_list_bytes": 8192,
      "stream_buffer_bytes": 16384, "connection_buffer_bytes": 65536,
      "rst_stream_burst": 20, "rst_stream_rate": 10, "max_pending_acks": 20,
      "filters": [
        {{ "name": "access_log", "config": {{ "path": "/dev/null", "request_metadata": ["x-api-key", "x-tenant"] }} }},
        {{ "name": "metadata", "config": {{
            "request": {{ "remove": ["x-debug"], "set": {{ "x-tenant": "fuzz" }}, "add": {{ "x-via": ["sluice"] }} }},
            "response": {{ "set": {{ "x-served-by": "sluice" }} }},
            "response_trailers": {{ "remove": ["x-internal"] }},
            "x_forwarded_for": "append" }} }},
        {{ "name": "auth", "config": {{
            "api_keys": {{ "keys": [ {{ "key": "fuzz-key", "name": "fuzzer", "scopes": ["echo"] }} ] }},
            "principal_metadata": "x-principal",
            "rules": [ {{ "match": {{ "service": "sluice.example.Echo" }}, "public": true }},
                       {{ "match": {{ "method": "/sluice.example.Other/Unary" }}, "scopes": ["echo"] }} ] }} }},
        {{ "name": "rate_limit", "config": {{ "rules": [
            {{ "key": "x-principal", "messages": {{ "rate": 20, "per": "minute" }},
              "calls": {{ "rate": 50, "per": "minute" }} }} ] }} }},
        {{ "name": "router", "config": {{ "routes": [
            {{ "match": {{ "service": "fuzz.Refused" }}, "cluster": "refused",
              "retry": {{ "retry_on": ["UNAVAILABLE"], "num_retries": 2, "backoff_base_ms": 1, "backoff_max_ms": 2 }} }},
            {{ "match": {{ "prefix": "/" }}, "cluster": "inner" }} ] }} }},
        {{ "name": "proxy" }} ] }},
    {{ "name": "inner", "address": "127.0.0.1:{}", "max_message_bytes": 1024,
      "filters": [
        {{ "name": "router", "config": {{ "routes": [
            {{ "match": {{ "method": "/sluice.example.Echo/Unary" }}, "cluster": "refused" }} ] }} }},
        {{ "name": "proxy" }} ] }} ],
  "clusters": [
    {{ "name": "inner", "endpoints": ["127.0.0.1:{}"] }},
    {{ "name": "refused", "endpoints": ["127.0.0.1:{}"] }} ]
}})",
                     inner_port, inner_port, refused_port);
}

class SessionDriver {
 public:
  SessionDriver(Worker& worker, int client) : loop_(worker.dispatcher().loop()), client_(client) {}

  // Sends `bytes` and runs until the gateway closes or all is quiet.
  void exchange(std::string_view bytes) {
    pending_ = bytes;
    const auto deadline = Clock::now() + kPhaseLimit;
    while (!peer_closed_ && Clock::now() < deadline) {
      uv_run(loop_, UV_RUN_NOWAIT);
      bool progressed = writeSome();
      progressed |= readAll();
      if (peer_closed_ || progressed) continue;
      int timeout = uv_backend_timeout(loop_);
      if (timeout == 0) continue;  // work is due now
      bool near_timer = timeout > 0 && timeout <= kNearTimerMs;
      if (!waitForEvents(near_timer ? timeout : kQuietMs) && !near_timer) break;
    }
  }

  bool peerClosed() const { return peer_closed_; }

  // Runs the loop until `done` or the time limit; returns `done()`.
  template <typename Pred>
  bool runUntil(Pred done, Clock::duration limit) {
    const auto deadline = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() >= deadline) return false;
      uv_run(loop_, UV_RUN_NOWAIT);
      if (client_ >= 0) readAll();
      int timeout = uv_backend_timeout(loop_);
      if (timeout != 0) waitForEvents(timeout > 0 && timeout < kQuietMs ? timeout : kQuietMs);
    }
    return true;
  }

  void clientGone() { client_ = -1; }

 private:
  bool writeSome() {
    bool progressed = false;
    while (!pending_.empty() && !peer_closed_) {
      ssize_t n = ::send(client_, pending_.data(), pending_.size(), MSG_NOSIGNAL);
      if (n > 0) {
        pending_.remove_prefix(static_cast<size_t>(n));
        progressed = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      peer_closed_ = true;  // EPIPE / ECONNRESET: the gateway hung up
    }
    return progressed;
  }

  // Reads and drops what the gateway sent; notices when it closed.
  bool readAll() {
    bool progressed = false;
    char buf[16384];
    for (;;) {
      ssize_t n = ::recv(client_, buf, sizeof(buf), 0);
      if (n > 0) {
        progressed = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      peer_closed_ = true;  // 0: orderly close; other errors: reset
      break;
    }
    return progressed;
  }

  bool waitForEvents(int timeout_ms) {
    pollfd fds[2] = {{uv_backend_fd(loop_), POLLIN, 0}, {client_, POLLIN, 0}};
    return ::poll(fds, client_ >= 0 ? 2 : 1, timeout_ms) > 0;
  }

  uv_loop_t* loop_;
  int client_;
  std::string_view pending_;
  bool peer_closed_ = false;
};

void runSession(std::string_view input) {
  QuietLogs quiet;
  Fd refused = bindUnlistened();
  // The inner listener needs its port in the config before it binds: take a
  // free one and let it go (its listener binds with SO_REUSEPORT; a clash with
  // another process is retried below).
  for (int attempt = 0;; ++attempt) {
    uint16_t inner_port;
    {
      Fd probe = bindUnlistened();
      inner_port = boundPort(probe.get());
    }
    FilterRegistry registry;
    registerBuiltinFilters(registry);
    ConfigErrors errors;
    GatewayConfigConstPtr config = loadConfig(sessionConfig(inner_port, boundPort(refused.get())), registry, errors);
    FUZZ_CHECK(config != nullptr, "the session config does not load:\n%s", errors.format().c_str());

    std::vector<std::unique_ptr<ConnectionBalancer>> balancers;
    for (size_t i = 0; i < config->listeners.size(); ++i) balancers.push_back(std::make_unique<ConnectionBalancer>());
    const OverloadState overload;  // never measured: nothing is refused for it
    static MethodPathBudget method_paths;  // outlives every worker made here
    auto worker = std::make_unique<Worker>(config, balancers, HealthRole{}, overload, method_paths);
    Status started = worker->start();
    if (!started.isOk()) {
      FUZZ_CHECK(attempt < 5, "cannot start the worker: %s", started.toString().c_str());
      continue;
    }
    uint16_t outer_port = 0;
    for (const auto& [name, address] : worker->boundListeners()) {
      if (name == "outer") outer_port = address.port;
    }

    Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    FUZZ_CHECK(client.get() >= 0, "socket: %d", errno);
    sockaddr_in sa = loopback(outer_port);
    int rv = ::connect(client.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    FUZZ_CHECK(rv == 0 || errno == EINPROGRESS, "connect to the worker: %d", errno);

    SessionDriver driver(*worker, client.get());
    FUZZ_CHECK(driver.runUntil([&] { return worker->openConnections() >= 1; }, kPhaseLimit),
               "the worker did not accept the connection");

    std::string first(kClientPreface);
    std::string_view rest = input;
    bool more = true;
    while (more && !driver.peerClosed()) {
      size_t cut = rest.find(kPauseToken);
      more = cut != std::string_view::npos;
      std::string_view segment = rest.substr(0, cut);
      if (!first.empty()) {
        first.append(segment);
        driver.exchange(first);
        first.clear();
      } else {
        driver.exchange(segment);
      }
      if (more) rest.remove_prefix(cut + kPauseToken.size());
    }

    // The client hangs up hard (RST, no TIME_WAIT left behind). Every stream of
    // both listeners must then end: the outer ones with their connection, the
    // inner ones when the proxy resets its upstream streams.
    linger hard{1, 0};
    ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    client.reset();
    driver.clientGone();
    FUZZ_CHECK(driver.runUntil([&] { return worker->activeStreams() == 0; }, kCleanupLimit),
               "%zu streams still open %lld ms after the client went away", worker->activeStreams(),
               static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(kCleanupLimit).count()));
    // Shutdown closes pools and listeners; the dispatcher's destructor runs the
    // loop until every handle is closed (a leaked handle hangs here).
    worker.reset();
    return;
  }
}

}  // namespace

void fuzzDownstreamSession(const uint8_t* data, size_t size) {
  runSession(std::string_view(reinterpret_cast<const char*>(data), size));
}

}  // namespace sluice
