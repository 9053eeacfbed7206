// sluice: the gateway binary. Loads a JSON config, runs one worker with its
// listeners and clusters, and stops cleanly on SIGINT/SIGTERM.
#include <signal.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/config.h"
#include "core/config_errors.h"
#include "core/registry.h"
#include "filters/builtin.h"
#include "listeners/worker.h"

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
               "  --ready-file PATH  once listening, write {\"listeners\":{NAME:\"IP:PORT\"}} there\n");
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

bool writeReadyFile(const std::string& path, const sluice::Worker& worker) {
  nlohmann::json doc;
  doc["listeners"] = nlohmann::json::object();
  for (const auto& [name, addr] : worker.boundListeners()) doc["listeners"][name] = addr.toString();
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) return false;
    out << doc.dump() << "\n";
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// SIGINT/SIGTERM: the first stops the worker cleanly, a second exits at once.
class SignalHandlers {
 public:
  SignalHandlers(uv_loop_t* loop, sluice::Worker& worker) : worker_(worker) {
    for (int signum : {SIGINT, SIGTERM}) {
      auto* h = new uv_signal_t;
      uv_signal_init(loop, h);
      h->data = this;
      uv_signal_start(h, onSignal, signum);
      uv_unref(reinterpret_cast<uv_handle_t*>(h));  // signals alone don't keep the loop running
      handles_.push_back(h);
    }
  }
  ~SignalHandlers() {
    for (auto* h : handles_) {
      h->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* p) { delete reinterpret_cast<uv_signal_t*>(p); });
    }
  }

 private:
  static void onSignal(uv_signal_t* h, int signum) noexcept {
    if (h->data != nullptr) static_cast<SignalHandlers*>(h->data)->handle(signum);
  }
  void handle(int signum) {
    if (stopping_) {
      spdlog::warn("second signal ({}): exiting now", strsignal(signum));
      std::_Exit(kExitOk);
    }
    stopping_ = true;
    spdlog::info("{}: shutting down", strsignal(signum));
    worker_.shutdown();
  }

  sluice::Worker& worker_;
  std::vector<uv_signal_t*> handles_;
  bool stopping_ = false;
};

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
  sluice::ConfigErrors errors;
  sluice::GatewayConfigConstPtr config = sluice::loadConfigFile(file, registry, errors);
  if (!config) {
    std::fprintf(stderr, "%s", errors.format().c_str());
    std::fprintf(stderr, "sluice: %zu error(s) in %s\n", errors.size(), file.c_str());
    return kExitConfigError;
  }
  if (!opts.validate_file.empty()) {
    std::printf("%s: valid\n", file.c_str());
    return kExitOk;
  }
  if (!config->log_level.empty()) spdlog::set_level(spdlog::level::from_str(config->log_level));

  signal(SIGPIPE, SIG_IGN);
  sluice::Worker worker(config);
  sluice::Status started = worker.start();
  if (!started.isOk()) {
    spdlog::error("{}", started.message());
    return kExitRuntimeError;
  }
  if (!opts.ready_file.empty() && !writeReadyFile(opts.ready_file, worker)) {
    spdlog::error("cannot write the ready file {}", opts.ready_file);
    return kExitRuntimeError;
  }
  {
    SignalHandlers signals(worker.dispatcher().loop(), worker);
    worker.run();
  }
  spdlog::info("stopped");
  return kExitOk;
}
