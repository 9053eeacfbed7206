// sluice_bench_load_client: the grpc++ side of the benchmark (bench/run.sh).
//
// h2load only checks HTTP 200; this client makes real gRPC calls (grpc++
// callback API, any number in flight, no thread per call), counts every
// grpc-status it gets back and measures what h2load cannot: streaming
// throughput and the memory a target spends on idle streams and connections.
//
// Modes (each prints one "RESULT key=value ..." line on stdout):
//   --mode unary          --concurrency N calls in flight over --connections C
//                         channels for --duration s after --warmup s, each
//                         sending --payload bytes and getting them back (or
//                         --response-bytes bytes):
//                         rps, p50/p90/p99/p99.9 latency, status counts.
//   --mode server-stream  --streams N ServerStream calls (spread over C
//                         channels), each asking --messages-per-call answers
//                         of --message-bytes; a call that ends is replaced
//                         until the time is up: MB/s received (1 MB = 1e6 B).
//   --mode bidi           --streams N Bidi calls, each keeping --window
//                         messages of --message-bytes in flight, echoed back:
//                         MB/s received.
//   --mode idle-streams   opens --streams N Bidi calls over --connections C
//                         channels that send nothing, waits until every one
//                         got the backend's response headers, then reports
//                         the RSS growth of --rss-pid (and its children).
//   --mode idle-conns     opens --count N raw HTTP/2 (h2c) connections that
//                         finish the SETTINGS handshake and open no stream,
//                         then reports the RSS growth of --rss-pid.
//   --free-ports N        prints N free loopback TCP ports and exits.
//   --h2load-body PATH    writes one length-prefixed EchoRequest with a
//                         --payload byte payload (h2load's -d file) and exits.
//
// Every mode fails (exit 1) when a call ended with a status other than OK,
// or when a stream or connection could not be established.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "echo.grpc.pb.h"
#include "steady_malloc.h"

namespace {

using sluice::example::Echo;
using sluice::example::EchoRequest;
using sluice::example::EchoResponse;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode;
  std::string target = "127.0.0.1:8080";
  int connections = 4;
  int concurrency = 64;
  int streams = 4;
  int count = 2000;
  double duration = 5;
  double warmup = 1;
  double settle = 1;
  double hold = 0;
  double timeout = 30;
  size_t payload = 64;
  uint32_t responseBytes = 0;  // unary: answer with this many bytes (0: echo)
  size_t messageBytes = 65536;
  uint32_t messagesPerCall = 256;
  int window = 8;
  std::vector<int> rssPids;
  std::string method = "/sluice.example.Echo/Unary";  // informational
};

[[noreturn]] void usage(const std::string& why) {
  if (!why.empty()) std::cerr << "load_client: " << why << "\n";
  std::cerr << "usage: sluice_bench_load_client --mode unary|server-stream|bidi|idle-streams|idle-conns\n"
               "         [--target HOST:PORT] [--connections N] [--concurrency N] [--streams N]\n"
               "         [--count N] [--duration S] [--warmup S] [--settle S] [--hold S] [--timeout S]\n"
               "         [--payload BYTES] [--response-bytes BYTES] [--message-bytes BYTES] [--messages-per-call N]\n"
               "         [--window N] [--rss-pid PID[,PID...]]\n"
               "       sluice_bench_load_client --free-ports N\n";
  std::exit(2);
}

