#!/usr/bin/env bash
# Fuzz smoke: builds every cargo-fuzz target of fuzz/ once, then runs each one briefly.
#
# Called by scripts/test.sh when fuzz/ exists and `cargo +nightly fuzz` is available.
# Needs: a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
#
# Seeds are copied at run time from the shared test data (CONFKUBE_TESTDATA, default
# ../shared/testdata next to the repository) into fuzz/corpus/<target>/, which is gitignored:
# test data is never committed. Without the data the targets start from an empty corpus, and
# quote_verify skips verification (only pck_platform runs); with CONFKUBE_REQUIRE_TESTDATA=1 (set by
# .ci/run) missing data is an error instead.
#
# Knobs (environment):
#   CONFKUBE_FUZZ_SECS       seconds per target (default 15)
#   CONFKUBE_FUZZ_JOBS       targets run at once (default: number of CPUs, at most 2)
#   CONFKUBE_FUZZ_SANITIZER  cargo-fuzz --sanitizer (default none: the targets are safe Rust,
#                            the point of the smoke is panics and failed assertions)
# Exit status: non-zero when the build fails or any target crashes; crash inputs are kept in
# fuzz/artifacts/<target>/ and the log of each run in fuzz/target/smoke/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export CONFKUBE_TESTDATA="${CONFKUBE_TESTDATA:-$repo/../shared/testdata}"
secs="${CONFKUBE_FUZZ_SECS:-15}"
sanitizer="${CONFKUBE_FUZZ_SANITIZER:-none}"
cpus=$(nproc 2>/dev/null || echo 1)
jobs="${CONFKUBE_FUZZ_JOBS:-$((cpus < 2 ? cpus : 2))}"

cd fuzz
list=$(cargo +nightly fuzz list)
mapfile -t targets <<<"$list"
if [ -z "$list" ]; then
  echo "fuzz-smoke: no targets"
  exit 0
fi
echo "fuzz-smoke: targets: ${targets[*]} (${secs}s each, ${jobs} at a time, sanitizer ${sanitizer})"
start=$(date +%s)
cargo +nightly fetch >/dev/null
cargo +nightly fuzz build --sanitizer "$sanitizer"
echo "fuzz-smoke: build took $(($(date +%s) - start))s"

# Seed a target's corpus with the files given (missing files are skipped).
seed() {
  local target=$1
  shift
  mkdir -p "corpus/$target"
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    cp "$f" "corpus/$target/seed-$(echo "${f#"$CONFKUBE_TESTDATA"/}" | tr '/' '_')"
  done
}

dcap="$CONFKUBE_TESTDATA/dcap"
if [ -d "$dcap" ]; then
  quotes=(
    "$dcap/dcap-qvl-sgx/sgx_quote"
    "$dcap"/automata-dcap-attestation/*/*.bin
    "$dcap"/oasis-core/*.bin
    "$dcap/mobilecoin-attestation/hw_quote.dat"
    "$dcap/intel-qvl-synthetic/quote.dat"
    "$dcap"/tdx/dcap-qvl/tdx_quote{,_outdated,_td15ex}
  )
  collateral=(
    "$dcap"/*/*collateral*.json
    "$dcap"/*/*/*collateral*.json
    "$dcap"/tdx/dcap-qvl/*collateral*.json
  )
  for t in "${targets[@]}"; do
    case "$t" in
      quote_parse | quote_verify | tdx_quote_parse) seed "$t" "${quotes[@]}" ;;
      collateral_parse) seed "$t" "${collateral[@]}" ;;
      sigstruct) seed "$t" \
        "$CONFKUBE_TESTDATA/enclaves/enarx-sgx-encl/encl.ss" \
        "$CONFKUBE_TESTDATA/enclaves/oasis-fortanix-sig1-sigstruct/sig1.sigstruct.bin" \
        "$CONFKUBE_TESTDATA/enclaves/intel-linux-sgx-le-prod-css/le_prod_css.bin" ;;
      sgxs_reader) seed "$t" "$CONFKUBE_TESTDATA/enclaves/enarx-sgx-encl/encl.sgxs" ;;
      enclave_keys) seed "$t" \
        "$CONFKUBE_TESTDATA/enclaves/enarx-sgx-encl/encl.pem" \
        "$CONFKUBE_TESTDATA/enclaves/oasis-fortanix-sig1-sigstruct/sig1.key.pem" \
        "$CONFKUBE_TESTDATA/enclaves/enchecap-sample-enclave/Enclave_private_test.pem" ;;
      enclave_config) seed "$t" \
        "$CONFKUBE_TESTDATA/enclaves/enchecap-sample-enclave/Enclave.config.xml" \
        "$CONFKUBE_TESTDATA/enclaves/swisstronik-enclave/Enclave.config.xml" ;;
      enclave_metadata) seed "$t" \
        "$CONFKUBE_TESTDATA/enclaves/enchecap-sample-enclave/enclave.so" \
        "$CONFKUBE_TESTDATA/enclaves/enchecap-sample-enclave/enclave.signed.so" ;;
    esac
  done
elif [ "${CONFKUBE_REQUIRE_TESTDATA:-0}" = 1 ]; then
  echo "fuzz-smoke: test data not found at $dcap and CONFKUBE_REQUIRE_TESTDATA=1" >&2
  exit 1
else
  echo "fuzz-smoke: notice: no test data at $dcap; starting from empty corpora"
fi

mkdir -p target/smoke
run_one() {
  local t=$1
  mkdir -p "corpus/$t" "artifacts/$t"
  if cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"target/smoke/$t.log" 2>&1; then
    echo ok >"target/smoke/$t.status"
  else
    echo failed >"target/smoke/$t.status"
  fi
}

running=0
for t in "${targets[@]}"; do
  rm -f "target/smoke/$t.status"
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

failed=()
printf '%-22s %-7s %12s %10s %8s\n' target result runs exec/s corpus
for t in "${targets[@]}"; do
  log="target/smoke/$t.log"
  status=$(cat "target/smoke/$t.status" 2>/dev/null || echo failed)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(ls "corpus/$t" 2>/dev/null | wc -l)
  printf '%-22s %-7s %12s %10s %8s\n' "$t" "$status" "${runs:--}" "${eps:--}" "$cov"
  if [ "$status" != ok ]; then
    failed+=("$t")
  fi
done
echo "fuzz-smoke: total $(($(date +%s) - start))s"
if [ "${#failed[@]}" -gt 0 ]; then
  for t in "${failed[@]}"; do
    echo "== fuzz-smoke: $t FAILED; last lines of fuzz/target/smoke/$t.log:"
    tail -40 "target/smoke/$t.log"
  done
  echo "fuzz-smoke: crash inputs (if any) are in fuzz/artifacts/<target>/"
  exit 1
fi
