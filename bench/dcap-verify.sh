#!/usr/bin/env bash
# DCAP quote verification benchmark: confkube warm / cold vs dcap-qvl 0.7.1 vs the floor (two
# ECDSA-P256-SHA256 verifies + SHA-256 of the 432 signed bytes, aws-lc-rs), on the real SGX
# quotes of the shared test data, all in one criterion run (release, bench profile).
#
# Usage: bash bench/dcap-verify.sh [criterion args, e.g. a filter or --quick]
# Clock: the benchmark thread's CPU time by default (robust on a shared, loaded machine);
# DCAP_BENCH_CLOCK=wall for wall-clock time.
# Test data: CONFKUBE_TESTDATA (default ../shared/testdata next to the repository).
# Build output: bench/dcap-compare/target (gitignored). No timing assertions anywhere: this
# prints numbers; docs/benchmarks.md records them.
set -euo pipefail
cd "$(dirname "$0")/dcap-compare"
export CONFKUBE_TESTDATA="${CONFKUBE_TESTDATA:-$(cd ../.. && pwd)/../shared/testdata}"
unset CARGO_TARGET_DIR

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --locked --bench dcap_compare -- "$@"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Median ns per verification (criterion; clock: ${DCAP_BENCH_CLOCK:-cpu}, thread CPU time unless" \
  "DCAP_BENCH_CLOCK=wall), $(date -u +%Y-%m-%dT%H:%MZ):"
echo
cargo bench --locked --quiet --bench summary