std::string makePattern(size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 31 + 7) & 0xff);
  return data;
}

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void sleepSeconds(double s) {
  if (s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

// ---------------------------------------------------------------- statuses

struct StatusCounts {
  std::array<std::atomic<uint64_t>, 17> codes{};
  std::mutex mutex;
  std::map<std::string, uint64_t> messages;  // "code: message" of failures, for the report

  void add(const grpc::Status& status) {
    int code = static_cast<int>(status.error_code());
    if (code < 0 || code > 16) code = 2;
    codes[code].fetch_add(1, std::memory_order_relaxed);
    if (!status.ok()) {
      std::lock_guard lock(mutex);
      if (messages.size() < 20) messages[std::to_string(code) + ": " + status.error_message()]++;
      else messages["(more)"]++;
    }
  }
  uint64_t ok() const { return codes[0].load(); }
  uint64_t failed() const {
    uint64_t n = 0;
    for (int i = 1; i < 17; ++i) n += codes[i].load();
    return n;
  }
  // "0:123,14:2"
  std::string summary() const {
    std::string out;
    for (int i = 0; i < 17; ++i) {
      uint64_t n = codes[i].load();
      if (n == 0) continue;
      if (!out.empty()) out += ",";
      out += std::to_string(i) + ":" + std::to_string(n);
    }
    return out.empty() ? "none" : out;
  }
  void printFailures() {
    std::lock_guard lock(mutex);
    for (const auto& [what, n] : messages) std::cerr << "load_client: status " << what << " x" << n << "\n";
  }
};

// ---------------------------------------------------------------- channels

std::shared_ptr<grpc::Channel> makeChannel(const std::string& target, int index) {
  grpc::ChannelArguments args;
  // A channel of its own per index: separate subchannel, separate TCP connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("sluice.bench.connection_index", index);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

std::vector<std::unique_ptr<Echo::Stub>> connect(const Options& o, int n,
                                                 std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  std::vector<std::unique_ptr<Echo::Stub>> stubs;
  for (int i = 0; i < n; ++i) {
    channels.push_back(makeChannel(o.target, i));
    if (!channels.back()->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::cerr << "load_client: cannot connect to " << o.target << "\n";
      std::exit(1);
    }
    stubs.push_back(Echo::NewStub(channels.back()));
  }
  return stubs;
}

// One small unary call per channel, so that connections (and the target's
// upstream connections) exist before anything is measured.
void warmChannels(std::vector<std::unique_ptr<Echo::Stub>>& stubs, StatusCounts& statuses) {
  for (auto& stub : stubs) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    EchoRequest req;
    req.set_payload("warm");
    EchoResponse resp;
    statuses.add(stub->Unary(&ctx, req, &resp));
  }
}

// ---------------------------------------------------------------- rss

long rssKiB(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

std::vector<int> childrenOf(int pid) {
  std::vector<int> out;
  DIR* dir = opendir("/proc");
  if (!dir) return out;
  while (dirent* e = readdir(dir)) {
    int p = atoi(e->d_name);
    if (p <= 0) continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::string stat;
    std::getline(in, stat);
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    int ppid;
    rest >> state >> ppid;
    if (ppid == pid) out.push_back(p);
  }
  closedir(dir);
  return out;
}

// RSS of the given processes and their children (nginx's workers), KiB.
long totalRssKiB(const std::vector<int>& pids) {
  long total = 0;
  for (int pid : pids) {
    long r = rssKiB(pid);
    if (r < 0) return -1;
    total += r;
    for (int child : childrenOf(pid)) {
      long c = rssKiB(child);
      if (c > 0) total += c;
    }
  }
  return total;
}

// ---------------------------------------------------------------- percentiles

std::string percentiles(std::vector<uint32_t>& us) {
  if (us.empty()) return "p50_us=0 p90_us=0 p99_us=0 p999_us=0 max_us=0";
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * (us.size() - 1) + 0.5);
    return us[std::min(i, us.size() - 1)];
  };
  std::ostringstream s;
  s << "p50_us=" << at(0.50) << " p90_us=" << at(0.90) << " p99_us=" << at(0.99)
    << " p999_us=" << at(0.999) << " max_us=" << us.back();
  return s.str();
}

// ---------------------------------------------------------------- unary

struct RunClock {
  // Streaming calls: the run's end plus --timeout, so a stalled call ends as
  // DEADLINE_EXCEEDED (counted) instead of hanging.
  std::chrono::system_clock::time_point callDeadline;
  Clock::time_point start;
  Clock::time_point windowStart;
  Clock::time_point windowEnd;
  std::atomic<bool> stop{false};
};

class UnarySlot {
 public:
  UnarySlot(Echo::Stub& stub, const EchoRequest& request, RunClock& clock, StatusCounts& statuses,
            double timeout, std::atomic<int>& active)
      : stub_(stub), request_(request), clock_(clock), statuses_(statuses), timeout_(timeout),
        active_(active) {
    latencies_.reserve(1 << 16);
  }
  void start() {
    active_.fetch_add(1);
    issue();
  }
  std::vector<uint32_t>& latencies() { return latencies_; }
  uint64_t inWindow() const { return inWindow_; }

 private:
  void issue() {
    context_ = std::make_unique<grpc::ClientContext>();
    context_->set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(static_cast<int64_t>(timeout_ * 1000)));
    started_ = Clock::now();
    stub_.async()->Unary(context_.get(), &request_, &response_,
                         [this](grpc::Status status) { done(status); });
  }
  void done(const grpc::Status& status) {
    const auto now = Clock::now();
    statuses_.add(status);
    if (status.ok() && started_ >= clock_.windowStart && now <= clock_.windowEnd) {
      latencies_.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(now - started_).count()));
      ++inWindow_;
    }
    if (clock_.stop.load(std::memory_order_relaxed)) {
      active_.fetch_sub(1);
      return;
    }
    issue();
  }
  Echo::Stub& stub_;
  EchoRequest request_;
  EchoResponse response_;
  RunClock& clock_;
  StatusCounts& statuses_;
  double timeout_;
  std::atomic<int>& active_;
  std::unique_ptr<grpc::ClientContext> context_;
  Clock::time_point started_;
  std::vector<uint32_t> latencies_;
  uint64_t inWindow_ = 0;
};

