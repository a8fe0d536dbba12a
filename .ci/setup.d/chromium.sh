#!/usr/bin/env bash
# Installs Debian's Chromium for relayport-selfhosted/tests/pusher_mode_demo_page.rs (the demo
# page in a headless browser, driven by playwright-core from tests/pusher-js). Idempotent.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium present ($(chromium --version 2>/dev/null || echo unknown))"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update -qq || true
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
echo "chromium installed ($(chromium --version))"
