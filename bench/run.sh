#!/usr/bin/env bash
# bench/run.sh — Sluice against the gRPC proxies people run today, same
# machine, same run, same backend.
#
# Starts one grpc++ backend (bench/bench_backend.cc) and, in front of it on
# loopback, sluice, nginx (grpc_pass) and HAProxy (h2c both sides), each
# configured for gRPC the way an expert would (configs: bench/configs/). Then,
# alternating targets, measures:
#   (a) unary, small messages, 64 in flight over 4 connections: h2load req/s
#       and latency percentiles; the same with the grpc++ load client, which
#       also counts grpc-status (h2load only sees HTTP 200);
#   (b) server-streaming and bidi throughput, 64 KiB messages, MB/s;
#   (c) RSS growth of the target for 10,000 idle bidi streams and 2,000 idle
#       h2c connections (each on a freshly started target);
#   (d) direct client -> backend, the ceiling.
# Prints a side-by-side table with ratios and writes it to bench/results/latest.md.
#
# Usage: bash bench/run.sh            (a full run takes a few minutes)
# Knobs (environment, defaults in brackets):
#   BENCH_DURATION [4]  BENCH_WARMUP [1]  seconds measured / warmed per measurement
#   BENCH_ROUNDS [3]    repeat every throughput measurement; the table shows medians
#   BENCH_MEMORY_ROUNDS [1]  rounds that also run the (slow, stable) memory tests
#   BENCH_TARGETS ["direct sluice nginx haproxy"]
#   BENCH_TESTS ["unary-h2load unary-grpc server-stream bidi idle-streams idle-conns"]
#               also available, not run by default: large-unary large-stream
#               (BENCH_LARGE_BYTES [1000000] unary payloads, 8 in flight on one
#               connection; server-streaming BENCH_LARGE_STREAM_BYTES [4000000] messages)
#   BENCH_BACKEND_WARMUP [3]  seconds of unmeasured load on the backend at start
#   BENCH_WORKERS [nproc]   worker processes/threads of every proxy (sluice only
#                           if its config accepts "workers")
#   BENCH_CONNECTIONS [4] BENCH_CONCURRENCY [64] BENCH_PAYLOAD [64]   unary
#   BENCH_STREAMS [4] BENCH_MESSAGE_BYTES [65536] BENCH_WINDOW [8]
#   BENCH_MESSAGES_PER_CALL [256]                                      streaming
#   BENCH_IDLE_STREAMS [10000] BENCH_IDLE_STREAM_CONNECTIONS [10] BENCH_IDLE_CONNS [2000]
#   BENCH_SETTLE [1]      seconds to let RSS settle before reading it
#   BENCH_OUT [bench/results/latest.md]
#   BENCH_BUILD_DIR       where the bench programs are built when the main
#                         build (build/) does not have them
#                         [${TMPDIR:-/tmp}/sluice-bench-build]
#   SLUICE_BIN [build/sluice]
#   BENCH_GATEWAY_POLICY [other]  Linux scheduling policy of every gateway
#                         (sluice, nginx, HAProxy alike): "other" (the default
#                         policy) or "batch" (chrt -b 0: a gateway thread that
#                         wakes does not preempt the client or backend)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

DURATION="${BENCH_DURATION:-4}"
WARMUP="${BENCH_WARMUP:-1}"
ROUNDS="${BENCH_ROUNDS:-3}"
MEMORY_ROUNDS="${BENCH_MEMORY_ROUNDS:-1}"
read -r -a TARGETS <<<"${BENCH_TARGETS:-direct sluice nginx haproxy}"
read -r -a TESTS <<<"${BENCH_TESTS:-unary-h2load unary-grpc server-stream bidi idle-streams idle-conns}"
WORKERS="${BENCH_WORKERS:-$(nproc)}"
CONNECTIONS="${BENCH_CONNECTIONS:-4}"
CONCURRENCY="${BENCH_CONCURRENCY:-64}"
PAYLOAD="${BENCH_PAYLOAD:-64}"
STREAMS="${BENCH_STREAMS:-4}"
MESSAGE_BYTES="${BENCH_MESSAGE_BYTES:-65536}"
WINDOW="${BENCH_WINDOW:-8}"
MESSAGES_PER_CALL="${BENCH_MESSAGES_PER_CALL:-256}"
IDLE_STREAMS="${BENCH_IDLE_STREAMS:-10000}"
IDLE_STREAM_CONNECTIONS="${BENCH_IDLE_STREAM_CONNECTIONS:-10}"
IDLE_CONNS="${BENCH_IDLE_CONNS:-2000}"
SETTLE="${BENCH_SETTLE:-1}"
OUT="${BENCH_OUT:-bench/results/latest.md}"
SLUICE_BIN="${SLUICE_BIN:-build/sluice}"
BENCH_BUILD_DIR="${BENCH_BUILD_DIR:-${TMPDIR:-/tmp}/sluice-bench-build}"
H2LOAD_STREAMS_PER_CONN=$(( CONCURRENCY / CONNECTIONS ))
ms() { awk -v s="$1" 'BEGIN {printf "%dms", s*1000}'; }  # h2load wants whole units