bool waitForZero(std::atomic<int>& n, double seconds) {
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  while (n.load() > 0) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

int runUnary(const Options& o) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  auto stubs = connect(o, o.connections, channels);
  StatusCounts statuses;
  warmChannels(stubs, statuses);
  EchoRequest request;
  request.set_payload(makePattern(o.payload));
  request.set_response_size(o.responseBytes);
  RunClock clock;
  clock.start = Clock::now();
  clock.windowStart = clock.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup));
  clock.windowEnd = clock.windowStart + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration));
  std::atomic<int> active{0};
  std::vector<std::unique_ptr<UnarySlot>> slots;
  for (int i = 0; i < o.concurrency; ++i) {
    slots.push_back(std::make_unique<UnarySlot>(*stubs[i % stubs.size()], request, clock, statuses,
                                                o.timeout, active));
  }
  for (auto& s : slots) s->start();
  std::this_thread::sleep_until(clock.windowEnd);
  clock.stop = true;
  bool drained = waitForZero(active, o.timeout + 5);
  std::vector<uint32_t> all;
  uint64_t calls = 0;
  for (auto& s : slots) {
    all.insert(all.end(), s->latencies().begin(), s->latencies().end());
    calls += s->inWindow();
  }
  std::cout << "RESULT mode=unary rps=" << static_cast<uint64_t>(calls / o.duration)
            << " calls=" << calls << " " << percentiles(all) << " ok=" << statuses.ok()
            << " failed=" << statuses.failed() << " statuses=" << statuses.summary()
            << " drained=" << (drained ? 1 : 0) << std::endl;
  statuses.printFailures();
  if (!drained) std::_Exit(1);  // calls still in flight: do not wait for them
  return statuses.failed() == 0 && calls > 0 ? 0 : 1;
}

// ---------------------------------------------------------------- server-stream

struct Throughput {
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> messages{0};
};

// The RESULT line of a streaming mode (bench/run.sh reads it) and the exit
// code: a run whose calls did not all finish exits at once.
int reportStreaming(const char* mode, double mbps, uint64_t bytes, const Throughput& tp,
                    StatusCounts& statuses, bool drained) {
  std::cout << "RESULT mode=" << mode << " mbps=" << mbps << " bytes=" << bytes
            << " messages=" << tp.messages.load() << " ok=" << statuses.ok()
            << " failed=" << statuses.failed() << " statuses=" << statuses.summary()
            << " drained=" << (drained ? 1 : 0) << std::endl;
  statuses.printFailures();
  if (!drained) std::_Exit(1);
  return statuses.failed() == 0 && bytes > 0 ? 0 : 1;
}

class ServerStreamCall final : public grpc::ClientReadReactor<EchoResponse> {
 public:
  ServerStreamCall(Echo::Stub& stub, const EchoRequest& request, RunClock& clock,
                   StatusCounts& statuses, Throughput& tp, std::atomic<int>& active)
      : stub_(stub), request_(request), clock_(clock), statuses_(statuses), tp_(tp), active_(active) {}
  static void launch(Echo::Stub& stub, const EchoRequest& request, RunClock& clock,
                     StatusCounts& statuses, Throughput& tp, std::atomic<int>& active) {
    auto* call = new ServerStreamCall(stub, request, clock, statuses, tp, active);
    call->context_.set_deadline(clock.callDeadline);
    stub.async()->ServerStream(&call->context_, &call->request_, call);
    call->StartRead(&call->response_);
    call->StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    tp_.bytes.fetch_add(response_.payload().size(), std::memory_order_relaxed);
    tp_.messages.fetch_add(1, std::memory_order_relaxed);
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    statuses_.add(status);
    if (clock_.stop.load()) {
      active_.fetch_sub(1);
    } else {
      launch(stub_, request_, clock_, statuses_, tp_, active_);
    }
    delete this;
  }

