# Sourced by the bench scripts, from the repository's root, with SLUICE_BIN and
# BENCH_BUILD_DIR set: builds sluice if it is missing, then the bench programs
# (the grpc++ load client and backend), and sets CLIENT and BACKEND to them.
if [ ! -x "$SLUICE_BIN" ]; then
  echo "== building sluice (scripts/build.sh)" >&2
  bash scripts/build.sh >&2
fi
# The bench programs: from the main build when bench/ is part of it,
# otherwise from a standalone build of bench/CMakeLists.txt.
if grep -q '^[[:space:]]*add_subdirectory(bench)' CMakeLists.txt 2>/dev/null && [ -f build/build.ninja ]; then
  cmake --build build -j2 --target sluice_bench_load_client sluice_bench_backend >&2
  BIN=build
else
  if [ ! -f "$BENCH_BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S bench -B "$BENCH_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
  fi
  cmake --build "$BENCH_BUILD_DIR" -j2 --target sluice_bench_load_client sluice_bench_backend >&2
  BIN="$BENCH_BUILD_DIR"
fi
CLIENT="$BIN/sluice_bench_load_client"
BACKEND="$BIN/sluice_bench_backend"
