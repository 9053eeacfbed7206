#!/usr/bin/env bash
# Soak test: mixed gRPC load through the gateway for a set time, with backend
# restarts, and a report of what clients saw and what the gateway kept.
#
#   bash bench/soak.sh [DURATION_SECONDS]        (default 180)
#
# Starts two backends (bench/soak/soak_backend.cc: the example Echo service
# plus grpc.health.v1) and sluice in front of them (health checks every
# 500 ms, retries on UNAVAILABLE), then runs bench/soak/soak_client.cc for
# DURATION seconds: unary, server-, client- and bidi-streaming calls, client
# cancels, deadlines that expire, backend errors, a new client connection
# every 200 calls per thread, and one backend restarted (SIGTERM, start again
# on the same port) every RESTART_EVERY seconds, alternating. Reports:
#   - client outcomes: ok / expected (CANCELLED on cancels, DEADLINE_EXCEEDED on
#     short deadlines, the backend's NOT_FOUND) / during a backend restart
#     (UNAVAILABLE or CANCELLED on a call overlapping one) / unexpected;
#   - the gateway's RSS and open file descriptors (/proc/PID/fd): idle at the
#     start, every 10 s under load, and idle again at the end;
#   - the gateway's exit status after SIGTERM, and its warnings and errors.
# Exit status 1 when a client saw an unexpected error or the gateway did not
# exit 0.
#
# Environment: SLUICE_BIN (default: builds build-soak/gateway/sluice; e.g.
# build-asan/sluice soaks the sanitizer build), THREADS (16), RESTART_EVERY
# (20; 0: no restarts), RECONNECT_EVERY (200 calls per client thread),
# SOAK_DIR (build-soak), HEAP_STATS=1 (also reports the gateway's glibc heap
# in use at the idle start and end: gdb attaches and calls malloc_stats(),
# which separates live memory from allocator caching in the RSS).
# Loopback only; everything started is stopped.
# The gateway's /stats (admin endpoint) at the end is kept in
# SOAK_DIR/run/stats.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DURATION="${1:-180}"
THREADS="${THREADS:-16}"
RESTART_EVERY="${RESTART_EVERY:-20}"
RECONNECT_EVERY="${RECONNECT_EVERY:-200}"
SOAK_DIR="${SOAK_DIR:-build-soak}"

GENERATOR=()
if command -v ninja >/dev/null 2>&1; then GENERATOR=(-G Ninja); fi

# ---- build (own build directories; the normal build/ is not touched) -------
if [ -z "${SLUICE_BIN:-}" ]; then
  if [ ! -f "$SOAK_DIR/gateway/CMakeCache.txt" ]; then
    cmake -S . -B "$SOAK_DIR/gateway" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_BUILD_TESTS=OFF >/dev/null
  fi
  cmake --build "$SOAK_DIR/gateway" -j2 --target sluice
  SLUICE_BIN="$SOAK_DIR/gateway/sluice"
fi
if [ ! -f "$SOAK_DIR/programs/CMakeCache.txt" ]; then
  cmake -S bench/soak -B "$SOAK_DIR/programs" "${GENERATOR[@]}" >/dev/null
fi
cmake --build "$SOAK_DIR/programs" -j2 --target sluice_soak_client sluice_soak_backend
CLIENT="$SOAK_DIR/programs/sluice_soak_client"
BACKEND="$SOAK_DIR/programs/sluice_soak_backend"

RUN="$ROOT/$SOAK_DIR/run"
rm -rf "$RUN"
mkdir -p "$RUN"
: >"$RUN/restarts"
: >"$RUN/heap"

