#!/usr/bin/env bash
# The project's one test command (README quickstart, and what .ci/run calls).
# fmt check, clippy with warnings denied, the whole workspace's tests, the Helm chart's offline
# checks, and a short fuzz smoke.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONFKUBE_TESTDATA="${CONFKUBE_TESTDATA:-$(pwd)/../shared/testdata}"

echo "== cargo fetch (every crate is downloaded before the first build)"
cargo fetch --locked
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked
fi
if command -v protoc >/dev/null 2>&1; then
  echo "== generated gRPC code matches crates/node-agent/proto (drift test)"
  cargo test --workspace --locked --features node-agent/codegen --test codegen_drift
elif [ -n "${CI:-}" ]; then
  echo "protoc is required in CI for the codegen drift test" >&2
  exit 1
else
  echo "== drift test skipped: protoc not installed (apt-get install protobuf-compiler)"
fi
echo "== Helm chart: render, validate offline, check against the binary's flags, rules tests"
if python3 -c 'import helm_python, kubernetes_validate' >/dev/null 2>&1; then
  cargo build --workspace --locked --bin confkube
  python3 scripts/chart-check.py --binary "${CARGO_TARGET_DIR:-target}/debug/confkube"
elif [ -n "${CI:-}" ]; then
  echo "helm-python-sdk and kubernetes-validate are required in CI (pip install them)" >&2
  exit 1
else
  echo "== chart checks skipped: pip install helm-python-sdk kubernetes-validate (and apt-get install prometheus for promtool)"
fi
if [ "${CONFKUBE_FUZZ_SMOKE:-1}" = 1 ] && [ -d fuzz ] && cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== fuzz smoke"
  bash scripts/fuzz-smoke.sh
elif [ "${CONFKUBE_FUZZ_SMOKE:-1}" = 1 ]; then
  echo "== fuzz smoke skipped: cargo +nightly fuzz is not available (cargo install cargo-fuzz)"
fi
