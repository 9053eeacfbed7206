// sluice_soak_client: mixed gRPC load through the gateway for a set time, with
// every call's outcome classified. Driven by bench/soak.sh.
//
//   sluice_soak_client --target HOST:PORT --duration SECONDS [--threads N]
//                      [--restart-log FILE] [--report FILE]
//
// Each thread runs calls of every kind in turn on its own channel (a new
// channel, hence a new TCP connection, every --reconnect-every calls):
//   unary, server_stream, client_stream, bidi      must end OK with the right answers
//   cancel_server_stream, cancel_bidi, cancel_client_stream
//                                                  cancelled by the client: CANCELLED
//   deadline_unary, deadline_stream                a deadline shorter than the
//                                                  backend's work: DEADLINE_EXCEEDED
//   backend_error                                  the backend answers NOT_FOUND: relayed as is
//   long_bidi (every 50th call)                    a 3 s stream, likely to see a backend restart
// A new channel is connected first (WaitForConnected, 5 s); one that does not
// connect is recorded once, as kind "connect" (always unexpected).
// At the end, every outcome is one of: ok; expected (the code the kind is
// meant to end with); restart (UNAVAILABLE or CANCELLED on a call that
// overlapped a backend restart window from --restart-log, lines
// "STOP_MS READY_MS" in Unix milliseconds, or "STOP_MS" alone while the
// backend is not back yet); unexpected (anything else, listed).
// Exit status: 0 when nothing was unexpected, 1 otherwise.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "examples/backend/echo_service.h"

namespace {

using sluice::example::Echo;
using sluice::example::EchoRequest;
using sluice::example::EchoResponse;
using SysClock = std::chrono::system_clock;

constexpr auto kNormalDeadline = std::chrono::seconds(10);

enum class Kind {
  Unary,
  ServerStream,
  ClientStream,
  Bidi,
  CancelServerStream,
  CancelBidi,
  CancelClientStream,
  DeadlineUnary,
  DeadlineStream,
  BackendError,
  LongBidi,
  Connect,  // not a call: a new channel that did not connect
};
constexpr int kRotatingKinds = 10;  // LongBidi is interleaved separately

const char* kindName(Kind k) {
  static const char* const kNames[] = {"unary",         "server_stream",  "client_stream",        "bidi",
                                       "cancel_server_stream", "cancel_bidi", "cancel_client_stream",
                                       "deadline_unary", "deadline_stream", "backend_error",      "long_bidi",
                                       "connect"};
  return kNames[static_cast<int>(k)];
}

// The non-OK code a kind is meant to end with (OK for the normal kinds).
grpc::StatusCode expectedCode(Kind k) {
  switch (k) {
    case Kind::CancelServerStream:
    case Kind::CancelBidi:
    case Kind::CancelClientStream:
      return grpc::StatusCode::CANCELLED;
    case Kind::DeadlineUnary:
    case Kind::DeadlineStream:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    case Kind::BackendError:
      return grpc::StatusCode::NOT_FOUND;
    default:
      return grpc::StatusCode::OK;
  }
}

const char* codeName(int code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? kNames[code] : "?";
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SysClock::now().time_since_epoch()).count();
}

struct Outcome {
  Kind kind;
  int code;
  std::string message;
  int64_t start_ms;
  int64_t end_ms;
};

class Recorder {
 public:
  void add(Outcome o) {
    std::lock_guard lock(mutex_);
    outcomes_.push_back(std::move(o));
  }
  std::vector<Outcome> take() {
    std::lock_guard lock(mutex_);
    return std::move(outcomes_);
  }

 private:
  std::mutex mutex_;
  std::vector<Outcome> outcomes_;
};

// A wrong answer on an OK call counts as an unexpected INTERNAL.
grpc::Status wrongAnswer(const std::string& what) { return {grpc::StatusCode::INTERNAL, "soak client: " + what}; }

class CallRunner {
 public:
  CallRunner(Echo::Stub& stub, std::mt19937& rng) : stub_(stub), rng_(rng) {}

