#!/usr/bin/env bash
# Builds everything with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/ (cmake -DSLUICE_SANITIZE=ON) and runs the whole ctest suite
# under it: the unit tests, and the e2e tests, which start build-asan/sluice.
# Any sanitizer report makes the process that hit it fail (UB is fatal, leaks
# fail the exit status), so a clean run means a clean suite. Every report is
# also kept under build-asan/sanitizer-logs/ and summarised at the end.
#
#   bash scripts/sanitize.sh [extra ctest arguments, e.g. -R "unit: "]
#
# Takes about as long as the normal test run plus a full build (see the
# timings it prints); SANITIZE_BUILD_DIR overrides build-asan (not BUILD_DIR,
# which scripts/test.sh uses for the normal build).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${SANITIZE_BUILD_DIR:-build-asan}"

bash scripts/install_deps.sh

GENERATOR=()
if command -v ninja >/dev/null 2>&1; then GENERATOR=(-G Ninja); fi

start=$(date +%s)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
else
  cmake -S . -B "$BUILD_DIR" -DSLUICE_SANITIZE=ON >/dev/null  # whatever the cache said
fi
cmake --build "$BUILD_DIR" -j2
built=$(date +%s)
BUILD_ABS=$(cd "$BUILD_DIR" && pwd)

LOG_DIR="$BUILD_ABS/sanitizer-logs"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"
# grpc++ (the test peers) keeps a few process-wide allocations alive at exit
# by design; they are not ours. Anything else that leaks is reported.
SUPP="$BUILD_ABS/lsan.supp"
cat >"$SUPP" <<'EOF'
leak:libgrpc
leak:libgpr
leak:libprotobuf
leak:libabsl
EOF

# log_path: every process (test binaries, each gateway the e2e tests start)
# writes its reports to its own file, whoever captured its stderr.
# quarantine_size_mb: freed memory is held back this long to catch use after
# free; the default (256 MB) shows up as RSS growth in the e2e tests that
# check the gateway's memory stays flat. 16 MB is still many event-loop
# iterations' worth of frees (objects are freed at the end of an iteration).
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_init_order=1:check_initialization_order=1:quarantine_size_mb=16:log_path=$LOG_DIR/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$LOG_DIR/ubsan"
export LSAN_OPTIONS="suppressions=$SUPP:print_suppressions=0"

status=0
(cd "$BUILD_DIR" && ctest --output-on-failure --timeout 1200 -j1 "$@") || status=$?
done_at=$(date +%s)

echo
echo "sanitize: build $((built - start)) s, tests $((done_at - built)) s, total $((done_at - start)) s"
reports=$(find "$LOG_DIR" -type f | sort)
if [ -n "$reports" ]; then
  echo "sanitize: $(echo "$reports" | wc -l) sanitizer report file(s):"
  for f in $reports; do
    echo "---- $f"
    head -n 60 "$f"
  done
  [ "$status" -ne 0 ] || status=1
else
  echo "sanitize: no sanitizer reports"
fi
exit "$status"