log() { echo "== $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# ------------------------------------------------------------------ tools
need_install=0
for tool in h2load nginx haproxy; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || need_install=1
done
if [ "$need_install" = 1 ]; then
  log "installing the benchmark's packages (bench/install_bench_deps.sh)"
  bash bench/install_bench_deps.sh >&2
fi
export PATH="$PATH:/usr/sbin"

# shellcheck source=bench/programs.sh
source bench/programs.sh  # builds sluice if missing, and the bench programs: sets CLIENT and BACKEND

# ------------------------------------------------------------------ processes
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")"
LOGS="$ROOT/bench/results/logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"
declare -A PID=()

stop_pid() {  # stop_pid PID: TERM, wait up to 5 s, then KILL (only our own children)
  local p="$1" i
  kill -TERM "$p" 2>/dev/null || return 0
  for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then
    local c
    for c in $(pgrep -P "$p" 2>/dev/null || true); do kill -KILL "$c" 2>/dev/null || true; done  # nginx workers
    kill -KILL "$p" 2>/dev/null || true
  fi
  wait "$p" 2>/dev/null || true
}
cleanup() {
  local name
  for name in "${!PID[@]}"; do stop_pid "${PID[$name]}"; done
  cp -f "$WORK"/*.log "$WORK"/*.conf "$WORK"/*.cfg "$WORK"/*.json "$LOGS"/ 2>/dev/null || true
  cp -f "$WORK"/nginx/*.log "$LOGS"/ 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {  # wait_port PORT NAME PID
  local i
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || die "$2 exited at startup (see $LOGS/$2.log)"
    sleep 0.1
  done
  die "$2 is not listening on $1"
}

read -r BACKEND_PORT SLUICE_PORT NGINX_PORT HAPROXY_PORT < <("$CLIENT" --free-ports 4)
case "${BENCH_GATEWAY_POLICY:-other}" in
  other) GATEWAY_RUN=(); GATEWAY_POLICY_NOTE="SCHED_OTHER (the default)" ;;
  batch) GATEWAY_RUN=(chrt -b 0); GATEWAY_POLICY_NOTE="SCHED_BATCH (chrt -b 0, every gateway alike)" ;;
  *) die "BENCH_GATEWAY_POLICY must be other or batch, not ${BENCH_GATEWAY_POLICY}" ;;
esac
declare -A PORT=([direct]=$BACKEND_PORT [sluice]=$SLUICE_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT)

start_backend() {
  "$BACKEND" --address "127.0.0.1:$BACKEND_PORT" >"$WORK/backend.log" 2>&1 &
  PID[direct]=$!
  wait_port "$BACKEND_PORT" backend "${PID[direct]}"
}

write_sluice_config() {
  local workers_line=""
  # "workers" (issue 6) only when this build of sluice knows it.
  printf '{"workers": %s, "listeners":[{"name":"g","address":"127.0.0.1:1","filters":[{"name":"proxy"}]}],"clusters":[]}\n' \
    "$WORKERS" >"$WORK/probe.json"
  if "$SLUICE_BIN" --validate "$WORK/probe.json" >/dev/null 2>&1; then
    workers_line="\"workers\": $WORKERS,"
    SLUICE_WORKERS_NOTE="$WORKERS"
  else
    SLUICE_WORKERS_NOTE="1 (no \"workers\" in config yet)"
  fi
  sed -e "s/@PORT@/$SLUICE_PORT/" -e "s/@BACKEND_PORT@/$BACKEND_PORT/" \
      -e "s/@WORKERS_LINE@/$workers_line/" bench/configs/sluice.json >"$WORK/sluice.json"
}
start_sluice() {
  rm -f "$WORK/sluice.ready"
  "${GATEWAY_RUN[@]}" "$SLUICE_BIN" --config "$WORK/sluice.json" --log-level warn --ready-file "$WORK/sluice.ready" \
    >>"$WORK/sluice.log" 2>&1 &
  PID[sluice]=$!
  local i
  for i in $(seq 1 100); do [ -f "$WORK/sluice.ready" ] && break; sleep 0.1; done
  wait_port "$SLUICE_PORT" sluice "${PID[sluice]}"
}

write_nginx_config() {
  mkdir -p "$WORK/nginx"
  local user_line=""
  [ "$(id -u)" = 0 ] && user_line="user nobody nogroup;"
  sed -e "s|@PREFIX@|$WORK/nginx|g" -e "s/@PORT@/$NGINX_PORT/" -e "s/@BACKEND_PORT@/$BACKEND_PORT/" \
      -e "s/@WORKERS@/$WORKERS/" -e "s/@USER_LINE@/$user_line/" bench/configs/nginx.conf >"$WORK/nginx.conf"
  nginx -t -q -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx.conf" >&2 ||
    die "nginx rejected its config ($WORK/nginx.conf)"
}
start_nginx() {
  "${GATEWAY_RUN[@]}" nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx.conf" >>"$WORK/nginx.log" 2>&1 &
  PID[nginx]=$!
  wait_port "$NGINX_PORT" nginx "${PID[nginx]}"
}

write_haproxy_config() {
  sed -e "s/@PORT@/$HAPROXY_PORT/" -e "s/@BACKEND_PORT@/$BACKEND_PORT/" -e "s/@WORKERS@/$WORKERS/" \
      bench/configs/haproxy.cfg >"$WORK/haproxy.cfg"
  haproxy -c -q -f "$WORK/haproxy.cfg" >&2 || die "haproxy rejected its config ($WORK/haproxy.cfg)"
}
start_haproxy() {
  "${GATEWAY_RUN[@]}" haproxy -db -f "$WORK/haproxy.cfg" >>"$WORK/haproxy.log" 2>&1 &
  PID[haproxy]=$!
  wait_port "$HAPROXY_PORT" haproxy "${PID[haproxy]}"
}

start_target() {
  case "$1" in
    direct) ;;  # the backend runs all along
    sluice) start_sluice ;;
    nginx) start_nginx ;;
    haproxy) start_haproxy ;;
  esac
}
restart_target() {
  [ "$1" = direct ] && return 0
  stop_pid "${PID[$1]}"
  unset "PID[$1]"
  start_target "$1"
  sleep 0.3
}

# What was measured, read before sluice starts (others may rebuild it meanwhile).
SLUICE_BUILT="$SLUICE_BIN built $(date -u -r "$SLUICE_BIN" '+%Y-%m-%d %H:%M:%S UTC' 2>/dev/null), tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' + local changes')"
log "ports: backend $BACKEND_PORT, sluice $SLUICE_PORT, nginx $NGINX_PORT, haproxy $HAPROXY_PORT; workers $WORKERS"
write_sluice_config
write_nginx_config
write_haproxy_config
start_backend
for t in "${TARGETS[@]}"; do start_target "$t"; done
"$CLIENT" --h2load-body "$WORK/unary.body" --payload "$PAYLOAD"
# grpc++ grows its thread pools on demand: warm the backend up once, unmeasured.
log "warming the backend up (${BENCH_BACKEND_WARMUP:-3}s)"
h2load -t 1 -c "$CONNECTIONS" -m "$H2LOAD_STREAMS_PER_CONN" -D "$(ms "${BENCH_BACKEND_WARMUP:-3}")" \
  -d "$WORK/unary.body" -H 'content-type: application/grpc' -H 'te: trailers' \
  "http://127.0.0.1:$BACKEND_PORT/sluice.example.Echo/Unary" >/dev/null 2>&1 || true

# ------------------------------------------------------------------ results
declare -A R=()      # R[test/target/metric] = "v1 v2 ..." (one per round)
declare -A ERR=()    # ERR[target] = number of failed calls / requests
ERRORS_TEXT=""
record() { R["$1/$2/$3"]="${R["$1/$2/$3"]:-} $4"; }
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<" $2" | head -1; }
add_error() {  # add_error TARGET COUNT TEXT
  ERR[$1]=$(( ${ERR[$1]:-0} + $2 ))
  ERRORS_TEXT+="- $1, $3"$'\n'
}

LINE=""
run_client() {  # run_client TEST TARGET ARGS... -> the RESULT line in $LINE
  local test="$1" target="$2"; shift 2
  local out="$WORK/$test.$target.out" err="$WORK/$test.$target.err" rc=0
  "$CLIENT" --target "127.0.0.1:${PORT[$target]}" "$@" >"$out" 2>"$err" || rc=$?
  local line
  line=$(grep '^RESULT' "$out" | tail -1 || true)
  if [ "$rc" != 0 ] || [ -z "$line" ]; then
    local failed
    failed=$(field failed "$line"); failed=${failed:-1}; [ "$failed" = 0 ] && failed=1
    add_error "$target" "$failed" "$test: client exit $rc: ${line:-no result} $(tr '\n' ' ' <"$err" | cut -c1-600)"
    cat "$err" >&2
  fi
  LINE="$line"
}

measure() {  # measure TEST TARGET
  local test="$1" target="$2" line
  case "$test" in
    unary-h2load)
      local hl="$WORK/h2load.$target.requests" out="$WORK/h2load.$target.out"
      rm -f "$hl"
      h2load -t 1 -c "$CONNECTIONS" -m "$H2LOAD_STREAMS_PER_CONN" -D "$(ms "$DURATION")" --warm-up-time="$(ms "$WARMUP")" \
        -d "$WORK/unary.body" -H 'content-type: application/grpc' -H 'te: trailers' \
        --log-file="$hl" "http://127.0.0.1:${PORT[$target]}/sluice.example.Echo/Unary" >"$out" 2>&1 || true
      local rps ok=0 failed=0 errored=0 timeout=0 non2xx=0 counts
      rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$out")
      counts=$(sed -n \
        's/^requests: .* \([0-9]*\) succeeded, \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/\1 \2 \3 \4/p' "$out")
      [ -n "$counts" ] && read -r ok failed errored timeout <<<"$counts"
      non2xx=$(sed -n 's/^status codes: [0-9]* 2xx, \([0-9]*\) 3xx, \([0-9]*\) 4xx, \([0-9]*\) 5xx.*/\1 \2 \3/p' "$out" |
        awk '{print $1+$2+$3}')
      if [ -z "$rps" ]; then
        add_error "$target" 1 "unary-h2load: h2load printed no result: $(tr '\n' ' ' <"$out" | cut -c1-400)"
        return
      fi
      local bad=$(( ${failed:-0} + ${errored:-0} + ${timeout:-0} + ${non2xx:-0} ))
      if [ "$bad" -gt 0 ]; then
        add_error "$target" "$bad" \
          "unary-h2load: $failed failed, $errored errored, $timeout timeout, $non2xx non-2xx of $((ok + failed)) requests"
      fi
      record "$test" "$target" rps "${rps%.*}"
      # Latency percentiles from h2load's per-request log (3rd column: µs).
      if [ -s "$hl" ]; then
        local p
        p=$(awk '{print $3}' "$hl" | sort -n | awk '{v[NR]=$1} END {
              n=NR; if (n==0) {print "0 0 0"; exit}
              i50=int(0.50*(n-1)+1.5); i99=int(0.99*(n-1)+1.5); i999=int(0.999*(n-1)+1.5);
              if (i999>n) i999=n; if (i99>n) i99=n;
              print v[i50], v[i99], v[i999] }')
        read -r p50 p99 p999 <<<"$p"
        record "$test" "$target" p50_us "$p50"
        record "$test" "$target" p99_us "$p99"
        record "$test" "$target" p999_us "$p999"
      fi
      ;;
    unary-grpc)
      run_client "$test" "$target" --mode unary --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" \
        --payload "$PAYLOAD" --duration "$DURATION" --warmup "$WARMUP"
      line="$LINE"
      [ -n "$line" ] || return 0
      record "$test" "$target" rps "$(field rps "$line")"
      record "$test" "$target" p50_us "$(field p50_us "$line")"
      record "$test" "$target" p99_us "$(field p99_us "$line")"
      record "$test" "$target" p999_us "$(field p999_us "$line")"
      ;;
    large-unary)
      run_client "$test" "$target" --mode unary --connections 1 --concurrency 8 \
        --payload "${BENCH_LARGE_BYTES:-1000000}" --duration "$DURATION" --warmup "$WARMUP" --timeout 10
      line="$LINE"
      [ -n "$line" ] || return 0
      record "$test" "$target" rps "$(field rps "$line")"
      ;;
    large-stream)
      run_client "$test" "$target" --mode server-stream --connections 1 --streams 1 \
        --message-bytes "${BENCH_LARGE_STREAM_BYTES:-4000000}" --messages-per-call 4 \
        --duration "$DURATION" --warmup "$WARMUP" --timeout 10
      line="$LINE"
      [ -n "$line" ] || return 0
      record "$test" "$target" mbps "$(field mbps "$line")"
      ;;
    server-stream|bidi)
      run_client "$test" "$target" --mode "$test" --connections "$CONNECTIONS" --streams "$STREAMS" \
        --message-bytes "$MESSAGE_BYTES" --messages-per-call "$MESSAGES_PER_CALL" --window "$WINDOW" \
        --duration "$DURATION" --warmup "$WARMUP"
      line="$LINE"
      [ -n "$line" ] || return 0
      record "$test" "$target" mbps "$(field mbps "$line")"
      ;;
    idle-streams)
      restart_target "$target"
      run_client "$test" "$target" --mode idle-streams --connections "$IDLE_STREAM_CONNECTIONS" \
        --streams "$IDLE_STREAMS" --settle "$SETTLE" --timeout 60 --rss-pid "${PID[$target]}"
      line="$LINE"
      [ -n "$line" ] || return 0
      record "$test" "$target" bytes "$(field bytes_per_stream "$line")"
      ;;
    idle-conns)
      restart_target "$target"
      run_client "$test" "$target" --mode idle-conns --count "$IDLE_CONNS" --settle "$SETTLE" \
        --timeout 60 --rss-pid "${PID[$target]}"
      line="$LINE"
      [ -n "$line" ] || return 0
      record "$test" "$target" bytes "$(field bytes_per_connection "$line")"
      ;;
  esac
}