  grpc::Status run(Kind kind) {
    switch (kind) {
      case Kind::Unary: return unary();
      case Kind::ServerStream: return serverStream(false);
      case Kind::ClientStream: return clientStream(false);
      case Kind::Bidi: return bidi(10, 0, false);
      case Kind::CancelServerStream: return serverStream(true);
      case Kind::CancelBidi: return bidi(1000, 2, true);
      case Kind::CancelClientStream: return clientStream(true);
      case Kind::DeadlineUnary: return deadlineUnary();
      case Kind::DeadlineStream: return deadlineStream();
      case Kind::BackendError: return backendError();
      case Kind::LongBidi: return bidi(60, 50, false);
      case Kind::Connect: break;
    }
    return wrongAnswer("unknown kind");
  }

 private:
  void prepare(grpc::ClientContext& ctx, std::chrono::milliseconds deadline = kNormalDeadline) {
    ctx.set_deadline(SysClock::now() + deadline);
    ctx.AddMetadata("x-soak", "1");
  }

  grpc::Status unary() {
    // Mostly small, sometimes 256 KiB (past the stream windows' first refill).
    size_t size = rng_() % 8 == 0 ? 256 * 1024 : 100;
    EchoRequest req;
    req.set_response_size(static_cast<uint32_t>(size));
    grpc::ClientContext ctx;
    prepare(ctx);
    EchoResponse resp;
    grpc::Status s = stub_.Unary(&ctx, req, &resp);
    if (s.ok() && (resp.payload().size() != size || !sluice::example::checkPattern(resp.payload()))) {
      return wrongAnswer("unary payload corrupted");
    }
    return s;
  }

  grpc::Status serverStream(bool cancel) {
    EchoRequest req;
    req.set_response_count(cancel ? 1000 : 20);
    req.set_response_size(512);
    req.set_response_interval_ms(cancel ? 2 : 1);
    grpc::ClientContext ctx;
    prepare(ctx);
    auto reader = stub_.ServerStream(&ctx, req);
    EchoResponse resp;
    uint64_t n = 0;
    while (reader->Read(&resp)) {
      if (resp.index() != n || !sluice::example::checkPattern(resp.payload())) {
        ctx.TryCancel();
        reader->Finish().ok();
        return wrongAnswer("server stream out of order or corrupted");
      }
      ++n;
      if (cancel && n == 3) ctx.TryCancel();
    }
    grpc::Status s = reader->Finish();
    if (s.ok() && n != 20) return wrongAnswer("server stream ended early with OK");
    return s;
  }

  grpc::Status clientStream(bool cancel) {
    grpc::ClientContext ctx;
    prepare(ctx);
    EchoResponse resp;
    auto writer = stub_.ClientStream(&ctx, &resp);
    EchoRequest req;
    req.set_payload(std::string(1024, 'c'));
    const int count = cancel ? 3 : 10;
    for (int i = 0; i < count; ++i) {
      if (!writer->Write(req)) break;
    }
    if (cancel) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      ctx.TryCancel();
    } else {
      writer->WritesDone();
    }
    grpc::Status s = writer->Finish();
    if (s.ok() && (resp.received_messages() != 10 || resp.received_bytes() != 10 * 1024)) {
      return wrongAnswer("client stream: backend saw the wrong messages");
    }
    return s;
  }

  // `pings` request/response pairs, `pause_ms` apart; with `cancel`, the
  // client cancels after 3 of them.
  grpc::Status bidi(int pings, int pause_ms, bool cancel) {
    grpc::ClientContext ctx;
    prepare(ctx);
    auto stream = stub_.Bidi(&ctx);
    EchoRequest req;
    EchoResponse resp;
    for (int i = 0; i < pings; ++i) {
      if (cancel && i == 3) {
        ctx.TryCancel();
        break;
      }
      req.set_payload("ping " + std::to_string(i));
      if (!stream->Write(req)) break;
      if (!stream->Read(&resp)) break;
      if (resp.payload() != req.payload()) {
        ctx.TryCancel();
        stream->Finish().ok();
        return wrongAnswer("bidi answer does not match");
      }
      if (pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    }
    if (!cancel) stream->WritesDone();
    while (stream->Read(&resp)) {
    }
    return stream->Finish();
  }

  grpc::Status deadlineUnary() {
    EchoRequest req;
    req.set_sleep_ms(1000);
    grpc::ClientContext ctx;
    prepare(ctx, std::chrono::milliseconds(50 + rng_() % 100));
    EchoResponse resp;
    return stub_.Unary(&ctx, req, &resp);
  }

  grpc::Status deadlineStream() {
    EchoRequest req;
    req.set_response_count(100);
    req.set_response_interval_ms(20);
    grpc::ClientContext ctx;
    prepare(ctx, std::chrono::milliseconds(150));
    auto reader = stub_.ServerStream(&ctx, req);
    EchoResponse resp;
    while (reader->Read(&resp)) {
    }
    return reader->Finish();
  }

  grpc::Status backendError() {
    EchoRequest req;
    req.set_status_code(static_cast<int>(grpc::StatusCode::NOT_FOUND));
    req.set_status_message("soak: no such thing");
    grpc::ClientContext ctx;
    prepare(ctx);
    EchoResponse resp;
    grpc::Status s = stub_.Unary(&ctx, req, &resp);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND && s.error_message() != "soak: no such thing") {
      return wrongAnswer("backend status message changed: " + s.error_message());
    }
    return s;
  }

  Echo::Stub& stub_;
  std::mt19937& rng_;
};

