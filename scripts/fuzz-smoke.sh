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

# Seed a target's corpus with files behind a selector prefix (printf escapes; the targets
# json_policy and pcs_response read their first byte(s) as a selector, the rest as the body).
seed_prefixed() {
  local target=$1 prefix=$2
  shift 2
  mkdir -p "corpus/$target"
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    { printf "$prefix"; cat "$f"; } >"corpus/$target/seed-$(echo "${f#"$CONFKUBE_TESTDATA"/}" | tr '/' '_')"
  done
}
# Seed a target's corpus with one inline input (printf escapes).
seed_inline() {
  mkdir -p "corpus/$1"
  printf "$3" >"corpus/$1/seed-$2"
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
      pcs_response)
        # selector 0: tcbInfo body, 1: enclaveIdentity body, 2: CRL, 3: issuer chain.
        seed_prefixed "$t" '\x00' "$dcap"/intel-qvl-synthetic/tcbInfo.json \
          "$dcap"/mobilecoin-attestation/fmspc_*.json
        seed_prefixed "$t" '\x01' "$dcap"/intel-qvl-synthetic/qeIdentity.json \
          "$dcap"/mobilecoin-attestation/qe_identity.json
        seed_prefixed "$t" '\x02' "$dcap"/intel-qvl-synthetic/*Crl.der \
          "$dcap"/mobilecoin-attestation/*_crl.der
        seed_prefixed "$t" '\x03' "$dcap"/intel-qvl-synthetic/*Chain.pem \
          "$dcap"/mobilecoin-attestation/tcb_signer.pem ;;
    esac
  done
elif [ "${CONFKUBE_REQUIRE_TESTDATA:-0}" = 1 ]; then
  echo "fuzz-smoke: test data not found at $dcap and CONFKUBE_REQUIRE_TESTDATA=1" >&2
  exit 1
else
  echo "fuzz-smoke: notice: no test data at $dcap; starting from empty corpora"
fi

# Seeds committed with the fuzz targets (no test data needed).
for t in "${targets[@]}"; do
  case "$t" in
    maa_policy) seed "$t" "$repo"/crates/maa-policy/tests/policies/*.policy ;;
    json_policy)
      # 8 evidence bytes (product 1, svn 3, flags revocation-checked, UpToDate, MRENCLAVE 01..,
      # MRSIGNER 02..), then the policy.
      seed_inline "$t" sgx '\x01\x00\x03\x00\x04\x00\x01\x02{"rules":[{"name":"payments","mrsigner":["0202020202020202020202020202020202020202020202020202020202020202"],"isv_prod_id":[1],"min_isv_svn":3,"mrenclave":["0101010101010101010101010101010101010101010101010101010101010101"],"allow_debug":false,"tcb_statuses":["UpToDate","SWHardeningNeeded"],"forbidden_advisory_ids":["INTEL-SA-00334"],"require_revocation_checked":true},{"name":"default"}]}'
      seed_inline "$t" tdx '\x00\x00\x00\x00\x0c\x00\x05\x06{"rules":[{"name":"td","tee":"tdx","mr_td":["050505050505050505050505050505050505050505050505050505050505050505050505050505050505050505050505"],"rtmr0":["060606060606060606060606060606060606060606060606060606060606060606060606060606060606060606060606"]}]}' ;;
    attest_request)
      # selector 0: AttestRequest, 1: AttestOpenEnclaveRequest, 0xff: raw OE report.
      seed_inline "$t" sgx '\x00{"quote":"AwACAAAAAAA","runtimeData":{"data":"eyJrZXlzIjpbXX0","dataType":"JSON"},"initTimeData":{"data":"AAE=","dataType":"Binary"},"draftPolicyForAttestation":"{\\"rules\\":[{\\"name\\":\\"d\\"}]}","nonce":"n"}'
      seed_inline "$t" oe '\x01{"Report":"AQAAAAIAAAAEAAAAAAAAAAMAAgA","RuntimeData":{"Data":"AAE","DataType":"binary"}}'
      seed_inline "$t" oe-raw '\xff\x01\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x03\x00' ;;
  esac
done

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