# The machine may be shared (builds, other jobs): before each measurement wait
# (up to BENCH_QUIET_WAIT s) until the CPUs are mostly idle, and remember when
# they were not.
QUIET_WAIT="${BENCH_QUIET_WAIT:-60}"
NOISY=0
cpu_busy_percent() {  # over 0.5 s, all CPUs
  local a b
  a=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
  sleep 0.5
  b=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {split(a,x," "); split(b,y," "); t=y[2]-x[2]; print (t>0) ? int(100*(y[1]-x[1])/t) : 0}'
}
wait_quiet() {
  local until=$(( $(date +%s) + QUIET_WAIT )) busy
  while :; do
    busy=$(cpu_busy_percent)
    [ "$busy" -le 15 ] && return 0
    if [ "$(date +%s)" -ge "$until" ]; then
      log "machine still ${busy}% busy with other work; measuring anyway"
      NOISY=$((NOISY + 1))
      return 0
    fi
  done
}

# CPU used by other work while a measurement ran: all busy CPU time minus
# what the benchmark's own processes (targets, backend, clients) used.
# Ticks are USER_HZ (100/s) both in /proc/stat and /proc/PID/stat.
proc_ticks() {  # PID -> utime+stime of it and its children (nginx workers)
  local p t=0 c
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    c=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)
    t=$((t + ${c:-0}))
  done
  echo "$t"
}
cpu_snapshot() {  # -> "total_busy_ticks our_ticks"
  local busy ours name
  busy=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9}' /proc/stat)
  # the script's own CPU and that of its waited-for children (clients, h2load, stopped targets)
  ours=$(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$$/stat")
  for name in "${!PID[@]}"; do ours=$((ours + $(proc_ticks "${PID[$name]}"))); done
  echo "$busy $ours"
}
# Where the CPU went during one measurement, by role: the gateway (target
# process tree; none for direct), the backend, and the load clients (the
# script's waited-for children: the client or h2load of this measurement).
role_ticks() {  # TARGET -> "gateway_ticks backend_ticks client_ticks"
  local gw=0
  [ "$1" != direct ] && [ -n "${PID[$1]:-}" ] && gw=$(proc_ticks "${PID[$1]}")
  echo "$gw $(proc_ticks "${PID[direct]}") $(awk '{sub(/^.*\) /, ""); print $14 + $15}' "/proc/$$/stat")"
}
core_percent() { awk -v t="$1" -v ns="$2" 'BEGIN {printf "%d", (ns > 0) ? t / (ns / 1e7) * 100 : 0}'; }  # ticks, ns -> % of one core
declare -A FOREIGN=()  # FOREIGN[test/target] = % of one core used by other work (worst round)
NOISE_LIMIT="${BENCH_NOISE_LIMIT:-20}"

