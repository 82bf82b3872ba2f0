#!/usr/bin/env bash
# The project's one test command (README quickstart, and what .ci/run calls).
# fmt check, clippy with warnings denied, the whole workspace's tests, the Helm chart's offline
# checks, and a short fuzz smoke.
#
# A check whose tool is missing is skipped, never passed: each skip prints
# `== SKIPPED: <check>: <why>` and the summary at the end lists every skipped check again.
# Under CI (the environment variable CI is set, as .ci/run and CI services do) missing test data
# is an error (CONFKUBE_REQUIRE_TESTDATA=1), and so are a missing protoc and missing chart tools.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONFKUBE_TESTDATA="${CONFKUBE_TESTDATA:-$(pwd)/../shared/testdata}"
if [ -n "${CI:-}" ]; then
  export CONFKUBE_REQUIRE_TESTDATA=1
  echo "== CI is set: CONFKUBE_REQUIRE_TESTDATA=1 (missing test data fails the tests)"
fi

passed=()
skipped=()
# skip CHECK WHY: report a skipped check now and in the summary.
skip() {
  skipped+=("$1: $2")
  echo "== SKIPPED: $1: $2"
}
# The summary runs on every exit, so a failing run still shows what it never ran.
summary() {
  local rc=$?
  echo
  if [ "$rc" -eq 0 ]; then
    echo "== summary: ${#passed[@]} checks passed, ${#skipped[@]} skipped"
  else
    echo "== summary: FAILED (exit $rc) after ${#passed[@]} passed checks, ${#skipped[@]} skipped"
  fi
  local c
  for c in "${passed[@]}"; do
    echo "   passed:  $c"
  done
  for c in "${skipped[@]}"; do
    echo "   SKIPPED: $c"
  done
}
trap summary EXIT

if [ ! -f "$CONFKUBE_TESTDATA/README.md" ] && [ "${CONFKUBE_REQUIRE_TESTDATA:-0}" != 1 ]; then
  skip "data-driven test cases" "no test data at $CONFKUBE_TESTDATA (set CONFKUBE_TESTDATA; \
the tests that read it return early)"
fi

echo "== cargo fetch (every crate is downloaded before the first build)"
cargo fetch --locked
echo "== cargo fmt --check"
cargo fmt --all --check
passed+=("cargo fmt --check")
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
passed+=("cargo clippy")
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
  passed+=("workspace tests (nextest, doc tests)")
else
  cargo test --workspace --locked
  passed+=("workspace tests (cargo test)")
fi
if command -v protoc >/dev/null 2>&1; then
  echo "== generated gRPC code matches crates/node-agent/proto (drift test)"
  cargo test --workspace --locked --features node-agent/codegen --test codegen_drift
  passed+=("codegen drift test")
elif [ -n "${CI:-}" ]; then
  echo "protoc is required in CI for the codegen drift test" >&2
  exit 1
else
  skip "codegen drift test" "protoc not installed (apt-get install protobuf-compiler)"
fi
echo "== Helm chart: render, validate offline, check against the binary's flags, rules tests"
if python3 -c 'import helm_python, kubernetes_validate' >/dev/null 2>&1; then
  cargo build --workspace --locked --bin confkube
  python3 scripts/chart-check.py --binary "${CARGO_TARGET_DIR:-target}/debug/confkube"
  passed+=("Helm chart checks")
elif [ -n "${CI:-}" ]; then
  echo "helm-python-sdk and kubernetes-validate are required in CI (pip install them)" >&2
  exit 1
else
  skip "Helm chart checks" "pip install helm-python-sdk kubernetes-validate (and apt-get install \
prometheus for promtool)"
fi
if [ "${CONFKUBE_FUZZ_SMOKE:-1}" != 1 ]; then
  skip "fuzz smoke" "turned off by CONFKUBE_FUZZ_SMOKE=${CONFKUBE_FUZZ_SMOKE}"
elif [ ! -d fuzz ]; then
  skip "fuzz smoke" "no fuzz/ directory"
elif ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  skip "fuzz smoke" "cargo +nightly fuzz is not available (cargo install cargo-fuzz --locked)"
else
  echo "== fuzz smoke"
  bash scripts/fuzz-smoke.sh
  passed+=("fuzz smoke")
fi
