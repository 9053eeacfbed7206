#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, starts the
# example backend and the gateway with examples/configs/demo.json in front of
# it, makes real gRPC calls through the gateway and shows the answers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh

B=build
WORK="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== starting the example backend on 127.0.0.1:50061"
"$B/sluice_example_backend" --address 127.0.0.1:50061 --name demo-backend &
pids+=($!)
echo "== starting sluice with examples/configs/demo.json"
"$B/sluice" --config examples/configs/demo.json --ready-file "$WORK/ready.json" &
pids+=($!)
for _ in $(seq 1 100); do [ -f "$WORK/ready.json" ] && break; sleep 0.1; done
[ -f "$WORK/ready.json" ] || { echo "sluice did not start"; exit 1; }
sleep 0.3
echo "== calling through the gateway (127.0.0.1:8080)"
"$B/sluice_example_client" --target 127.0.0.1:8080 --name demo
echo "== demo OK"
