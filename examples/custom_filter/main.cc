// custom_gateway: the Sluice gateway plus this project's own filter. The only
// difference from the stock `sluice` binary is one line: registering
// "message_counter" next to the built-in filters, before the config is loaded.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/config_errors.h"
#include "core/registry.h"
#include "filters/builtin.h"
#include "listeners/gateway.h"
#include "message_counter.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: custom_gateway --config FILE [--log-level LEVEL] [--ready-file PATH]\n"
               "       custom_gateway --validate FILE\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_file, validate_file, ready_file, log_level = "info";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) return usage();
    if (arg == "--config") {
      config_file = argv[++i];
    } else if (arg == "--validate") {
      validate_file = argv[++i];
    } else if (arg == "--ready-file") {
      ready_file = argv[++i];
    } else if (arg == "--log-level") {
      log_level = argv[++i];
    } else {
      return usage();
    }
  }
  if (config_file.empty() == validate_file.empty()) return usage();
  spdlog::set_default_logger(spdlog::stderr_color_mt("custom_gateway"));
  spdlog::set_level(spdlog::level::from_str(log_level));

  sluice::FilterRegistry registry;
  sluice::registerBuiltinFilters(registry);
  registry.add("message_counter", std::make_unique<example::message_counter::ConfigFactory>());

  const std::string& file = validate_file.empty() ? config_file : validate_file;
  sluice::Gateway gateway(registry, file);
  sluice::ConfigErrors errors;
  if (!gateway.load(errors)) {
    std::fprintf(stderr, "%s%zu error(s) in %s\n", errors.format().c_str(), errors.size(), file.c_str());
    return 2;
  }
  if (!validate_file.empty()) {
    std::printf("%s: valid\n", file.c_str());
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  sluice::Status started = gateway.start();
  if (!started.isOk()) {
    spdlog::error("{}", started.message());
    return 1;
  }
  if (!ready_file.empty() && !gateway.writeReadyFile(ready_file)) {
    spdlog::error("cannot write the ready file {}", ready_file);
    return 1;
  }
  gateway.run();  // until SIGTERM/SIGINT (graceful drain) or POST /drain
  return 0;
}