START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$ROUNDS"); do
  for test in "${TESTS[@]}"; do
    # Alternate: each round starts the rotation one target later.
    n=${#TARGETS[@]}
    for k in $(seq 0 $((n - 1))); do
      target=${TARGETS[$(( (k + round - 1) % n ))]}
      # direct's idle connections would only show the grpc++ backend reusing
      # memory it freed earlier: not measured.
      [ "$test/$target" = idle-conns/direct ] && continue
      case "$test" in idle-*) [ "$round" -gt "$MEMORY_ROUNDS" ] && continue ;; esac
      wait_quiet
      log "round $round/$ROUNDS: $test via $target"
      read -r busy0 ours0 <<<"$(cpu_snapshot)"
      read -r gw0 be0 cl0 <<<"$(role_ticks "$target")"
      t0=$(date +%s%N)
      measure "$test" "$target"
      read -r busy1 ours1 <<<"$(cpu_snapshot)"
      read -r gw1 be1 cl1 <<<"$(role_ticks "$target")"
      t1=$(date +%s%N)
      case "$test" in
        idle-*) ;;  # the target was restarted mid-measurement: its ticks start over
        *)
          record "$test" "$target" gw_cpu "$(core_percent $((gw1 - gw0)) $((t1 - t0)))"
          record "$test" "$target" be_cpu "$(core_percent $((be1 - be0)) $((t1 - t0)))"
          record "$test" "$target" cl_cpu "$(core_percent $((cl1 - cl0)) $((t1 - t0)))" ;;
      esac
      foreign=$(awk -v b=$((busy1 - busy0)) -v o=$((ours1 - ours0)) -v ns=$((t1 - t0)) \
        'BEGIN {f = (b - o) / (ns / 1e7) * 100; if (f < 0) f = 0; printf "%d", f}')
      if [ "$foreign" -gt "${FOREIGN[$test/$target]:-0}" ]; then FOREIGN[$test/$target]=$foreign; fi
      log "  other work used ${foreign}% of a core meanwhile"
      # Every target must still be alive after every measurement.
      for t in "${TARGETS[@]}"; do
        if [ -n "${PID[$t]:-}" ] && ! kill -0 "${PID[$t]}" 2>/dev/null; then
          add_error "$t" 1 "process died during $test via $target (see bench/results/logs/)"
          unset "PID[$t]"
          start_target "$t"
        fi
      done
    done
  done