 private:
  Echo::Stub& stub_;
  const EchoRequest& request_;
  RunClock& clock_;
  StatusCounts& statuses_;
  Throughput& tp_;
  std::atomic<int>& active_;
  grpc::ClientContext context_;
  EchoResponse response_;
};

// Samples the byte counter at the window's edges.
double measureWindow(const Options& o, RunClock& clock, Throughput& tp, uint64_t& bytes) {
  std::this_thread::sleep_until(clock.windowStart);
  const uint64_t b0 = tp.bytes.load();
  const auto t0 = Clock::now();
  std::this_thread::sleep_until(clock.windowEnd);
  const uint64_t b1 = tp.bytes.load();
  const double seconds = secondsSince(t0);
  bytes = b1 - b0;
  return static_cast<double>(bytes) / seconds / 1e6;
}

void setWindow(const Options& o, RunClock& clock) {
  clock.start = Clock::now();
  clock.windowStart = clock.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup));
  clock.windowEnd = clock.windowStart + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration));
  clock.callDeadline = std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>((o.warmup + o.duration + o.timeout) * 1000));
}

int runServerStream(const Options& o) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  auto stubs = connect(o, o.connections, channels);
  StatusCounts statuses;
  warmChannels(stubs, statuses);
  // One request per stream (each stream reads its own, grpc++ serializes it).
  std::vector<std::unique_ptr<EchoRequest>> requests;
  for (int i = 0; i < o.streams; ++i) {
    auto r = std::make_unique<EchoRequest>();
    r->set_response_count(o.messagesPerCall);
    r->set_response_size(static_cast<uint32_t>(o.messageBytes));
    requests.push_back(std::move(r));
  }
  RunClock clock;
  Throughput tp;
  std::atomic<int> active{0};
  setWindow(o, clock);
  for (int i = 0; i < o.streams; ++i) {
    active.fetch_add(1);
    ServerStreamCall::launch(*stubs[i % stubs.size()], *requests[i], clock, statuses, tp, active);
  }
  uint64_t bytes = 0;
  const double mbps = measureWindow(o, clock, tp, bytes);
  clock.stop = true;
  bool drained = waitForZero(active, o.timeout + 5);
  return reportStreaming("server-stream", mbps, bytes, tp, statuses, drained);
}

// ---------------------------------------------------------------- bidi

class BidiCall final : public grpc::ClientBidiReactor<EchoRequest, EchoResponse> {
 public:
  BidiCall(Echo::Stub& stub, const Options& o, RunClock& clock, StatusCounts& statuses,
           Throughput& tp, std::atomic<int>& active)
      : window_(o.window), clock_(clock), statuses_(statuses), tp_(tp), active_(active) {
    request_.set_payload(makePattern(o.messageBytes));
    context_.set_deadline(clock.callDeadline);
    stub.async()->Bidi(&context_, this);
    StartRead(&response_);
    std::lock_guard lock(mutex_);
    maybeWrite();
    StartCall();
  }
  // The time is up: half-close once no write is pending.
  void stop() {
    std::lock_guard lock(mutex_);
    maybeWrite();
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mutex_);
    writing_ = false;
    if (!ok) {
      writesClosed_ = true;  // the call is over; OnDone tells how
      return;
    }
    maybeWrite();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    tp_.bytes.fetch_add(response_.payload().size(), std::memory_order_relaxed);
    tp_.messages.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    ++received_;
    StartRead(&response_);
    maybeWrite();
  }
  void OnDone(const grpc::Status& status) override {
    statuses_.add(status);
    active_.fetch_sub(1);
    // Owned by runBidi; not deleted here.
  }

 private:
  void maybeWrite() {
    if (writing_ || writesClosed_) return;
    if (clock_.stop.load()) {
      writesClosed_ = true;
      StartWritesDone();
      return;
    }
    if (sent_ - received_ >= static_cast<uint64_t>(window_)) return;
    writing_ = true;
    ++sent_;
    StartWrite(&request_);
  }
  const int window_;
  RunClock& clock_;
  StatusCounts& statuses_;
  Throughput& tp_;
  std::atomic<int>& active_;
  grpc::ClientContext context_;
  EchoRequest request_;
  EchoResponse response_;
  std::mutex mutex_;
  uint64_t sent_ = 0;
  uint64_t received_ = 0;
  bool writing_ = false;
  bool writesClosed_ = false;
};

