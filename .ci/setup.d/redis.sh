#!/usr/bin/env bash
# Installs redis-server (Debian package) for relayport-selfhosted's Redis engine tests
# (`tests/server_redis.rs` starts its own throwaway instance on a free loopback port).
# Idempotent: returns at once when `redis-server --version` already answers.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 && redis-server --version >/dev/null 2>&1; then
  echo "redis-server present: $(redis-server --version 2>&1 | head -n1)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update -qq || true
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
# The package may start a system service; the tests run their own instance, so stop it quietly.
if command -v service >/dev/null 2>&1; then
  $SUDO service redis-server stop >/dev/null 2>&1 || true
fi
redis-server --version
