// The answers of the resolver preloaded into a gateway (test/preload/): a
// file of "NAME IPV4[,IPV4...] DELAY_MS" lines, replaced whole on every change. Tests
// pass env() to GatewayProcess::Options::extraEnv.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace sluice::test {

class ScriptedResolver {
 public:
  ScriptedResolver()
      : path_("/tmp/sluice-resolver-" + std::to_string(::getpid()) + "-" + std::to_string(next_++)) {}
  ~ScriptedResolver() {
    std::remove(path_.c_str());
    std::remove((path_ + ".new").c_str());
  }
  struct Line {
    std::string name;
    std::string ip;  // or several, comma-separated
    int delay_ms;
  };
  void answer(const std::string& name, const std::string& ip, int delay_ms) { script({{name, ip, delay_ms}}); }
  // Every name in `names` answers `ip` after `delay_ms`; no other name resolves.
  void answerAll(const std::vector<std::string>& names, const std::string& ip, int delay_ms) {
    std::vector<Line> lines;
    for (const auto& name : names) lines.push_back({name, ip, delay_ms});
    script(lines);
  }
  // Exactly these answers; no other name resolves.
  void script(const std::vector<Line>& lines) {
    {
      std::ofstream out(path_ + ".new");
      for (const auto& l : lines) out << l.name << " " << l.ip << " " << l.delay_ms << "\n";
    }
    REQUIRE(std::rename((path_ + ".new").c_str(), path_.c_str()) == 0);
  }
  // What the gateway's environment needs for it.
  std::vector<std::string> env() const {
    const char* asan = std::getenv("ASAN_OPTIONS");
    return {std::string("LD_PRELOAD=") + SLUICE_SCRIPTED_RESOLVER_PATH, "SLUICE_TEST_RESOLVER_FILE=" + path_,
            // Under ASan the preloaded library comes before ASan's runtime.
            std::string("ASAN_OPTIONS=") + (asan != nullptr ? std::string(asan) + ":" : "") +
                "verify_asan_link_order=0"};
  }

 private:
  static inline int next_ = 0;
  std::string path_;
};

}  // namespace sluice::test
