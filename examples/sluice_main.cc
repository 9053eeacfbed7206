// sluice: the gateway binary. The built-in filters, then the stock main
// (command line, config, run until stopped: see listeners/gateway_main.h).
#include "core/registry.h"
#include "filters/builtin.h"
#include "listeners/gateway_main.h"

int main(int argc, char** argv) {
  sluice::FilterRegistry registry;
  sluice::registerBuiltinFilters(registry);
  return sluice::runGatewayMain(argc, argv, registry);
}
