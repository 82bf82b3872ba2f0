#!/usr/bin/env bash
# TDX quote verification benchmark (issue 17): confkube warm / cold vs dcap-qvl 0.7.1 vs one
# ECDSA-P256-SHA256 verify (aws-lc-rs), on the real TDX quotes of the shared test data
# (tdx/dcap-qvl: v4 TD 1.0 and v5 TD 1.5 ex), all in one criterion run (release, bench profile).
#
# Usage: bash bench/tdx-verify.sh [criterion args]
# Clock: the benchmark thread's CPU time. Test data: CONFKUBE_TESTDATA (default
# ../shared/testdata next to the repository). No timing assertions: docs/benchmarks.md records
# the numbers.
# With CALLGRIND=1 it also counts instructions (valgrind --tool=callgrind), which the load of a
# shared machine does not change: for each verified TDX case, CG_N and 2*CG_N warm confkube
# verifications (`batch_baseline tdx-warm`) and as many P-256 verifications of the same quote
# signature (`batch_baseline tdx-p256`), default CG_N=100; the differences divided by CG_N are
# the instructions of one warm verification and of one P-256 verify, and their ratio is the
# load-independent form of issue 17 item 5 (target <= 1.15x). CRITERION=0 skips the criterion
# run.
set -euo pipefail
cd "$(dirname "$0")/dcap-compare"
export CONFKUBE_TESTDATA="${CONFKUBE_TESTDATA:-$(cd ../.. && pwd)/../shared/testdata}"
unset CARGO_TARGET_DIR

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${CRITERION:-1}" != 0 ]; then
  cargo bench --locked --bench tdx_compare -- "$@"
  echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

if [ "${CALLGRIND:-0}" = 1 ]; then
  CG_N="${CG_N:-100}"
  cargo build --release --locked --quiet --bin batch_baseline
  baseline="target/release/batch_baseline"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # Total instructions (Ir) of one callgrind run of the command.
  irs() {
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" >/dev/null 2>"$work/cg.err" \
      || { cat "$work/cg.err" >&2; exit 1; }
    grep -m1 '^summary:' "$work/cg.out" | awk '{print $2}'
  }
  for case in tdx_quote tdx_quote_td15ex; do
    w1="$(irs "$baseline" tdx-warm "$case" "$CG_N")"
    w2="$(irs "$baseline" tdx-warm "$case" "$((2 * CG_N))")"
    p1="$(irs "$baseline" tdx-p256 "$case" "$CG_N")"
    p2="$(irs "$baseline" tdx-p256 "$case" "$((2 * CG_N))")"
    python3 - "$case" "$CG_N" "$w1" "$w2" "$p1" "$p2" <<'PY'
import sys
case = sys.argv[1]
n, w1, w2, p1, p2 = (int(x) for x in sys.argv[2:])
w = (w2 - w1) / n
p = (p2 - p1) / n
print(f"callgrind {case}: warm verify {w:.0f} Ir, one P-256 verify {p:.0f} Ir: "
      f"{w / p:.3f}x (target <= 1.15x)")
PY
  done
fi