done
ELAPSED=$(( $(date +%s) - START ))

# ------------------------------------------------------------------ table
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{v[NR]=$1} END {
  if (NR==0) print ""; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'; }
value() { median <<<"${R["$1/$2/$3"]:-}"; }

PEERS=()
for t in "${TARGETS[@]}"; do case "$t" in nginx|haproxy) PEERS+=("$t") ;; esac; done
has_target() { local t; for t in "${TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }

fmt_num() {  # fmt_num VALUE UNIT-KIND
  local v="$1"
  [ -z "$v" ] && { echo "—"; return; }
  case "$2" in
    rps) awk -v v="$v" 'BEGIN {s=sprintf("%d", v); o=""; while (length(s)>3) {o="," substr(s,length(s)-2) o; s=substr(s,1,length(s)-3)}; print s o}' ;;
    ms) awk -v v="$v" 'BEGIN {printf "%.2f", v/1000}' ;;
    mbps) awk -v v="$v" 'BEGIN {printf "%.0f", v}' ;;
    bytes) awk -v v="$v" 'BEGIN {printf "%.1f KiB", v/1024}' ;;
  esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a=="" || b=="" || b+0==0) print "—"; else printf "%.2f×", a/b}'; }

# best_peer TEST METRIC higher|lower -> "target value"
best_peer() {
  local best="" bestv="" t v
  for t in "${PEERS[@]}"; do
    v=$(value "$1" "$t" "$2")
    [ -z "$v" ] && continue
    if [ -z "$bestv" ] || awk -v a="$v" -v b="$bestv" -v d="$3" 'BEGIN {exit !((d=="higher") ? a>b : a<b)}'; then
      best=$t; bestv=$v
    fi
  done
  echo "$best $bestv"
}

