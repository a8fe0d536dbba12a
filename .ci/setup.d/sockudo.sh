#!/usr/bin/env bash
# Installs sockudo (a Pusher-protocol server, crates.io) for relayport-pusher's end-to-end tests.
# Idempotent: returns at once when `sockudo --version` already answers.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
if command -v sockudo >/dev/null 2>&1 && sockudo --version >/dev/null 2>&1; then
  echo "sockudo present: $(sockudo --version 2>&1 | head -n1)"
  exit 0
fi
if ! command -v protoc >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler
  else
    sudo apt-get update -qq || true
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler
  fi
fi
# Build in its own target dir so it never contends with the workspace's build artefacts.
export CARGO_TARGET_DIR="${SOCKUDO_TARGET_DIR:-${TMPDIR:-/tmp}/target-sockudo}"
cargo install sockudo --version 5.2.0 --no-default-features --features local --locked
sockudo --version
