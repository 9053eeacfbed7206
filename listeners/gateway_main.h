// runGatewayMain: the whole `main` of a gateway binary, for the stock `sluice`
// and for embedding applications, which call it after filling the registry
// with registerBuiltinFilters() and their own filters:
//
//   int main(int argc, char** argv) {
//     sluice::FilterRegistry registry;
//     sluice::registerBuiltinFilters(registry);
//     registry.add("my_filter", std::make_unique<MyConfigFactory>());
//     return sluice::runGatewayMain(argc, argv, registry);
//   }
//
// Command line: --config FILE [--log-level LEVEL] [--ready-file PATH], or
// --validate FILE; --help. It sets up logging to stderr, loads the config
// (every error printed with its JSON path), then starts the Gateway and runs it
// until it is stopped (signals: see listeners/gateway.h). The registry must
// outlive the call.
#pragma once

namespace sluice {

class FilterRegistry;

// Exit codes.
constexpr int kExitOk = 0;
constexpr int kExitRuntimeError = 1;  // cannot listen, cannot write the ready file
constexpr int kExitConfigError = 2;   // bad command line or config

int runGatewayMain(int argc, char** argv, const FilterRegistry& registry);

}  // namespace sluice
