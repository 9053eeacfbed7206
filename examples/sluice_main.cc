// sluice: the gateway binary. Registers the built-in filters, loads the JSON
// config and runs the Gateway until it is stopped (see listeners/gateway.h).
#include <signal.h>

#include <cstdio>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/config_errors.h"
#include "core/registry.h"
#include "filters/builtin.h"
#include "listeners/gateway.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitRuntimeError = 1;
constexpr int kExitConfigError = 2;

struct Options {
  std::string config_file;
  std::string validate_file;
  std::string log_level = "info";
  std::string ready_file;
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: sluice --config FILE [--log-level LEVEL] [--ready-file PATH]\n"
               "       sluice --validate FILE\n"
               "  --config FILE      run the gateway with this JSON config\n"
               "  --validate FILE    check the config, print every error, exit 0 (valid) or 2\n"
               "  --log-level LEVEL  trace, debug, info (default), warn, error, off\n"
               "  --ready-file PATH  once listening, write {\"listeners\":{NAME:\"IP:PORT\"}} there\n"
               "signals: SIGTERM/SIGINT drain and stop (a second one stops at once), SIGHUP reloads\n");
}

bool parseArgs(int argc, char** argv, Options& opts) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    if (arg == "--config") {
      if (!value(opts.config_file)) return false;
    } else if (arg == "--validate") {
      if (!value(opts.validate_file)) return false;
    } else if (arg == "--log-level") {
      if (!value(opts.log_level)) return false;
    } else if (arg == "--ready-file") {
      if (!value(opts.ready_file)) return false;
    } else if (arg == "--help" || arg == "-h") {
      usage(stdout);
      std::exit(kExitOk);
    } else {
      std::fprintf(stderr, "sluice: unknown argument \"%s\"\n", arg.c_str());
      return false;
    }
  }
  return opts.config_file.empty() != opts.validate_file.empty();
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  if (!parseArgs(argc, argv, opts)) {
    usage(stderr);
    return kExitConfigError;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("sluice"));
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  auto level = spdlog::level::from_str(opts.log_level);
  if (level == spdlog::level::off && opts.log_level != "off") {
    std::fprintf(stderr, "sluice: unknown log level \"%s\"\n", opts.log_level.c_str());
    return kExitConfigError;
  }
  spdlog::set_level(level);

  sluice::FilterRegistry registry;
  sluice::registerBuiltinFilters(registry);

  const std::string& file = opts.validate_file.empty() ? opts.config_file : opts.validate_file;
  sluice::Gateway gateway(registry, file);
  sluice::ConfigErrors errors;
  if (!gateway.load(errors)) {
    std::fprintf(stderr, "%s", errors.format().c_str());
    std::fprintf(stderr, "sluice: %zu error(s) in %s\n", errors.size(), file.c_str());
    return kExitConfigError;
  }
  if (!opts.validate_file.empty()) {
    std::printf("%s: valid\n", file.c_str());
    return kExitOk;
  }

  signal(SIGPIPE, SIG_IGN);
  sluice::Status started = gateway.start();
  if (!started.isOk()) {
    spdlog::error("{}", started.message());
    return kExitRuntimeError;
  }
  if (!opts.ready_file.empty() && !gateway.writeReadyFile(opts.ready_file)) {
    spdlog::error("cannot write the ready file {}", opts.ready_file);
    return kExitRuntimeError;
  }
  gateway.run();
  spdlog::info("stopped");
  return kExitOk;
}
