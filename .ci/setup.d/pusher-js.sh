#!/usr/bin/env bash
# Installs the official Pusher SDKs (npm: pusher-js, pusher, ws, and playwright-core for the
# demo page's browser test; pinned by
# relayport-selfhosted/tests/pusher-js/package-lock.json) for
# relayport-selfhosted/tests/pusher_mode_official_sdk.rs, and node itself (Debian) if missing.
# Idempotent: returns at once when node_modules matches the lock file.
set -euo pipefail
DIR="$(cd "$(dirname "$0")/../.." && pwd)/relayport-selfhosted/tests/pusher-js"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
STAMP="$DIR/node_modules/.package-lock.json"
if [ -f "$STAMP" ] && [ -d "$DIR/node_modules/pusher-js" ] && [ -d "$DIR/node_modules/pusher" ] \
  && [ -d "$DIR/node_modules/ws" ] && [ -d "$DIR/node_modules/playwright-core" ] \
  && [ "$STAMP" -nt "$DIR/package-lock.json" ]; then
  echo "pusher-js scenario modules present (node $(node --version))"
  exit 0
fi
cd "$DIR"
npm ci --no-audit --no-fund --loglevel=error
echo "pusher-js scenario modules installed (node $(node --version))"
