#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every test
# (unit tests, then end-to-end tests with real grpc++ clients and backends),
# then the whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer
# (scripts/sanitize.sh; SLUICE_SKIP_SANITIZE=1 skips that second pass).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 600 -j1)
if [ "${SLUICE_SKIP_SANITIZE:-0}" != "1" ]; then
  bash scripts/sanitize.sh
fi
