#!/usr/bin/env bash
# Instructions the gateway runs per unary call, counted by callgrind.
#
# Timings on a shared 2-core VM swing 10-25% from one run to the next with the
# neighbours' load; an instruction count repeats to within 0.1%. It is no
# stand-in for bench/run.sh (it leaves out the kernel, the caches and the
# scheduler, and valgrind runs the gateway some 50x slower), but it shows what
# a change to the gateway's own code costs or saves, call for call.
#
# One worker, the bench's config (router + proxy) in front of the bench's
# grpc++ backend. For each mode, WARMUP calls are made and not counted, then
# the counters are zeroed, CALLS calls made, and the counters dumped:
#   h2load  h2load, 64 in flight over 4 connections, each call with
#           grpc-timeout 10S (as a client with a deadline sends it);
#   grpc    the grpc++ load client, same concurrency, for a whole number of
#           seconds (so the count of calls is what it reports).
# Prints instructions per call for each mode, and keeps the callgrind dumps
# (bench/results/logs/callgrind.<mode>.out) for callgrind_annotate.
#
# Environment:
#   SLUICE_BIN [build/sluice]   INSTR_MODES ["h2load grpc"]
#   INSTR_CALLS [5000]          INSTR_WARMUP [1000]   (h2load calls)
#   INSTR_SECONDS [2]           (grpc mode: seconds of calls counted)
#   BENCH_BUILD_DIR, as bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SLUICE_BIN="${SLUICE_BIN:-build/sluice}"
BENCH_BUILD_DIR="${BENCH_BUILD_DIR:-${TMPDIR:-/tmp}/sluice-bench-build}"
read -r -a MODES <<<"${INSTR_MODES:-h2load grpc}"
CALLS="${INSTR_CALLS:-5000}"
WARMUP="${INSTR_WARMUP:-1000}"
SECONDS_COUNTED="${INSTR_SECONDS:-2}"
LOGS=bench/results/logs

die() { echo "instructions: $*" >&2; exit 1; }

if ! command -v h2load >/dev/null || ! command -v valgrind >/dev/null; then
  bash scripts/install_deps.sh nghttp2-client valgrind >&2
fi
# shellcheck source=bench/programs.sh
source bench/programs.sh  # sets CLIENT and BACKEND

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-instr.XXXXXX")"
mkdir -p "$LOGS"
BACKEND_PID=""
GATEWAY_PID=""
stop() {  # stop PID: only our own children, TERM then KILL
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() { stop "$GATEWAY_PID"; stop "$BACKEND_PID"; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {  # wait_port PORT PID SECONDS
  for _ in $(seq 1 $(( $3 * 10 ))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

read -r BACKEND_PORT GATEWAY_PORT ADMIN_PORT < <("$CLIENT" --free-ports 3)
"$BACKEND" --address "127.0.0.1:$BACKEND_PORT" >"$WORK/backend.log" 2>&1 &
BACKEND_PID=$!
wait_port "$BACKEND_PORT" "$BACKEND_PID" 10 || die "the backend did not start: $(cat "$WORK/backend.log")"
"$CLIENT" --h2load-body "$WORK/unary.body" --payload 64
sed -e "s/@PORT@/$GATEWAY_PORT/" -e "s/@BACKEND_PORT@/$BACKEND_PORT/" \
  -e "s/@WORKERS_LINE@/\"workers\": 1, \"admin\": {\"address\": \"127.0.0.1:$ADMIN_PORT\"},/" \
  bench/configs/sluice.json >"$WORK/sluice.json"

# The gRPC statuses the gateway answered with, as its /stats counts them
# ("grpc.<service>.<method>.handled.<code>"): h2load only sees HTTP 200.
statuses() {
  exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT"
  printf 'GET /stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  grep -o 'handled\.[A-Za-z_]*' <&3 | sort -u | tr '\n' ' '
  exec 3<&-
}

calls() {  # calls MODE N: makes the calls, prints how many completed
  if [ "$1" = h2load ]; then
    h2load -t 1 -c 4 -m 16 -n "$2" -d "$WORK/unary.body" -H 'content-type: application/grpc' -H 'te: trailers' \
      -H 'grpc-timeout: 10S' "http://127.0.0.1:$GATEWAY_PORT/sluice.example.Echo/Unary" >"$WORK/h2load.out" 2>&1 ||
      die "h2load failed: $(tail -3 "$WORK/h2load.out")"
    grep -q "$2 succeeded" "$WORK/h2load.out" || die "not every call succeeded: $(grep requests: "$WORK/h2load.out")"
    echo "$2"
  else
    "$CLIENT" --target "127.0.0.1:$GATEWAY_PORT" --mode unary --connections 4 --concurrency 64 --payload 64 \
      --duration "$2" --warmup 0 >"$WORK/client.out" 2>&1 || die "the load client failed: $(tail -3 "$WORK/client.out")"
    grep -q ' failed=0 ' "$WORK/client.out" || die "calls failed: $(grep RESULT "$WORK/client.out")"
    grep -o ' ok=[0-9]*' "$WORK/client.out" | cut -d= -f2
  fi
}

for mode in "${MODES[@]}"; do
  case "$mode" in h2load | grpc) ;; *) die "unknown mode '$mode' (h2load or grpc)" ;; esac
  dump="$LOGS/callgrind.$mode.out"
  rm -f "$dump" "$dump".*
  valgrind --tool=callgrind --callgrind-out-file="$dump" --compress-strings=no --compress-pos=no \
    "$SLUICE_BIN" --config "$WORK/sluice.json" --log-level warn >"$WORK/gateway.$mode.log" 2>&1 &
  GATEWAY_PID=$!
  wait_port "$GATEWAY_PORT" "$GATEWAY_PID" 60 || die "the gateway did not start: $(tail -5 "$WORK/gateway.$mode.log")"
  if [ "$mode" = h2load ]; then calls h2load "$WARMUP" >/dev/null; else calls grpc 1 >/dev/null; fi
  # callgrind_control exits 0 even when it found no such run: read what it says.
  zeroed=$(callgrind_control -z "$GATEWAY_PID" 2>&1 || true)
  case "$zeroed" in *"sending command zero to pid $GATEWAY_PID"*) ;; *) die "could not zero the counters: $zeroed" ;; esac
  if [ "$mode" = h2load ]; then n=$(calls h2load "$CALLS"); else n=$(calls grpc "$SECONDS_COUNTED"); fi
  callgrind_control -d "$GATEWAY_PID" >/dev/null 2>&1
  answered=$(statuses)
  [ "$answered" = "handled.OK " ] || die "$mode: calls ended with other statuses than OK: $answered"
  stop "$GATEWAY_PID"
  GATEWAY_PID=""
  # The dump taken after the zeroing is part 1; part 0 is what came after it, at exit.
  [ -f "$dump.1" ] || die "callgrind wrote no dump (see $WORK/gateway.$mode.log)"
  mv "$dump.1" "$dump.counted"
  rm -f "$dump"
  ir=$(awk '/^summary:/ {print $2; exit}' "$dump.counted")
  [ -n "$ir" ] && [ "$n" -gt 0 ] || die "no instruction count for $mode"
  awk -v mode="$mode" -v ir="$ir" -v n="$n" -v f="$dump.counted" \
    'BEGIN {printf "%-7s %6.0f instructions per call (%d calls; %s)\n", mode, ir / n, n, f}'
done