int runBidi(const Options& o) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  auto stubs = connect(o, o.connections, channels);
  StatusCounts statuses;
  warmChannels(stubs, statuses);
  RunClock clock;
  Throughput tp;
  std::atomic<int> active{0};
  setWindow(o, clock);
  std::vector<std::unique_ptr<BidiCall>> calls;
  for (int i = 0; i < o.streams; ++i) {
    active.fetch_add(1);
    calls.push_back(std::make_unique<BidiCall>(*stubs[i % stubs.size()], o, clock, statuses, tp, active));
  }
  uint64_t bytes = 0;
  const double mbps = measureWindow(o, clock, tp, bytes);
  clock.stop = true;
  for (auto& c : calls) c->stop();
  bool drained = waitForZero(active, o.timeout + 5);
  return reportStreaming("bidi", mbps, bytes, tp, statuses, drained);
}

// ---------------------------------------------------------------- idle streams

class IdleCall final : public grpc::ClientBidiReactor<EchoRequest, EchoResponse> {
 public:
  IdleCall(Echo::Stub& stub, std::atomic<int>& established, std::atomic<int>& active,
           StatusCounts& statuses)
      : established_(established), active_(active), statuses_(statuses) {
    stub.async()->Bidi(&context_, this);
    StartRead(&response_);
    StartCall();
  }
  void close() { StartWritesDone(); }
  void OnReadInitialMetadataDone(bool ok) override {
    if (ok) established_.fetch_add(1);
  }
  void OnReadDone(bool ok) override {
    if (ok) StartRead(&response_);  // not expected: the stream sends nothing
  }
  void OnDone(const grpc::Status& status) override {
    statuses_.add(status);
    active_.fetch_sub(1);
  }

 private:
  std::atomic<int>& established_;
  std::atomic<int>& active_;
  StatusCounts& statuses_;
  grpc::ClientContext context_;
  EchoResponse response_;
};

int runIdleStreams(const Options& o) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  auto stubs = connect(o, o.connections, channels);
  StatusCounts statuses;
  warmChannels(stubs, statuses);
  sleepSeconds(o.settle);
  const long before = totalRssKiB(o.rssPids);
  std::atomic<int> established{0};
  std::atomic<int> active{0};
  std::vector<std::unique_ptr<IdleCall>> calls;
  calls.reserve(o.streams);
  const auto t0 = Clock::now();
  for (int i = 0; i < o.streams; ++i) {
    active.fetch_add(1);
    calls.push_back(std::make_unique<IdleCall>(*stubs[i % stubs.size()], established, active, statuses));
  }
  while (established.load() < o.streams && secondsSince(t0) < o.timeout &&
         statuses.failed() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double openSeconds = secondsSince(t0);
  sleepSeconds(o.settle);
  const long after = totalRssKiB(o.rssPids);
  sleepSeconds(o.hold);
  const int open = established.load();
  for (auto& c : calls) c->close();
  bool drained = waitForZero(active, o.timeout);
  const double perStream = open > 0 ? (after - before) * 1024.0 / open : 0;
  std::cout << "RESULT mode=idle-streams streams=" << open << " wanted=" << o.streams
            << " open_s=" << openSeconds << " rss_before_kib=" << before
            << " rss_after_kib=" << after << " bytes_per_stream=" << static_cast<long>(perStream)
            << " ok=" << statuses.ok() << " failed=" << statuses.failed()
            << " statuses=" << statuses.summary() << " drained=" << (drained ? 1 : 0) << std::endl;
  statuses.printFailures();
  if (!drained) std::_Exit(1);
  return statuses.failed() == 0 && open == o.streams ? 0 : 1;
}

// ---------------------------------------------------------------- idle connections

// A raw h2c connection: preface and SETTINGS out, the server's SETTINGS
// acknowledged, PINGs answered; no stream is ever opened.
struct RawConn {
  int fd = -1;
  std::string in;
  bool settingsSeen = false;  // the server's SETTINGS (non-ACK) arrived and was acknowledged
  bool closed = false;
};

