#!/usr/bin/env bash
# Builds the libFuzzer targets with Debian's clang (ASan + UBSan + libFuzzer,
# into build-fuzz/) and runs each one for a set time.
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#       SECONDS_PER_TARGET  default 120
#       TARGET              frame_decoder, config, grpc_headers, session, health_messages (default: all)
#   bash fuzz/run.sh --seeds     rewrites fuzz/corpus/session/ from fuzz/tools/session_seeds.cc
#   bash fuzz/run.sh --repro TARGET FILE    runs one input (SLUICE_FUZZ_LOG=debug shows the gateway's logs)
#
# The seed corpus (fuzz/corpus/<target>/, committed, small) and the regression
# inputs (fuzz/regressions/<target>/) are read; what the fuzzer learns goes to
# build-fuzz/corpus/<target>/ (kept between runs, not committed). A crash is
# written to build-fuzz/artifacts/<target>/; once fixed, copy it to
# fuzz/regressions/<target>/ so the unit tests replay it
# (test/unit/fuzz_regression_test.cc). Exit status: 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BUILD_DIR="${FUZZ_BUILD_DIR:-build-fuzz}"
ALL_TARGETS=(frame_decoder config grpc_headers session health_messages)

# Debian 12's clang-14 has libFuzzer in libclang-rt-14-dev.
need=()
command -v clang++-14 >/dev/null 2>&1 || need+=(clang-14)
ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "fuzz: installing ${need[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
bash scripts/install_deps.sh >/dev/null

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  GENERATOR=()
  if command -v ninja >/dev/null 2>&1; then GENERATOR=(-G Ninja); fi
  cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++-14 -DSLUICE_FUZZ=ON -DSLUICE_BUILD_TESTS=OFF
fi
build() { cmake --build "$BUILD_DIR" -j2 --target "$@"; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

case "${1:-}" in
  --seeds)
    build sluice_session_seeds
    rm -f fuzz/corpus/session/*
    "$BUILD_DIR/fuzz/sluice_session_seeds" fuzz/corpus/session
    ls -l fuzz/corpus/session
    exit 0
    ;;
  --repro)
    [ $# -eq 3 ] || { echo "usage: $0 --repro TARGET FILE" >&2; exit 2; }
    build "$2_fuzz"
    exec "$BUILD_DIR/fuzz/$2_fuzz" -runs=1 "$3"
    ;;
esac

DURATION="${1:-120}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")

build $(printf '%s_fuzz ' "${TARGETS[@]}")

max_len() {
  case "$1" in
    frame_decoder) echo 4096 ;;
    config) echo 8192 ;;
    grpc_headers) echo 64 ;;
    session) echo 16384 ;;
  esac
}

declare -A RESULT
failed=0
for t in "${TARGETS[@]}"; do
  work="$BUILD_DIR/corpus/$t"
  artifacts="$BUILD_DIR/artifacts/$t"
  mkdir -p "$work" "$artifacts" "fuzz/corpus/$t" "fuzz/regressions/$t"
  args=(-max_total_time="$DURATION" -max_len="$(max_len "$t")" -timeout=30 -rss_limit_mb=4096
        -print_final_stats=1 -artifact_prefix="$artifacts/")
  [ -f "fuzz/$t.dict" ] && args+=(-dict="fuzz/$t.dict")
  log="$BUILD_DIR/fuzz-$t.log"
  echo "fuzz: $t for ${DURATION}s (log: $log)"
  start=$(date +%s)
  status=0
  "$BUILD_DIR/fuzz/${t}_fuzz" "${args[@]}" "$work" "fuzz/corpus/$t" "fuzz/regressions/$t" >"$log" 2>&1 || status=$?
  runs=$(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || true)
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 || true)
  if [ "$status" -eq 0 ]; then
    RESULT[$t]="ok: ${runs:-?} runs in $(( $(date +%s) - start ))s, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) files"
  else
    failed=1
    RESULT[$t]="CRASH (exit $status): $(ls -t "$artifacts" | head -1) — see $log"
    grep -E 'ERROR|fuzz invariant|SUMMARY' "$log" | head -5 || true
  fi
done

echo
for t in "${TARGETS[@]}"; do echo "fuzz: $t: ${RESULT[$t]}"; done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: reproduce with: bash fuzz/run.sh --repro TARGET $BUILD_DIR/artifacts/TARGET/FILE"
  echo "fuzz: once fixed, keep the input: cp FILE fuzz/regressions/TARGET/"
fi
exit "$failed"