# ---- processes ---------------------------------------------------------------
GATEWAY_PID=""
RESTARTER_PID=""
cleanup() {
  [ -n "$RESTARTER_PID" ] && kill "$RESTARTER_PID" 2>/dev/null && wait "$RESTARTER_PID" 2>/dev/null || true
  for name in a b; do
    if [ -f "$RUN/backend-$name.pid" ]; then
      pid=$(cat "$RUN/backend-$name.pid")
      kill "$pid" 2>/dev/null || true
    fi
  done
  [ -n "$GATEWAY_PID" ] && kill "$GATEWAY_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

# start_backend NAME ADDRESS: starts it (one log file per start), waits until
# it serves, prints its port.
start_backend() {
  local name=$1 address=$2 n log line
  n=$(( $(cat "$RUN/backend-$name.starts" 2>/dev/null || echo 0) + 1 ))
  echo "$n" >"$RUN/backend-$name.starts"
  log="$RUN/backend-$name-$n.log"
  "$BACKEND" --address "$address" --name "$name" >"$log" 2>&1 &
  echo $! >"$RUN/backend-$name.pid"
  for _ in $(seq 1 200); do
    line=$(grep -a -m1 "listening on" "$log" || true)
    if [ -n "$line" ]; then
      echo "${line##*:}"
      return 0
    fi
    sleep 0.05
  done
  echo "soak: backend $name did not start (see $log)" >&2
  return 1
}

PORT_A=$(start_backend a 127.0.0.1:0)
PORT_B=$(start_backend b 127.0.0.1:0)

cat >"$RUN/sluice.json" <<EOF
{
  "admin": { "address": "127.0.0.1:0" },
  "listeners": [
    { "name": "soak", "address": "127.0.0.1:0",
      "filters": [
        { "name": "metadata", "config": { "request": { "set": { "x-via": "sluice-soak" } }, "x_forwarded_for": "append" } },
        { "name": "router", "config": { "routes": [
            { "match": { "prefix": "/" }, "cluster": "echo",
              "retry": { "retry_on": ["UNAVAILABLE"], "num_retries": 3, "backoff_base_ms": 25, "backoff_max_ms": 250 } } ] } },
        { "name": "proxy" } ] } ],
  "clusters": [
    { "name": "echo", "endpoints": ["127.0.0.1:$PORT_A", "127.0.0.1:$PORT_B"], "connect_timeout_ms": 1000,
      "health_check": { "interval_ms": 500, "timeout_ms": 250, "unhealthy_threshold": 1, "healthy_threshold": 1 } } ]
}
EOF

"$SLUICE_BIN" --config "$RUN/sluice.json" --ready-file "$RUN/ready.json" --log-level warn >"$RUN/sluice.log" 2>&1 &
GATEWAY_PID=$!
for _ in $(seq 1 200); do [ -s "$RUN/ready.json" ] && break; sleep 0.05; done
[ -s "$RUN/ready.json" ] || { echo "soak: the gateway did not start (see $RUN/sluice.log)" >&2; exit 1; }
GW_ADDR=$(sed -E 's/.*"soak":"([^"]+)".*/\1/' "$RUN/ready.json")
ADMIN_PORT=$(sed -E 's/.*"admin":"[^"]*:([0-9]+)".*/\1/' "$RUN/ready.json")

# GET from the admin endpoint, with bash's /dev/tcp (no curl needed).
admin_get() {
  exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT"
  printf 'GET %s HTTP/1.0\r\nHost: soak\r\n\r\n' "$1" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$GATEWAY_PID/status"; }
fds() { ls "/proc/$GATEWAY_PID/fd" | wc -l; }
conns() { ls -l "/proc/$GATEWAY_PID/fd" 2>/dev/null | grep -c socket || true; }
sample() { printf '%-22s %8s %6s %8s\n' "$1" "$(rss_kb)" "$(fds)" "$(conns)" >>"$RUN/samples"; }
# glibc's malloc_stats() prints to the gateway's stderr (its log); only called
# while the gateway is idle, so no thread is inside malloc when gdb stops it.
heap_in_use() {
  [ "${HEAP_STATS:-0}" = 1 ] && command -v gdb >/dev/null 2>&1 || return 0
  timeout 30 gdb -p "$GATEWAY_PID" -batch -ex 'call (void)malloc_stats()' >/dev/null 2>&1 || return 0
  sleep 0.2
  echo "$1: $(grep -a -A2 '^Total (incl. mmap)' "$RUN/sluice.log" | awk '/in use bytes/ {v=$5} END {print v}') bytes" >>"$RUN/heap"
}

echo "soak: gateway $SLUICE_BIN (pid $GATEWAY_PID) on $GW_ADDR, backends on $PORT_A and $PORT_B, ${DURATION}s, $THREADS threads"
sleep 2  # health checks have run once
printf '%-22s %8s %6s %8s\n' "when" "RSS_kB" "fds" "sockets" >"$RUN/samples"
sample "start (idle)"
heap_in_use "heap in use at the start (idle)"

# ---- backend restarts, in the background ---------------------------------------
(
  [ "$RESTART_EVERY" -gt 0 ] || exit 0
  # sleep in the background and wait: a trapped TERM interrupts wait at once.
  trap 'kill $! 2>/dev/null; exit 0' TERM
  turn=0
  while sleep "$RESTART_EVERY" & wait $!; do
    if [ $((turn % 2)) -eq 0 ]; then name=a; port=$PORT_A; else name=b; port=$PORT_B; fi
    turn=$((turn + 1))
    pid=$(cat "$RUN/backend-$name.pid")
    stop_ms=$(date +%s%3N)
    echo "$stop_ms" >>"$RUN/restarts"  # under way; the full line follows when it is back
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    sleep 1
    start_backend "$name" "127.0.0.1:$port" >/dev/null || exit 1
    echo "$stop_ms $(date +%s%3N)" >>"$RUN/restarts"
  done
) &
RESTARTER_PID=$!

# ---- load ------------------------------------------------------------------------
(
  t=0
  while [ $t -lt "$DURATION" ]; do
    sleep 10
    t=$((t + 10))
    [ $t -lt "$DURATION" ] && kill -0 "$GATEWAY_PID" 2>/dev/null && sample "load ${t}s"
  done
) &
SAMPLER_PID=$!
client_status=0
"$CLIENT" --target "$GW_ADDR" --duration "$DURATION" --threads "$THREADS" \
  --reconnect-every "$RECONNECT_EVERY" --restart-log "$RUN/restarts" --report "$RUN/client.json" \
  >"$RUN/client.txt" 2>&1 || client_status=$?
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
kill "$RESTARTER_PID" 2>/dev/null || true
wait "$RESTARTER_PID" 2>/dev/null || true
RESTARTER_PID=""

# Idle again: client connections closed, restarts over.
sleep 3
gateway_alive=1
kill -0 "$GATEWAY_PID" 2>/dev/null || gateway_alive=0
if [ "$gateway_alive" -eq 1 ]; then
  sample "end (idle, +3s)"
  heap_in_use "heap in use at the end (idle)"
  admin_get /stats >"$RUN/stats.txt" 2>/dev/null || true
fi

# ---- stop the gateway (graceful) and report -----------------------------------------
gateway_status="crashed"
if [ "$gateway_alive" -eq 1 ]; then
  kill -TERM "$GATEWAY_PID"
  gateway_status=0
  wait "$GATEWAY_PID" || gateway_status=$?
fi
GATEWAY_PID=""

echo
echo "== client ($(grep -c ' ' "$RUN/restarts" || true) backend restarts)"
cat "$RUN/client.txt"
echo
echo "== gateway RSS and descriptors"
cat "$RUN/samples"
[ -s "$RUN/heap" ] && cat "$RUN/heap"
echo
echo "== gateway exit status after SIGTERM: $gateway_status"
warnings=$(grep -Eac '\[(warning|error|critical)\]' "$RUN/sluice.log" || true)
echo "== gateway log: $warnings warning/error lines ($RUN/sluice.log); by message:"
grep -Ea '\[(warning|error|critical)\]' "$RUN/sluice.log" | sed -E 's/^\[[^]]*\] //; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -15 || true

[ "$client_status" -eq 0 ] && [ "$gateway_status" = 0 ]
