// sluice_test_gateway: build/sluice plus the test-only filters of
// fault_filters.h, for e2e tests that need a filter to misbehave.
#include <memory>

#include "core/registry.h"
#include "filters/builtin.h"
#include "listeners/gateway_main.h"
#include "test/gateway/fault_filters.h"

int main(int argc, char** argv) {
  sluice::FilterRegistry registry;
  sluice::registerBuiltinFilters(registry);
  registry.add("test_faults", std::make_unique<sluice::test::FaultFilterConfigFactory>());
  return sluice::runGatewayMain(argc, argv, registry);
}
