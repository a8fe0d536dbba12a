#!/usr/bin/env bash
# Installs the official @supabase/realtime-js (pinned in peers/supabase/js/package-lock.json)
# for peers/supabase/tests/official_sdk.rs, with `npm ci` from the npm registry. Idempotent:
# returns at once when node_modules matches the lock file. Installs Node.js from Debian when
# node is missing.
set -euo pipefail
cd "$(dirname "$0")/../../peers/supabase/js"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq || true
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
# npm ci records the installed tree in node_modules/.package-lock.json; when it is newer than
# the lock file, nothing changed since the last install.
if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ] \
  && [ -d node_modules/@supabase/realtime-js ] && [ -d node_modules/ws ]; then
  echo "realtime-js present: $(node -p "require('./node_modules/@supabase/realtime-js/package.json').version")"
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "realtime-js installed: $(node -p "require('./node_modules/@supabase/realtime-js/package.json').version")"