TABLE="$WORK/table.md"
{
  echo "| measurement | $(for t in "${TARGETS[@]}"; do printf '%s | ' "$t"; done)sluice vs best peer | target | holds |"
  echo "|---|$(for t in "${TARGETS[@]}"; do printf -- '---:|'; done)---:|---|---|"
} >"$TABLE"
TARGET_LINES=""

# row TEST METRIC LABEL KIND higher|lower TARGET-TEXT CHECK
#   CHECK: "ratio:1.2" (sluice >= 1.2 x best peer), "le-peer" (sluice <= best peer),
#          "max:N" (sluice <= N), "" (none)
row() {
  local test="$1" metric="$2" label="$3" kind="$4" dir="$5" target_text="$6" check="$7"
  local direct cells="" t v bp bpt bpv sv vs holds="" rel
  direct=$(value "$test" direct "$metric")
  for t in "${TARGETS[@]}"; do
    v=$(value "$test" "$t" "$metric")
    if [ -z "$v" ]; then cells+="— | "; continue; fi
    local mark=""
    [ "${FOREIGN[$test/$t]:-0}" -gt "$NOISE_LIMIT" ] && mark=" ~"
    if [ "$t" != direct ] && [ -n "$direct" ] && [ "$kind" != bytes ]; then
      cells+="$(fmt_num "$v" "$kind") ($(ratio "$v" "$direct"))$mark | "
    else
      cells+="$(fmt_num "$v" "$kind")$mark | "
    fi
  done
  read -r bpt bpv <<<"$(best_peer "$test" "$metric" "$dir")"
  sv=$(value "$test" sluice "$metric")
  vs="—"
  [ -n "$bpv" ] && [ -n "$sv" ] && vs="$(ratio "$sv" "$bpv") ($bpt)"
  case "$check" in
    ratio:*)
      rel=${check#ratio:}
      if [ -n "$sv" ] && [ -n "$bpv" ]; then
        awk -v s="$sv" -v b="$bpv" -v r="$rel" 'BEGIN {exit !(s >= r*b)}' && holds="yes" || holds="**no**"
      fi ;;
    le-peer)
      if [ -n "$sv" ] && [ -n "$bpv" ]; then
        awk -v s="$sv" -v b="$bpv" 'BEGIN {exit !(s <= b)}' && holds="yes" || holds="**no**"
      fi ;;
    max:*)
      if [ -n "$sv" ]; then
        awk -v s="$sv" -v m="${check#max:}" 'BEGIN {exit !(s <= m)}' && holds="yes" || holds="**no**"
      fi ;;
  esac
  echo "| $label | $cells$vs | $target_text | ${holds:-—} |" >>"$TABLE"
  if [ -n "$check" ]; then TARGET_LINES+="$label: ${holds:-not measured}"$'\n'; fi
}

