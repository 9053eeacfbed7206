// Top-level key "worker_sched_slice_us" end to end (core/thread_scheduling.h):
// every worker thread asks the kernel for that scheduler slice, which the
// kernel reports in /proc/PID/task/TID/sched ("se.slice", nanoseconds); a
// reload changes it and 0 gives the kernel's default back. On a kernel without
// custom slices (before Linux 6.12) the gateway says so in its log instead.
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;

// "se.slice" of /proc/<path>/sched, when the kernel reports one.
std::optional<uint64_t> sliceNs(const std::string& proc_path) {
  std::ifstream in("/proc/" + proc_path + "/sched");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("se.slice", 0) != 0) continue;
    return std::stoull(line.substr(line.find(':') + 1));
  }
  return std::nullopt;
}

std::string comm(const std::string& proc_path) {
  std::ifstream in("/proc/" + proc_path + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

// The slices of worker 0 (the process's own thread) and of worker 1 (the
// thread named sluice-w1); 0 for one not found.
std::pair<uint64_t, uint64_t> workerSlices(pid_t pid) {
  std::pair<uint64_t, uint64_t> out{0, 0};
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  out.first = sliceNs(std::to_string(pid) + "/task/" + std::to_string(pid)).value_or(0);
  for (const auto& entry : std::filesystem::directory_iterator(task_dir)) {
    std::string tid = entry.path().filename().string();
    std::string path = std::to_string(pid) + "/task/" + tid;
    if (comm(path) == "sluice-w1") out.second = sliceNs(path).value_or(0);
  }
  return out;
}

nlohmann::json sliceConfig(const std::string& backend, const nlohmann::json& slice_us) {
  nlohmann::json config = catchAllConfig(backend);
  config["workers"] = 2;
  if (!slice_us.is_null()) config["worker_sched_slice_us"] = slice_us;
  return config;
}

bool kernelKeepsItsSlice(GatewayProcess& gateway) {
  return gateway.logs().find("this kernel keeps its own slice") != std::string::npos;
}

}  // namespace

TEST_CASE("worker threads take worker_sched_slice_us, a reload changes it, 0 restores the kernel's", "[e2e][sched]") {
  const std::optional<uint64_t> kernel_default = sliceNs("self");
  if (!kernel_default) {
    WARN("this kernel reports no se.slice (no EEVDF scheduler): nothing to check");
    return;
  }
  TestBackend backend("b");
  GatewayProcess gateway(sliceConfig(backend.address(), 300));
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  grpc::ClientContext ctx;
  setTimeout(ctx, kCallTimeout);
  EchoResponse resp;
  grpc::Status s = stub->Unary(&ctx, EchoRequest(), &resp);
  INFO(describe(s));
  REQUIRE(s.ok());
  // Worker 1 may still be starting its loop when the gateway reports ready.
  bool applied = waitFor(
      [&] {
        return workerSlices(gateway.pid()) == std::make_pair(uint64_t{300'000}, uint64_t{300'000}) ||
               kernelKeepsItsSlice(gateway);
      },
      std::chrono::seconds(5));
  if (kernelKeepsItsSlice(gateway)) {
    WARN("this kernel has no custom slices (before Linux 6.12); the gateway said so in its log");
    return;
  }
  CHECK(applied);

  REQUIRE(reloadWithSighup(gateway, sliceConfig(backend.address(), 0).dump(2), 1));
  // Worker 1 takes a reload on its own loop, a moment after worker 0.
  bool restored = waitFor(
      [&] { return workerSlices(gateway.pid()) == std::make_pair(*kernel_default, *kernel_default); },
      std::chrono::seconds(5));
  INFO("slices after the reload to 0: " << workerSlices(gateway.pid()).first << ", "
                                         << workerSlices(gateway.pid()).second << "; kernel's: " << *kernel_default);
  CHECK(restored);

  REQUIRE(reloadWithSighup(gateway, sliceConfig(backend.address(), 150).dump(2), 2));
  CHECK(waitFor([&] { return workerSlices(gateway.pid()) == std::make_pair(uint64_t{150'000}, uint64_t{150'000}); },
                std::chrono::seconds(5)));
}

TEST_CASE("worker_sched_slice_us is 200 us by default", "[e2e][sched]") {
  if (!sliceNs("self")) {
    WARN("this kernel reports no se.slice (no EEVDF scheduler): nothing to check");
    return;
  }
  TestBackend backend("b");
  GatewayProcess gateway(sliceConfig(backend.address(), nullptr));
  const auto want = std::make_pair(uint64_t{200'000}, uint64_t{200'000});
  waitFor([&] { return workerSlices(gateway.pid()) == want || kernelKeepsItsSlice(gateway); }, std::chrono::seconds(5));
  if (kernelKeepsItsSlice(gateway)) return;
  INFO("slices: " << workerSlices(gateway.pid()).first << ", " << workerSlices(gateway.pid()).second);
  CHECK(workerSlices(gateway.pid()) == want);
}

TEST_CASE("worker_sched_slice_us below the kernel's 100 us minimum is a config error at its path", "[e2e][sched]") {
  ProcessResult result = runValidate(sliceConfig("127.0.0.1:50061", 50).dump(2));
  INFO(result.output);
  CHECK(result.exitCode == 2);
  CHECK_THAT(result.errorOutput, Catch::Contains("/worker_sched_slice_us"));
}

}  // namespace sluice::test
