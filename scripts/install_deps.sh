#!/usr/bin/env bash
# Installs the Debian 12 packages Sluice needs to build, test and run its demo,
# skipping those already present, plus any package named on the command line
# (bench/install_bench_deps.sh adds the benchmark's). Run as root (or with sudo).
#
# Package scripts are kept from starting services during the install
# (policy-rc.d): nothing here (prometheus for promtool, nginx, haproxy) is
# meant to run as a system service; tests and benchmarks start their own.
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake ninja-build pkg-config ccache
  # the gateway
  libnghttp2-dev libuv1-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libsodium-dev libxxhash-dev libssl-dev libhttp-parser-dev libmimalloc-dev libre2-dev
  # example backend and tests (real gRPC peers)
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc catch2
  # promtool, to check the Prometheus output in the tests
  prometheus
  "$@"
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

POLICY=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

echo "install_deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
