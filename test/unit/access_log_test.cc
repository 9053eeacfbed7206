// access_log filter: the JSON line, the file sink, reopening for log rotation.
#include <catch2/catch.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/config_errors.h"
#include "core/registry.h"
#include "filters/access_log/config.h"
#include "filters/access_log/filter.h"
#include "filters/access_log/log_sink.h"
#include "test/unit/config_helpers.h"
#include "test/unit/fake_context.h"

namespace sluice {
namespace {

using test::FakeContext;
using json = nlohmann::json;
namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "sluice-access-log-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string readAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<json> readLines(const fs::path& p) {
  std::vector<json> out;
  std::istringstream in(readAll(p));
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

// The sink writes from its own thread: wait (up to 5 s) for `count` lines.
std::vector<json> waitForLines(const fs::path& p, size_t count) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto lines = readLines(p);
  while (lines.size() < count && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    lines = readLines(p);
  }
  return lines;
}

bool waitForFile(const fs::path& p) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!fs::exists(p) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return fs::exists(p);
}

FilterFactorySharedPtr build(const json& config, ConfigErrors& errors) {
  return test::buildFilter(filters::access_log::AccessLogConfigFactory(), config, errors);
}

}  // namespace

TEST_CASE("access_log: one JSON line with every field of a finished call", "[access_log]") {
  filters::access_log::AccessLogConfig config;
  config.request_metadata = {"x-request-id", "x-absent"};
  FakeContext ctx;
  ctx.setIds(3, 7);
  auto now = StreamContext::Clock::now();
  // 2024-01-02T03:04:05.678Z on the wall clock.
  ctx.setStart(now - std::chrono::milliseconds(250),
               std::chrono::system_clock::time_point(std::chrono::milliseconds(1704164645678)));
  ctx.counters() = {3, 30, 2, 2000};
  ctx.setUpstreamAddress("127.0.0.1:50061");
  ctx.setUpstreamAttempts(2);
  ctx.requestHeaders().add("x-request-id", "r-1");
  ctx.finish(StatusCode::Unavailable, "backend down");
  std::string line = filters::access_log::formatLine(config, ctx, now);
  REQUIRE(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  json j = json::parse(line);
  CHECK(j["method"] == "/pkg.Svc/Method");
  CHECK(j["grpc_status"] == 14);
  CHECK(j["status"] == "UNAVAILABLE");
  CHECK(j["grpc_message"] == "backend down");
  CHECK(j["duration_ms"].get<double>() == Approx(250.0));
  CHECK(j["request_messages"] == 3);
  CHECK(j["request_bytes"] == 30);
  CHECK(j["response_messages"] == 2);
  CHECK(j["response_bytes"] == 2000);
  CHECK(j["peer"] == "127.0.0.1:5555");
  CHECK(j["upstream"] == "127.0.0.1:50061");
  CHECK(j["attempts"] == 2);
  CHECK(j["retries"] == 1);
  CHECK(j["connection"] == 3);
  CHECK(j["stream"] == 7);
  CHECK(j["metadata"] == json{{"x-request-id", "r-1"}});
  CHECK(j["time"] == "2024-01-02T03:04:05.678Z");  // when the call started
}

TEST_CASE("access_log: no upstream, invalid UTF-8 from the client", "[access_log]") {
  filters::access_log::AccessLogConfig config;
  config.request_metadata = {"x-odd"};
  FakeContext ctx;
  ctx.requestHeaders().add("x-odd", std::string("\xff\xfe", 2));
  ctx.finish(StatusCode::Ok, "");
  json j = json::parse(filters::access_log::formatLine(config, ctx, StreamContext::Clock::now()));
  CHECK(j["upstream"].is_null());
  CHECK(j["retries"] == 0);
  CHECK(j["status"] == "OK");
  CHECK_FALSE(j.contains("grpc_message"));
  CHECK(j["metadata"]["x-odd"].is_string());
}

TEST_CASE("access_log: the filter writes a line to its file at stream end", "[access_log]") {
  TempDir dir;
  fs::path file = dir.path / "access.log";
  ConfigErrors errors;
  auto factory = build(json{{"path", file.string()}}, errors);
  INFO(errors.format());
  REQUIRE(factory);
  for (int i = 0; i < 3; ++i) {
    FakeContext ctx;
    ctx.finish(StatusCode::Ok, "");
    auto f = factory->createFilter(ctx);
    f->onStreamDone(ctx);
  }
  auto lines = waitForLines(file, 3);
  REQUIRE(lines.size() == 3);
  CHECK(lines[2]["status"] == "OK");
  factory->close();
}

TEST_CASE("access_log: reopenLogs (SIGUSR1) reopens the file for log rotation", "[access_log]") {
  TempDir dir;
  fs::path file = dir.path / "access.log";
  fs::path rotated = dir.path / "access.log.1";
  ConfigErrors errors;
  auto factory = build(json{{"path", file.string()}}, errors);
  REQUIRE(factory);
  auto log_one = [&] {
    FakeContext ctx;
    ctx.finish(StatusCode::Ok, "");
    factory->createFilter(ctx)->onStreamDone(ctx);
  };
  log_one();
  REQUIRE(waitForLines(file, 1).size() == 1);  // the file is open
  fs::rename(file, rotated);
  log_one();  // still the old file: no signal yet
  CHECK(waitForLines(rotated, 2).size() == 2);
  CHECK_FALSE(fs::exists(file));

  factory->reopenLogs();  // what the gateway does on SIGUSR1
  CHECK(waitForFile(file));
  log_one();
  CHECK(waitForLines(file, 1).size() == 1);
  CHECK(readLines(rotated).size() == 2);
  factory->close();
}

TEST_CASE("access_log: config validation", "[access_log]") {
  SECTION("no config logs to stdout") {
    ConfigErrors errors;
    CHECK(build(json(), errors));
    CHECK(errors.empty());
  }
  SECTION("mistakes name their paths") {
    ConfigErrors errors;
    auto f = build(json{{"path", "/no/such/dir/access.log"}, {"request_metadata", {"ok", 3}}, {"color", true}},
                   errors);
    CHECK_FALSE(f);
    INFO(errors.format());
    REQUIRE(errors.size() == 3);
    CHECK(errors.all()[0].path == "/f/config/path");
    CHECK(errors.all()[0].message.find("does not exist") != std::string::npos);
    CHECK(errors.all()[1].path == "/f/config/request_metadata/1");
    CHECK(errors.all()[2].path == "/f/config/color");
  }
  SECTION("sampling mistakes") {
    ConfigErrors errors;
    CHECK_FALSE(build(json{{"sample_percent", 150}, {"always_log_failed", "yes"}, {"always_log_slower_than_ms", -5}},
                      errors));
    INFO(errors.format());
    REQUIRE(errors.size() == 3);
    CHECK(errors.all()[0].path == "/f/config/sample_percent");
    CHECK(errors.all()[1].path == "/f/config/always_log_failed");
    CHECK(errors.all()[2].path == "/f/config/always_log_slower_than_ms");
    ConfigErrors none;
    CHECK(build(json{{"sample_percent", 0.5}, {"always_log_slower_than_ms", 250}}, none));
    CHECK(none.empty());
  }
  SECTION("a directory is not a log file") {
    ConfigErrors errors;
    CHECK_FALSE(build(json{{"path", fs::temp_directory_path().string()}}, errors));
    CHECK(errors.size() == 1);
  }
}

TEST_CASE("access_log: a target that takes no lines never blocks the caller, lines are dropped and counted",
          "[access_log]") {
  TempDir dir;
  fs::path fifo = dir.path / "access.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  filters::access_log::LogSink sink(fifo.string());
  // Nobody reads the FIFO (so it cannot even be opened for writing): more
  // lines than the sink buffers, written as fast as a worker would.
  const std::string line(1000, 'x');
  const size_t count = 2 * filters::access_log::LogSink::kMaxBufferedBytes / (line.size() + 1);
  // A write that waited for the FIFO would hang here (the unit tests' ctest
  // timeout ends it).
  for (size_t i = 0; i < count; ++i) sink.write(line + "\n");
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (sink.dropped() < count / 2 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(sink.dropped() >= count / 2);
}

TEST_CASE("access_log: a line torn by a failed write is ended before the next one", "[access_log]") {
  // A write that fails part way (a full disk; here a FIFO whose reader goes
  // away) leaves part of a line in the target; the next line must not be
  // glued onto it.
  std::signal(SIGPIPE, SIG_IGN);
  TempDir dir;
  fs::path fifo = dir.path / "access.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(reader >= 0);
  filters::access_log::LogSink sink(fifo.string());
  sink.write(std::string(200000, 't') + "\n");  // more than the pipe holds: part of it goes in
  // Once the pipe is full, the reader goes: the rest of the line fails (EPIPE).
  int new_reader = -1;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (sink.dropped() == 0 && std::chrono::steady_clock::now() < until) {
    if (reader >= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      new_reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);  // keeps what the pipe holds
      ::close(reader);
      reader = -1;
      ::close(new_reader);  // no reader at all now: the sink's next write fails
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(sink.dropped() == 1);
  // Lines that fail after the torn one count once each: the newline the
  // sink puts before them (to end the torn line) is not a line of theirs.
  for (int i = 0; i < 3; ++i) {
    sink.write("lost\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (sink.dropped() < 4 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(sink.dropped() == 4);
  reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(reader >= 0);
  sink.reopen();
  sink.write("next\n");
  std::string out;
  char buf[65536];
  until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((out.size() < 5 || out.substr(out.size() - 5) != "next\n") && std::chrono::steady_clock::now() < until) {
    ssize_t n = ::read(reader, buf, sizeof(buf));
    if (n > 0) out.append(buf, static_cast<size_t>(n));
    else std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  sink.close();
  ::close(reader);
  INFO(out.size() << " bytes read");
  REQUIRE(out.size() > 6);
  CHECK(out.substr(out.size() - 6) == "\nnext\n");
  CHECK(out.find_first_not_of('t') == out.size() - 6);  // the torn part, then the new line on a line of its own
}

TEST_CASE("access_log: two sinks writing to one stdout pipe never mix within a line", "[access_log]") {
  // Lines whose length does not divide PIPE_BUF, so cutting writes at
  // PIPE_BUF would split them; and lines longer than PIPE_BUF (a client's
  // long path or metadata), which go out in pieces.
  const size_t length = GENERATE(299, 6000);
  // stdout named as a path is the same pipe (its lines were mixed so).
  const std::string b_path = GENERATE(as<std::string>{}, "", "/dev/stdout");
  INFO("lines of " << length << " bytes, the second sink's path \"" << b_path << "\"");
  // The sinks' own warnings (lines dropped while the pipe was full) go to
  // spdlog, which in this test binary writes to stdout too: not the pipe's.
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::off);
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  std::fflush(stdout);
  const int saved_stdout = ::dup(STDOUT_FILENO);
  REQUIRE(::dup2(pipe_fds[1], STDOUT_FILENO) >= 0);
  ::close(pipe_fds[1]);
  std::string out;
  std::thread reader([&] {
    char buf[65536];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  });
  {
    filters::access_log::LogSink a("");
    filters::access_log::LogSink b(b_path);
    const std::string line_a = std::string(length, 'a') + "\n";
    const std::string line_b = std::string(length, 'b') + "\n";
    const int count = length < 1000 ? 20000 : 2000;
    for (int i = 0; i < count; ++i) {
      a.write(line_a);
      b.write(line_b);
    }
    a.close();
    b.close();
  }
  std::fflush(stdout);
  ::dup2(saved_stdout, STDOUT_FILENO);  // the reader sees end of file
  ::close(saved_stdout);
  reader.join();
  ::close(pipe_fds[0]);
  size_t lines = 0, mixed = 0;
  for (size_t pos = 0; pos < out.size();) {
    size_t end = out.find('\n', pos);
    if (end == std::string::npos) end = out.size();
    std::string_view line(out.data() + pos, end - pos);
    ++lines;
    if (line.size() != length || line.find_first_not_of(line[0]) != std::string_view::npos) ++mixed;
    pos = end + 1;
  }
  spdlog::set_level(level);
  INFO(lines << " lines");
  CHECK(lines > 1000);
  CHECK(mixed == 0);
}

TEST_CASE("access_log: /dev/stdout on a file stdout has open without O_APPEND loses no line", "[access_log]") {
  // `gateway > file`: stdout's descriptor has its own offset, and a second
  // descriptor for the same file, opened with O_APPEND, wrote over its lines.
  char name[] = "/tmp/sluice-stdout-XXXXXX";
  const int file = ::mkstemp(name);
  REQUIRE(file >= 0);
  std::fflush(stdout);
  const int saved_stdout = ::dup(STDOUT_FILENO);
  REQUIRE(::dup2(file, STDOUT_FILENO) >= 0);  // O_RDWR, no O_APPEND: as a shell's `>`
  ::close(file);
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::off);
  constexpr int kLines = 500;
  {
    filters::access_log::LogSink a("");
    filters::access_log::LogSink b("/dev/stdout");
    const std::string line_a = std::string(300, 'a') + "\n";
    const std::string line_b = std::string(300, 'b') + "\n";
    // In rounds, so that the two writers' batches take turns.
    for (int i = 0; i < kLines; ++i) {
      a.write(line_a);
      b.write(line_b);
      if (i % 10 == 9) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    a.close();
    b.close();
  }
  std::fflush(stdout);
  ::dup2(saved_stdout, STDOUT_FILENO);
  ::close(saved_stdout);
  spdlog::set_level(level);
  std::ifstream in(name);
  std::string line;
  int a_lines = 0, b_lines = 0, other = 0;
  while (std::getline(in, line)) {
    if (line == std::string(300, 'a')) ++a_lines;
    else if (line == std::string(300, 'b')) ++b_lines;
    else ++other;
  }
  ::unlink(name);
  CHECK(a_lines == kLines);
  CHECK(b_lines == kLines);
  CHECK(other == 0);
}

TEST_CASE("access_log: a sink destroyed right after it was made stops its writer", "[access_log]") {
  // A stop signalled while the writer was about to wait used to be missed,
  // and the destructor's join hung (seen with config fuzz regressions).
  for (int i = 0; i < 10000; ++i) {
    filters::access_log::LogSink sink("");
  }
  SUCCEED("every writer stopped");
}

}  // namespace sluice
