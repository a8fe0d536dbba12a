#!/usr/bin/env bash
# Installs the official ably npm SDK (version pinned by peers/ably/js/package-lock.json) for
# relayport-peer-ably's `tests/official_sdk.rs`, which runs it against the peer with node.
# Idempotent: returns at once when node_modules already holds the locked version.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../.." && pwd)/peers/ably/js"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
locked="$(node -e 'console.log(require(process.argv[1]).packages["node_modules/ably"].version)' "$dir/package-lock.json")"
installed="$(node -e 'try{console.log(require(process.argv[1]).version)}catch{console.log("")}' "$dir/node_modules/ably/package.json")"
if [ "$locked" = "$installed" ]; then
  echo "ably npm SDK present: $installed"
  exit 0
fi
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
echo "ably npm SDK installed: $(node -e 'console.log(require(process.argv[1]).version)' "$dir/node_modules/ably/package.json")"
