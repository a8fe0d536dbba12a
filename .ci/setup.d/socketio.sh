#!/usr/bin/env bash
# Installs what relayport-socketio's end-to-end tests need: node (Debian package) and, in
# relayport-socketio/adapter/, the pinned socket.io server and the official socket.io-client
# from npm (`npm ci` from the committed package-lock.json; node_modules is never committed).
# Idempotent: returns at once when node answers and the installed packages match the lock.
set -euo pipefail
cd "$(dirname "$0")/../../relayport-socketio/adapter"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get update -qq || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
# npm writes node_modules/.package-lock.json on install; the same lock means nothing to do.
if [ -f node_modules/.package-lock.json ] \
  && [ node_modules/.package-lock.json -nt package-lock.json ] \
  && [ -f node_modules/socket.io/package.json ] \
  && [ -f node_modules/socket.io-client/package.json ]; then
  echo "socket.io test packages present: node $(node --version), socket.io $(node -p 'require("./node_modules/socket.io/package.json").version')"
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "installed: node $(node --version), socket.io $(node -p 'require("./node_modules/socket.io/package.json").version'), socket.io-client $(node -p 'require("./node_modules/socket.io-client/package.json").version')"
