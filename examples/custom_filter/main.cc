// custom_gateway: the Sluice gateway plus this project's own filter. The only
// difference from the stock `sluice` binary is one line: registering
// "message_counter" next to the built-in filters, before the stock main loads
// the config (same flags, exit codes and signals as `sluice`).
#include <memory>

#include "core/registry.h"
#include "filters/builtin.h"
#include "listeners/gateway_main.h"
#include "message_counter.h"

int main(int argc, char** argv) {
  sluice::FilterRegistry registry;
  sluice::registerBuiltinFilters(registry);
  registry.add("message_counter", std::make_unique<example::message_counter::ConfigFactory>());
  return sluice::runGatewayMain(argc, argv, registry);
}
