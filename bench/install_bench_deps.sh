#!/usr/bin/env bash
# Installs the Debian 12 packages the benchmark (bench/run.sh) needs on top of
# scripts/install_deps.sh: h2load (nghttp2-client) and the two peers the
# gateway is measured against, nginx (grpc_pass) and HAProxy. Skips what is
# present. Run as root (or with sudo).
#
# The benchmark runs its own nginx and HAProxy instances in the foreground on
# loopback with private configs; it never uses the system services. So the
# packages' services are kept from starting during the install (policy-rc.d),
# and are not enabled or touched afterwards.
set -euo pipefail

PACKAGES=(nghttp2-client nginx haproxy)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_bench_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Keep the package scripts from starting nginx/haproxy as system services.
POLICY=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

echo "install_bench_deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