for test in "${TESTS[@]}"; do
  case "$test" in
    unary-h2load)
      row "$test" rps "unary req/s (h2load)" rps higher "≥ 1.2× best peer" ratio:1.2
      row "$test" p50_us "unary p50 ms (h2load)" ms lower "" ""
      row "$test" p99_us "unary p99 ms (h2load)" ms lower "≤ best peer" le-peer
      row "$test" p999_us "unary p99.9 ms (h2load)" ms lower "" "" ;;
    unary-grpc)
      row "$test" rps "unary req/s (grpc++)" rps higher "≥ 1.2× best peer" ratio:1.2
      row "$test" p50_us "unary p50 ms (grpc++)" ms lower "" ""
      row "$test" p99_us "unary p99 ms (grpc++)" ms lower "≤ best peer" le-peer
      row "$test" p999_us "unary p99.9 ms (grpc++)" ms lower "" "" ;;
    server-stream)
      row "$test" mbps "server-streaming MB/s (64 KiB msgs)" mbps higher "≥ 1.2× best peer" ratio:1.2 ;;
    bidi)
      row "$test" mbps "bidi MB/s (64 KiB msgs, echoed)" mbps higher "≥ 1.2× best peer" ratio:1.2 ;;
    large-unary)
      row "$test" rps "unary req/s, ${BENCH_LARGE_BYTES:-1000000}-byte messages, 8 in flight" rps higher "" "" ;;
    large-stream)
      row "$test" mbps "server-streaming MB/s, ${BENCH_LARGE_STREAM_BYTES:-4000000}-byte messages" mbps higher "" "" ;;
    idle-streams)
      row "$test" bytes "RSS per idle stream ($IDLE_STREAMS streams)" bytes lower "≤ 8 KiB" max:8192 ;;
    idle-conns)
      row "$test" bytes "RSS per idle connection ($IDLE_CONNS conns)" bytes lower "≤ 40 KiB" max:40960 ;;
  esac
done
# CPU by role, and throughput per core the gateway burned: how the 2 cores
# were shared explains most ratios to direct (client and backend slow down
# when a gateway takes its share).
CPU_TABLE="$WORK/cpu.md"
{
  echo "| measurement | $(for t in "${TARGETS[@]}"; do printf '%s | ' "$t"; done)"
  echo "|---|$(for t in "${TARGETS[@]}"; do printf -- '---:|'; done)"
} >"$CPU_TABLE"
cpu_rows() {  # cpu_rows TEST LABEL METRIC KIND
  local test="$1" label="$2" metric="$3" kind="$4" t cells="" per="" g b c v
  for t in "${TARGETS[@]}"; do
    g=$(value "$test" "$t" gw_cpu); b=$(value "$test" "$t" be_cpu); c=$(value "$test" "$t" cl_cpu)
    v=$(value "$test" "$t" "$metric")
    if [ -z "$b" ]; then cells+="— | "; per+="— | "; continue; fi
    if [ "$t" = direct ]; then cells+="— / $b / $c | "; per+="— | "; continue; fi
    cells+="$g / $b / $c | "
    per+="$(awk -v v="$v" -v g="$g" 'BEGIN {if (v=="" || g+0==0) print "—"; else print v / (g / 100)}' |
      { read -r x; [ "$x" = — ] && echo — || fmt_num "$x" "$kind"; }) | "
  done
  echo "| $label: CPU % of a core, gateway / backend / client | $cells" >>"$CPU_TABLE"
  echo "| $label per gateway core | $per" >>"$CPU_TABLE"
}
# Every round's figure, in the order measured: how far one run's medians can
# be trusted (the peers' cells and sluice's move by ~10% between runs).
ROUNDS_TABLE="$WORK/rounds.md"
{
  echo "| measurement | $(for t in "${TARGETS[@]}"; do printf '%s | ' "$t"; done)"
  echo "|---|$(for t in "${TARGETS[@]}"; do printf -- '---:|'; done)"
} >"$ROUNDS_TABLE"
round_row() {  # round_row TEST METRIC LABEL KIND
  local t cells="" v out
  for t in "${TARGETS[@]}"; do
    out=""
    for v in ${R["$1/$t/$2"]:-}; do out+="${out:+, }$(fmt_num "$v" "$4")"; done
    cells+="${out:-—} | "
  done
  echo "| $3 | $cells" >>"$ROUNDS_TABLE"
}

