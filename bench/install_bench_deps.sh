#!/usr/bin/env bash
# Installs what the benchmark (bench/run.sh) needs on top of the build: h2load
# (nghttp2-client) and the two peers the gateway is measured against, nginx
# (grpc_pass) and HAProxy. Their system services are never started: the
# benchmark runs its own instances in the foreground with private configs.
set -euo pipefail
exec bash "$(dirname "$0")/../scripts/install_deps.sh" nghttp2-client nginx haproxy
