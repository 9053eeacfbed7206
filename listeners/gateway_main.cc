#include "listeners/gateway_main.h"

#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/config_errors.h"
#include "core/registry.h"
#include "listeners/gateway.h"

namespace sluice {
namespace {

struct Options {
  std::string program = "sluice";  // argv[0] without its directory, for messages
  std::string config_file;
  std::string validate_file;
  std::string log_level = "info";
  std::string ready_file;
  bool help = false;
};

void usage(FILE* out, const std::string& program) {
  const char* p = program.c_str();
  std::fprintf(out,
               "usage: %s --config FILE [--log-level LEVEL] [--ready-file PATH]\n"
               "       %s --validate FILE\n"
               "  --config FILE      run the gateway with this JSON config\n"
               "  --validate FILE    check the config, print every error, exit 0 (valid) or 2\n"
               "  --log-level LEVEL  trace, debug, info (default), warn, error, critical, off\n"
               "  --ready-file PATH  once listening, write {\"listeners\":{NAME:\"IP:PORT\"},\"admin\":\"IP:PORT\"}\n"
               "                     there (\"admin\" when the config has one)\n"
               "signals: SIGTERM/SIGINT drain and stop (a second one stops at once), SIGHUP reloads,\n"
               "SIGUSR1 reopens log files\n",
               p, p);
}

bool parseArgs(int argc, char** argv, Options& opts) {
  if (argc > 0 && argv[0] != nullptr) {
    std::string name = argv[0];
    opts.program = name.substr(name.find_last_of('/') + 1);
  }
  std::set<std::string> seen;  // flags given so far: each at most once
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string& out) {
      // A flag's value is the next argument, unless that is a flag itself
      // ("--config --validate x.json" forgot the config's file name).
      if (i + 1 >= argc || std::string_view(argv[i + 1]).starts_with("--")) {
        std::fprintf(stderr, "%s: %s needs a value\n", opts.program.c_str(), arg.c_str());
        return false;
      }
      if (!seen.insert(arg).second) {
        std::fprintf(stderr, "%s: %s given twice\n", opts.program.c_str(), arg.c_str());
        return false;
      }
      out = argv[++i];
      if (out.empty()) {
        std::fprintf(stderr, "%s: %s needs a value, got an empty one\n", opts.program.c_str(), arg.c_str());
        return false;
      }
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
      opts.help = true;
      return true;
    } else {
      std::fprintf(stderr, "%s: unknown argument \"%s\"\n", opts.program.c_str(), arg.c_str());
      return false;
    }
  }
  if (opts.config_file.empty() == opts.validate_file.empty()) {
    std::fprintf(stderr, "%s: give exactly one of --config and --validate\n", opts.program.c_str());
    return false;
  }
  if (!opts.validate_file.empty() && !opts.ready_file.empty()) {
    std::fprintf(stderr, "%s: --ready-file goes with --config (--validate starts no listener)\n",
                 opts.program.c_str());
    return false;
  }
  // The ready file replaces what is at its path: the config there would be
  // gone, and the next reload would read the ready file.
  std::error_code ec;
  if (!opts.ready_file.empty() &&
      (opts.ready_file == opts.config_file || std::filesystem::equivalent(opts.ready_file, opts.config_file, ec))) {
    std::fprintf(stderr, "%s: --ready-file %s is the config file\n", opts.program.c_str(), opts.ready_file.c_str());
    return false;
  }
  return true;
}

}  // namespace

int runGatewayMain(int argc, char** argv, const FilterRegistry& registry) {
  // Before any thread starts: every thread inherits the mask.
  Gateway::holdReloadSignals(true);
  Options opts;
  if (!parseArgs(argc, argv, opts)) {
    usage(stderr, opts.program);
    return kExitConfigError;
  }
  if (opts.help) {
    usage(stdout, opts.program);
    return kExitOk;
  }
  auto logger = spdlog::get(opts.program);  // a second run in one process reuses it
  spdlog::set_default_logger(logger ? logger : spdlog::stderr_color_mt(opts.program));
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  if (!isLogLevelName(opts.log_level)) {
    std::fprintf(stderr, "%s: unknown log level \"%s\" (known: %s)\n", opts.program.c_str(), opts.log_level.c_str(),
                 kLogLevelNames);
    return kExitConfigError;
  }
  spdlog::set_level(spdlog::level::from_str(opts.log_level));

  const std::string& file = opts.validate_file.empty() ? opts.config_file : opts.validate_file;
  Gateway gateway(registry, file);
  ConfigErrors errors;
  if (!gateway.load(errors)) {
    const std::string text = errors.format();
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fprintf(stderr, "%s: %zu error(s) in %s\n", opts.program.c_str(), errors.size(), file.c_str());
    return kExitConfigError;
  }
  if (!opts.validate_file.empty()) {
    std::printf("%s: valid\n", file.c_str());
    return kExitOk;
  }

  signal(SIGPIPE, SIG_IGN);
  Status started = gateway.start();
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

}  // namespace sluice
