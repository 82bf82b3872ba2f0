#!/usr/bin/env bash
# TDX quote verification benchmark (issue 17): confkube warm / cold vs dcap-qvl 0.7.1 vs one
# ECDSA-P256-SHA256 verify (aws-lc-rs), on the real TDX quotes of the shared test data
# (tdx/dcap-qvl: v4 TD 1.0 and v5 TD 1.5 ex), all in one criterion run (release, bench profile).
#
# Usage: bash bench/tdx-verify.sh [criterion args]
# Clock: the benchmark thread's CPU time. Test data: CONFKUBE_TESTDATA (default
# ../shared/testdata next to the repository). No timing assertions: docs/benchmarks.md records
# the numbers.
set -euo pipefail
cd "$(dirname "$0")/dcap-compare"
export CONFKUBE_TESTDATA="${CONFKUBE_TESTDATA:-$(cd ../.. && pwd)/../shared/testdata}"
unset CARGO_TARGET_DIR

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --locked --bench tdx_compare -- "$@"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
