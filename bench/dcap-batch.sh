#!/usr/bin/env bash
# Batch verification benchmark, in one run on one machine: `confkube quote verify --batch` over
# N lines of the real quote dcap/dcap-qvl-sgx/sgx_quote (release binary, every core), against a
# single-threaded dcap-qvl 0.7.1 loop over the same quote N times (collateral deserialized once,
# before timing), and N P-256 verifications with aws-lc-rs (the per-quote CPU reference).
#
# Usage: bash bench/dcap-batch.sh [N]   (default N=2000; RUNS=5 confkube runs, median reported)
# Prints wall and CPU times and the two ratios of issue 12 item 7:
#   throughput ratio  = dcap-qvl wall per quote / confkube wall per quote (target >= 20 on 2 cores)
#   CPU per quote     = confkube (user+sys) / N  vs  one P-256 verify (target <= 1.15x)
# The confkube CPU is also given as a marginal cost (run with 2N lines minus run with N lines,
# divided by N), which removes process start, collateral parsing and the first, cold
# verification. Test data: CONFKUBE_TESTDATA (default ../shared/testdata next to the repo).
# With CALLGRIND=1 it also counts instructions (valgrind --tool=callgrind, all threads), which
# the load of a shared machine does not change: confkube --batch over CG_N and 2*CG_N lines
# (default CG_N=200), batch_baseline p256 over CG_N and 2*CG_N P-256 verifications and
# batch_baseline qvl over CG_N/10 and CG_N/5 dcap-qvl verifications; the differences divided
# by the differences of N are the marginal instructions per line, per verify and per dcap-qvl
# quote: their ratios are the load-independent "CPU per quote vs one P-256 verify" and the
# per-core throughput ratio (times the cores for the 2-core projection).
# No timing assertions: this prints numbers; docs/benchmarks.md records them.
set -euo pipefail
N="${1:-2000}"
RUNS="${RUNS:-5}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
# Default: ../shared/testdata next to the repository (or two levels up, for a git worktree).
if [ -z "${CONFKUBE_TESTDATA:-}" ]; then
  CONFKUBE_TESTDATA="$repo/../shared/testdata"
  [ -d "$CONFKUBE_TESTDATA" ] || CONFKUBE_TESTDATA="$repo/../../shared/testdata"
fi
export CONFKUBE_TESTDATA
target="${CARGO_TARGET_DIR:-$repo/target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
(cd "$repo" && cargo build --release --locked --quiet --bin confkube)
(cd "$repo/bench/dcap-compare" && env -u CARGO_TARGET_DIR cargo build --release --locked --quiet --bin batch_baseline)
confkube="$target/release/confkube"
baseline="$repo/bench/dcap-compare/target/release/batch_baseline"

"$baseline" write-batch "$work/batch.jsonl" "$N"
"$baseline" write-batch "$work/batch2.jsonl" "$((2 * N))"

# One confkube run: prints "wall_s user_s sys_s"; checks that every line verified.
run() {
  local file="$1" lines="$2" t
  t="$( { TIMEFORMAT='%R %U %S'; time "$confkube" quote verify --batch "$file" >"$work/out.jsonl"; } 2>&1 )"
  local ok
  ok="$(grep -c '"verified":true' "$work/out.jsonl" || true)"
  [ "$ok" = "$lines" ] || { echo "only $ok of $lines lines verified" >&2; exit 1; }
  echo "$t"
}

echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
base_json="$("$baseline" measure "$N" | tail -1)"
echo "dcap-qvl + P-256 reference: $base_json"
: >"$work/runs"
for _ in $(seq "$RUNS"); do
  echo "$(run "$work/batch.jsonl" "$N") $(run "$work/batch2.jsonl" "$((2 * N))")" >>"$work/runs"
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "confkube runs (wall user sys for N lines, then for 2N lines):"
cat "$work/runs"