struct Options {
  std::string target;
  int duration_s = 60;
  int threads = 16;
  int reconnect_every = 200;
  std::string restart_log;
  std::string report;
};

std::shared_ptr<grpc::Channel> newChannel(const std::string& target) {
  grpc::ChannelArguments args;
  // Our own subchannel pool: a new channel is a new TCP connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

void worker(const Options& opt, int index, SysClock::time_point until, Recorder& recorder) {
  std::mt19937 rng(static_cast<uint32_t>(index * 7919 + 1));
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<Echo::Stub> stub;
  for (uint64_t i = 0; SysClock::now() < until; ++i) {
    if (i % opt.reconnect_every == 0) {
      // Connect before calling, so that a failed connect is one outcome (kind
      // "connect"), not a burst of fail-fast calls on a channel in backoff.
      stub.reset();
      channel = newChannel(opt.target);
      int64_t start = nowMs();
      if (!channel->WaitForConnected(SysClock::now() + std::chrono::seconds(5))) {
        recorder.add({Kind::Connect, static_cast<int>(grpc::StatusCode::UNAVAILABLE),
                      "channel did not connect within 5 s", start, nowMs()});
        i = static_cast<uint64_t>(-1);  // a new channel on the next turn
        continue;
      }
      stub = Echo::NewStub(channel);
    }
    Kind kind = (i % 50 == 49) ? Kind::LongBidi : static_cast<Kind>((i + index) % kRotatingKinds);
    CallRunner runner(*stub, rng);
    int64_t start = nowMs();
    grpc::Status s = runner.run(kind);
    recorder.add({kind, static_cast<int>(s.error_code()), s.error_message(), start, nowMs()});
  }
}

std::vector<std::pair<int64_t, int64_t>> readRestarts(const std::string& file) {
  std::vector<std::pair<int64_t, int64_t>> out;
  if (file.empty()) return out;
  // "STOP READY", or "STOP" alone for a restart still under way when the
  // load ended (the backend is not back yet).
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    long long a = 0, b = 0;
    int n = std::sscanf(line.c_str(), "%lld %lld", &a, &b);
    if (n == 2) out.emplace_back(a, b);
    if (n == 1) out.emplace_back(a, std::numeric_limits<int64_t>::max() / 2);
  }
  return out;
}