bool sendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void frameHeader(std::string& out, uint32_t len, uint8_t type, uint8_t flags, uint32_t stream) {
  out.push_back(static_cast<char>((len >> 16) & 0xff));
  out.push_back(static_cast<char>((len >> 8) & 0xff));
  out.push_back(static_cast<char>(len & 0xff));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  out.push_back(static_cast<char>((stream >> 24) & 0x7f));
  out.push_back(static_cast<char>((stream >> 16) & 0xff));
  out.push_back(static_cast<char>((stream >> 8) & 0xff));
  out.push_back(static_cast<char>(stream & 0xff));
}

// Reads what is there and answers SETTINGS and PING. False once the peer closed.
bool service(RawConn& c) {
  char buf[16384];
  for (;;) {
    ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
    if (r == 0) {
      c.closed = true;
      return false;
    }
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      c.closed = true;
      return false;
    }
    c.in.append(buf, static_cast<size_t>(r));
  }
  size_t pos = 0;
  std::string reply;
  while (c.in.size() - pos >= 9) {
    const auto* h = reinterpret_cast<const unsigned char*>(c.in.data() + pos);
    const uint32_t len = (h[0] << 16) | (h[1] << 8) | h[2];
    const uint8_t type = h[3];
    const uint8_t flags = h[4];
    if (c.in.size() - pos < 9 + len) break;
    if (type == 4 && !(flags & 1)) {  // SETTINGS
      frameHeader(reply, 0, 4, 1, 0);
      c.settingsSeen = true;
    } else if (type == 6 && !(flags & 1)) {  // PING
      frameHeader(reply, 8, 6, 1, 0);
      reply.append(c.in, pos + 9, 8);
    } else if (type == 7) {  // GOAWAY
      c.closed = true;
    }
    pos += 9 + len;
  }
  c.in.erase(0, pos);
  if (!reply.empty() && !sendAll(c.fd, reply.data(), reply.size())) c.closed = true;
  return !c.closed;
}

bool parseHostPort(const std::string& target, sockaddr_in& addr) {
  auto colon = target.rfind(':');
  if (colon == std::string::npos) return false;
  std::memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(target.substr(colon + 1))));
  return inet_pton(AF_INET, target.substr(0, colon).c_str(), &addr.sin_addr) == 1;
}

void pollAll(std::vector<RawConn>& conns, int timeoutMs) {
  std::vector<pollfd> fds;
  for (auto& c : conns) {
    if (!c.closed) fds.push_back({c.fd, POLLIN, 0});
  }
  if (fds.empty()) return;
  if (::poll(fds.data(), fds.size(), timeoutMs) <= 0) return;
  size_t k = 0;
  for (auto& c : conns) {
    if (c.closed) continue;
    if (fds[k].revents) service(c);
    ++k;
  }
}

int runIdleConns(const Options& o) {
  sockaddr_in addr;
  if (!parseHostPort(o.target, addr)) usage("bad --target " + o.target);
  const long before = totalRssKiB(o.rssPids);
  static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::string hello(kPreface, sizeof kPreface - 1);
  frameHeader(hello, 0, 4, 0, 0);  // SETTINGS, no parameters
  std::vector<RawConn> conns(o.count);
  const auto t0 = Clock::now();
  int failedConnects = 0;
  for (int i = 0; i < o.count; ++i) {
    RawConn& c = conns[i];
    c.fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (c.fd < 0 || ::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::cerr << "load_client: connect " << i << ": " << strerror(errno) << "\n";
      c.closed = true;
      ++failedConnects;
      continue;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    if (!sendAll(c.fd, hello.data(), hello.size())) c.closed = true;
    if (i % 100 == 99) pollAll(conns, 0);  // let the handshakes progress as we go
  }
  auto handshaken = [&] {
    int n = 0;
    for (auto& c : conns) n += (c.settingsSeen && !c.closed) ? 1 : 0;
    return n;
  };
  while (handshaken() < o.count && secondsSince(t0) < o.timeout) {
    pollAll(conns, 50);
    int closed = 0;
    for (auto& c : conns) closed += c.closed ? 1 : 0;
    if (closed > 0 && handshaken() + closed >= o.count) break;
  }
  const double openSeconds = secondsSince(t0);
  const auto settleUntil = Clock::now() + std::chrono::duration<double>(o.settle);
  while (Clock::now() < settleUntil) pollAll(conns, 50);
  const long after = totalRssKiB(o.rssPids);
  const auto holdUntil = Clock::now() + std::chrono::duration<double>(o.hold);
  while (Clock::now() < holdUntil) pollAll(conns, 50);
  const int open = handshaken();
  int closedByPeer = 0;
  for (auto& c : conns) {
    if (c.closed && c.fd >= 0) ++closedByPeer;
    if (c.fd >= 0) ::close(c.fd);
  }
  const double perConn = open > 0 ? (after - before) * 1024.0 / open : 0;
  std::cout << "RESULT mode=idle-conns connections=" << open << " wanted=" << o.count
            << " open_s=" << openSeconds << " rss_before_kib=" << before << " rss_after_kib=" << after
            << " bytes_per_connection=" << static_cast<long>(perConn)
            << " connect_failures=" << failedConnects << " closed_by_peer=" << closedByPeer
            << std::endl;
  return open == o.count ? 0 : 1;
}

// ---------------------------------------------------------------- free ports

int freePorts(int n) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 1;
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    std::cout << ntohs(a.sin_port) << (i + 1 < n ? " " : "\n");
    fds.push_back(fd);
  }
  for (int fd : fds) ::close(fd);
  return 0;
}