python3 - "$N" "$base_json" "$work/runs" <<'PY'
import json, statistics, sys
n = int(sys.argv[1]); b = json.loads(sys.argv[2])
runs = [list(map(float, l.split())) for l in open(sys.argv[3]) if l.strip()]
wall = statistics.median(r[0] for r in runs)
cpu = statistics.median(r[1] + r[2] for r in runs)
marg = statistics.median(((r[4] + r[5]) - (r[1] + r[2])) for r in runs)
qvl_wall = b["dcap_qvl_wall_ns"] / n / 1e3
qvl_cpu = b["dcap_qvl_cpu_ns"] / n / 1e3
p256 = b["p256_verify_cpu_ns"] / n / 1e3
ck_wall = wall / n * 1e6
ck_cpu = cpu / n * 1e6
ck_marg = marg / n * 1e6
print(f"N = {n}")
print(f"dcap-qvl 0.7.1, 1 thread: {qvl_wall:.1f} us wall per quote ({qvl_cpu:.1f} us CPU)")
print(f"confkube --batch: {wall*1e3:.1f} ms wall for {n} lines = {ck_wall:.1f} us wall per quote (median of {len(runs)})")
print(f"throughput ratio confkube / dcap-qvl: {qvl_wall / ck_wall:.1f}x (target >= 20x)")
print(f"one P-256 verify (aws-lc-rs): {p256:.1f} us CPU")
print(f"confkube CPU per quote: {ck_cpu:.1f} us total ({ck_cpu / p256:.2f}x P-256), "
      f"{ck_marg:.1f} us marginal ({ck_marg / p256:.2f}x P-256) (target <= 1.15x)")
PY

if [ "${CALLGRIND:-0}" = 1 ]; then
  CG_N="${CG_N:-200}"
  # Total instructions (Ir) of one callgrind run of the command.
  irs() {
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" >/dev/null 2>"$work/cg.err" \
      || { cat "$work/cg.err" >&2; exit 1; }
    grep -m1 '^summary:' "$work/cg.out" | awk '{print $2}'
  }
  "$baseline" write-batch "$work/cg1.jsonl" "$CG_N"
  "$baseline" write-batch "$work/cg2.jsonl" "$((2 * CG_N))"
  ck1="$(irs "$confkube" quote verify --batch "$work/cg1.jsonl")"
  ck2="$(irs "$confkube" quote verify --batch "$work/cg2.jsonl")"
  p1="$(irs "$baseline" p256 "$CG_N")"
  p2="$(irs "$baseline" p256 "$((2 * CG_N))")"
  q1="$(irs "$baseline" qvl "$((CG_N / 10))")"
  q2="$(irs "$baseline" qvl "$((2 * CG_N / 10))")"
  python3 - "$CG_N" "$ck1" "$ck2" "$p1" "$p2" "$q1" "$q2" <<'PY'
import sys
n, ck1, ck2, p1, p2, q1, q2 = (int(x) for x in sys.argv[1:])
ck = (ck2 - ck1) / n
p = (p2 - p1) / n
q = (q2 - q1) / (n // 10)
print(f"callgrind: dcap-qvl loop {q1} Ir for {n // 10}, {q2} Ir for {2 * (n // 10)}: {q:.0f} Ir "
      f"per quote = {q / p:.1f} P-256 verifies")
print(f"callgrind: instructions per quote dcap-qvl / confkube --batch = {q / ck:.1f}x per core; "
      f"on 2 cores with every line's instructions at the same speed: {2 * q / ck:.1f}x "
      f"throughput (target >= 20x)")
print(f"callgrind: confkube --batch {ck1} Ir for {n} lines, {ck2} Ir for {2*n} lines")
print(f"callgrind: P-256 verify loop {p1} Ir for {n}, {p2} Ir for {2*n}")
print(f"callgrind: {ck:.0f} Ir per batch line (marginal) / {p:.0f} Ir per P-256 verify "
      f"= {ck / p:.3f}x (target <= 1.15x)")
PY
fi
