#!/usr/bin/env bash
# Secret release vs plain attestation (docs/benchmarks.md#secret-release). Builds the release
# binary unless CONFKUBE_BIN is given; needs Python jwcrypto (pip install jwcrypto==1.5.6).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CONFKUBE_BIN:-}" ]; then
  cargo build --release --locked --bin confkube
  export CONFKUBE_BIN="${CARGO_TARGET_DIR:-target}/release/confkube"
fi
exec python3 bench/secret-release.py