std::string jsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    std::string v = argv[i + 1];
    if (a == "--target") opt.target = v;
    else if (a == "--duration") opt.duration_s = std::atoi(v.c_str());
    else if (a == "--threads") opt.threads = std::atoi(v.c_str());
    else if (a == "--reconnect-every") opt.reconnect_every = std::max(1, std::atoi(v.c_str()));
    else if (a == "--restart-log") opt.restart_log = v;
    else if (a == "--report") opt.report = v;
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  if (opt.target.empty()) {
    std::cerr << "usage: sluice_soak_client --target HOST:PORT --duration SECONDS [--threads N] "
                 "[--reconnect-every CALLS] [--restart-log FILE] [--report FILE]\n";
    return 2;
  }

  Recorder recorder;
  const auto until = SysClock::now() + std::chrono::seconds(opt.duration_s);
  std::vector<std::thread> threads;
  for (int t = 0; t < opt.threads; ++t) threads.emplace_back(worker, std::cref(opt), t, until, std::ref(recorder));
  for (auto& t : threads) t.join();

  // Classify.
  const auto restarts = readRestarts(opt.restart_log);
  // A restart's effects last a little past the backend being ready again
  // (health check interval, reconnect backoff).
  constexpr int64_t kRestartSlackMs = 3000;
  auto overlapsRestart = [&](const Outcome& o) {
    for (const auto& [stop, ready] : restarts) {
      if (o.start_ms <= ready + kRestartSlackMs && o.end_ms >= stop) return true;
    }
    return false;
  };
  struct Counts {
    uint64_t total = 0, ok = 0, expected = 0, restart = 0, unexpected = 0;
  };
  std::map<std::string, Counts> per_kind;
  std::map<std::string, uint64_t> codes;  // "kind CODE" -> count, non-OK only
  std::vector<const Outcome*> unexpected;
  std::vector<Outcome> outcomes = recorder.take();
  Counts all;
  for (const Outcome& o : outcomes) {
    Counts& c = per_kind[kindName(o.kind)];
    c.total++;
    all.total++;
    int expected = static_cast<int>(expectedCode(o.kind));
    if (o.code == 0 && expected == 0) {
      c.ok++;
      all.ok++;
      continue;
    }
    codes[std::string(kindName(o.kind)) + " " + codeName(o.code)]++;
    // A cancel or a deadline can lose the race to a fast answer: OK is fine there.
    if (o.code == expected || (o.code == 0 && expected != static_cast<int>(grpc::StatusCode::NOT_FOUND))) {
      c.expected++;
      all.expected++;
    } else if ((o.code == static_cast<int>(grpc::StatusCode::UNAVAILABLE) ||
                o.code == static_cast<int>(grpc::StatusCode::CANCELLED)) &&
               o.kind != Kind::Connect && overlapsRestart(o)) {
      c.restart++;
      all.restart++;
    } else {
      c.unexpected++;
      all.unexpected++;
      unexpected.push_back(&o);
    }
  }

  std::ostringstream text;
  text << "calls: " << all.total << " (" << all.ok << " ok, " << all.expected << " expected errors, " << all.restart
       << " during backend restarts, " << all.unexpected << " unexpected) in " << opt.duration_s << " s, "
       << (opt.duration_s > 0 ? all.total / opt.duration_s : 0) << " calls/s, " << opt.threads << " threads\n";
  text << "  kind                   total        ok  expected   restart unexpected\n";
  for (const auto& [name, c] : per_kind) {
    char line[160];
    std::snprintf(line, sizeof(line), "  %-20s %7llu %9llu %9llu %9llu %9llu\n", name.c_str(),
                  static_cast<unsigned long long>(c.total), static_cast<unsigned long long>(c.ok),
                  static_cast<unsigned long long>(c.expected), static_cast<unsigned long long>(c.restart),
                  static_cast<unsigned long long>(c.unexpected));
    text << line;
  }
  text << "  non-OK statuses by kind:\n";
  for (const auto& [key, n] : codes) text << "    " << key << ": " << n << "\n";
  if (!unexpected.empty()) {
    text << "  unexpected (first 20):\n";
    for (size_t i = 0; i < unexpected.size() && i < 20; ++i) {
      const Outcome& o = *unexpected[i];
      text << "    " << kindName(o.kind) << " " << codeName(o.code) << " \"" << o.message << "\" at " << o.start_ms
           << ".." << o.end_ms << " ms\n";
    }
  }
  std::cout << text.str();

  if (!opt.report.empty()) {
    std::ofstream out(opt.report);
    out << "{\"total\":" << all.total << ",\"ok\":" << all.ok << ",\"expected\":" << all.expected
        << ",\"restart\":" << all.restart << ",\"unexpected\":" << all.unexpected << ",\"codes\":{";
    bool first = true;
    for (const auto& [key, n] : codes) {
      out << (first ? "" : ",") << "\"" << key << "\":" << n;
      first = false;
    }
    out << "},\"unexpected_samples\":[";
    for (size_t i = 0; i < unexpected.size() && i < 20; ++i) {
      const Outcome& o = *unexpected[i];
      out << (i ? "," : "") << "{\"kind\":\"" << kindName(o.kind) << "\",\"code\":\"" << codeName(o.code)
          << "\",\"message\":\"" << jsonEscape(o.message) << "\",\"start_ms\":" << o.start_ms
          << ",\"end_ms\":" << o.end_ms << "}";
    }
    out << "]}\n";
  }
  return all.unexpected == 0 ? 0 : 1;
}