// gRPC framing: flag byte 0 (uncompressed), 4-byte big-endian length, message.
int writeH2loadBody(const std::string& path, size_t payload) {
  EchoRequest request;
  request.set_payload(makePattern(payload));
  const std::string message = request.SerializeAsString();
  std::string framed(5, '\0');
  const uint32_t n = static_cast<uint32_t>(message.size());
  framed[1] = static_cast<char>(n >> 24);
  framed[2] = static_cast<char>(n >> 16);
  framed[3] = static_cast<char>(n >> 8);
  framed[4] = static_cast<char>(n);
  framed += message;
  std::ofstream out(path, std::ios::binary);
  out << framed;
  return out ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  sluice::bench::keepFreedMemory();
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value for " + arg);
      return argv[++i];
    };
    if (arg == "--free-ports") return freePorts(std::stoi(next()));
    else if (arg == "--h2load-body") o.mode = "h2load-body:" + next();
    else if (arg == "--mode") o.mode = next();
    else if (arg == "--target") o.target = next();
    else if (arg == "--connections") o.connections = std::stoi(next());
    else if (arg == "--concurrency") o.concurrency = std::stoi(next());
    else if (arg == "--streams") o.streams = std::stoi(next());
    else if (arg == "--count") o.count = std::stoi(next());
    else if (arg == "--duration") o.duration = std::stod(next());
    else if (arg == "--warmup") o.warmup = std::stod(next());
    else if (arg == "--settle") o.settle = std::stod(next());
    else if (arg == "--hold") o.hold = std::stod(next());
    else if (arg == "--timeout") o.timeout = std::stod(next());
    else if (arg == "--payload") o.payload = std::stoul(next());
    else if (arg == "--response-bytes") o.responseBytes = static_cast<uint32_t>(std::stoul(next()));
    else if (arg == "--message-bytes") o.messageBytes = std::stoul(next());
    else if (arg == "--messages-per-call") o.messagesPerCall = static_cast<uint32_t>(std::stoul(next()));
    else if (arg == "--window") o.window = std::stoi(next());
    else if (arg == "--rss-pid") {
      std::stringstream s(next());
      std::string p;
      while (std::getline(s, p, ',')) o.rssPids.push_back(std::stoi(p));
    } else usage("unknown argument " + arg);
  }
  if (o.connections < 1 || o.concurrency < 1 || o.streams < 1 || o.duration <= 0) usage("bad numbers");
  if (o.mode.rfind("h2load-body:", 0) == 0) return writeH2loadBody(o.mode.substr(12), o.payload);
  if (o.mode == "unary") return runUnary(o);
  if (o.mode == "server-stream") return runServerStream(o);
  if (o.mode == "bidi") return runBidi(o);
  if (o.mode == "idle-streams") {
    if (o.rssPids.empty()) usage("idle-streams needs --rss-pid");
    return runIdleStreams(o);
  }
  if (o.mode == "idle-conns") {
    if (o.rssPids.empty()) usage("idle-conns needs --rss-pid");
    return runIdleConns(o);
  }
  usage("unknown --mode " + o.mode);
}
