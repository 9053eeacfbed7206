// sluice_test_gateway: build/sluice plus the test-only filters of
// fault_filters.h and off_thread_filter.h, for e2e tests that need a filter
// to misbehave or to work on threads of its own.
#include <memory>

#include "core/registry.h"
#include "filters/builtin.h"
#include "listeners/gateway_main.h"
#include "test/gateway/fault_filters.h"
#include "test/gateway/off_thread_filter.h"

int main(int argc, char** argv) {
  sluice::FilterRegistry registry;
  sluice::registerBuiltinFilters(registry);
  registry.add("test_faults", std::make_unique<sluice::test::FaultFilterConfigFactory>());
  registry.add("test_off_thread", std::make_unique<sluice::test::OffThreadFilterConfigFactory>());
  return sluice::runGatewayMain(argc, argv, registry);
}
