// Replays what the fuzzers found (fuzz/regressions/<target>/) and their seed
// corpora (fuzz/corpus/<target>/) through the fuzz entry points, so that a
// fixed crash stays fixed in the normal test run. An input that breaks an
// invariant aborts the binary with the reason on stderr, after the file name.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_entry_points.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputsOf(const std::string& kind, const std::string& target) {
  std::vector<fs::path> files;
  fs::path dir = fs::path(SLUICE_FUZZ_DIR) / kind / target;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().filename().string().front() != '.') files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

size_t replay(const std::string& target) {
  FuzzEntryPoint entry = fuzzEntryPoint(target);
  REQUIRE(entry != nullptr);
  size_t n = 0;
  for (const char* kind : {"regressions", "corpus"}) {
    for (const fs::path& file : inputsOf(kind, target)) {
      std::ifstream in(file, std::ios::binary);
      REQUIRE(in.good());
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::fprintf(stderr, "fuzz replay: %s\n", file.c_str());
      entry(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++n;
    }
  }
  return n;
}

}  // namespace

TEST_CASE("fuzz regressions: frame_decoder", "[fuzz]") { CHECK(replay("frame_decoder") > 0); }
TEST_CASE("fuzz regressions: config", "[fuzz]") { CHECK(replay("config") > 0); }
TEST_CASE("fuzz regressions: grpc_headers", "[fuzz]") { CHECK(replay("grpc_headers") > 0); }
TEST_CASE("fuzz regressions: session", "[fuzz]") { CHECK(replay("session") > 0); }
TEST_CASE("fuzz regressions: health_messages", "[fuzz]") { CHECK(replay("health_messages") > 0); }

}  // namespace sluice