for test in "${TESTS[@]}"; do
  case "$test" in
    unary-h2load) round_row "$test" rps "unary req/s (h2load)" rps; round_row "$test" p99_us "unary p99 ms (h2load)" ms ;;
    unary-grpc) round_row "$test" rps "unary req/s (grpc++)" rps; round_row "$test" p99_us "unary p99 ms (grpc++)" ms ;;
    server-stream) round_row "$test" mbps "server-streaming MB/s" mbps ;;
    bidi) round_row "$test" mbps "bidi MB/s" mbps ;;
    large-unary) round_row "$test" rps "large unary req/s" rps ;;
    large-stream) round_row "$test" mbps "large server-streaming MB/s" mbps ;;
  esac
done

for test in "${TESTS[@]}"; do
  case "$test" in
    unary-h2load) cpu_rows "$test" "unary req/s (h2load)" rps rps ;;
    unary-grpc) cpu_rows "$test" "unary req/s (grpc++)" rps rps ;;
    server-stream) cpu_rows "$test" "server-streaming MB/s" mbps mbps ;;
    bidi) cpu_rows "$test" "bidi MB/s" mbps mbps ;;
    large-unary) cpu_rows "$test" "large unary req/s" rps rps ;;
    large-stream) cpu_rows "$test" "large server-streaming MB/s" mbps mbps ;;
  esac
done

errs=""
for t in "${TARGETS[@]}"; do errs+="${ERR[$t]:-0} | "; done
sluice_errs="${ERR[sluice]:-0}"
echo "| errors (failed calls/requests, all tests) | $errs | 0 | $([ "$sluice_errs" = 0 ] && echo yes || echo '**no**') |" >>"$TABLE"
if has_target sluice; then
  TARGET_LINES+="no errors through sluice: $([ "$sluice_errs" = 0 ] && echo yes || echo no)"$'\n'
fi

MACHINE="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB"
REPORT="$WORK/report.md"
{
  echo "# Sluice benchmark — latest run"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $MACHINE; client, gateway and backend share the cores."
  echo "Reproduce: \`bash bench/run.sh\` (this run: BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_ROUNDS=$ROUNDS BENCH_WORKERS=$WORKERS; took ${ELAPSED}s)."
  echo
  echo "Load average (1/5/15 min) at start: $LOAD_START. Shared machine: each measurement waited (up to ${QUIET_WAIT}s) for the CPUs"
  echo "to be idle ($NOISY started busy anyway); a cell marked ~ had other work use more than ${NOISE_LIMIT}% of a core while it ran."
  echo
  echo "Targets: direct = client → grpc++ backend (the ceiling); sluice ($SLUICE_BUILT, workers: $SLUICE_WORKERS_NOTE);"
  echo "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') (grpc_pass, $WORKERS workers); HAProxy $(haproxy -v | head -1 | awk '{print $3}') (h2c both sides, $WORKERS threads)."
  echo "Configs: bench/configs/. Backend: bench/bench_backend.cc (grpc++ callback API). Gateways' scheduling policy: $GATEWAY_POLICY_NOTE."
  echo
  echo "Cells: median of $ROUNDS round(s) (memory: $MEMORY_ROUNDS); (×) = ratio to direct. Unary: $CONCURRENCY calls in flight over $CONNECTIONS connections,"
  echo "$PAYLOAD-byte payload, ${DURATION}s measured after ${WARMUP}s warm-up. Streaming: $STREAMS streams over $CONNECTIONS connections,"
  echo "$MESSAGE_BYTES-byte messages (server-streaming: $MESSAGES_PER_CALL per call; bidi: $WINDOW in flight per stream, echoed), MB = 10^6 bytes received."
  echo "Memory: RSS growth of the target process(es) (nginx: master + workers) divided by the streams/connections held open,"
  echo "each test on a freshly started target; direct's column is the grpc++ backend's own growth, for scale only."
  echo
  cat "$TABLE"
  echo
  echo "Where the CPU went (median of the rounds; % of one core averaged over the measurement and its warm-up;"
  echo "$(nproc) cores = $(( $(nproc) * 100 ))%), and each gateway's throughput divided by the cores it used:"
  echo
  cat "$CPU_TABLE"
  echo
  echo "Each round's figure, in the order measured:"
  echo
  cat "$ROUNDS_TABLE"
  echo
  echo "Targets of issue 6:"
  echo
  printf '%s' "$TARGET_LINES" | sed 's/^/- /'
  echo "- zero allocations per message: not measured by this benchmark"
  if [ -n "$ERRORS_TEXT" ]; then
    echo
    echo "Errors seen:"
    echo
    printf '%s' "$ERRORS_TEXT"
  fi
} >"$REPORT"
mkdir -p "$(dirname "$OUT")"
cp "$REPORT" "$OUT"
echo
cat "$REPORT"
