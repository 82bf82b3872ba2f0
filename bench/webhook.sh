#!/usr/bin/env bash
# Admission webhook benchmark: `confkube webhook` over TLS on loopback, driven by wrk.
#
# Two servers from the same binary, in the same run, with the same request (the FAQ's example
# pod, as an AdmissionReview v1 for a pod CREATE, over kept-alive HTTPS connections):
#   mutate    : POST /mutate-pods, full decode + kube-sgx mutate + base64 JSON patch
#   baseline  : the same server started with --passthrough (decodes the envelope, answers
#               "allowed" without looking at the pod)
# For each: (1) saturation throughput (wrk, 1 thread, 16 connections), and (2) latency at a
# fixed ~1,000 req/s (10 connections, each pausing 9 ms between requests, via wrk's Lua delay())
# with p50/p99. A third row sends the same pod without its EPC limit to /mutate-pods. Targets from issue 6: mutate throughput >= 80% of baseline, p99 < 2 ms at
# 1,000 req/s.
#
# Usage: bash bench/webhook.sh            (builds target/release/confkube)
#        CONFKUBE_BIN=path bash bench/webhook.sh
# Knobs: BENCH_SECS (default 10) seconds per measurement.
# Needs: wrk (installed with apt-get when missing), openssl, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${BENCH_SECS:-10}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk" >&2
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
for tool in openssl curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is required" >&2; exit 2; }
done

bin="${CONFKUBE_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --locked -p confkube >&2
  bin="${CARGO_TARGET_DIR:-target}/release/confkube"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$work/tls.key" -out "$work/tls.crt" >/dev/null 2>&1

cat >"$work/review.json" <<'EOF'
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"3f5b1e7e-bench","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},"namespace":"default","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:job-controller","groups":["system:serviceaccounts","system:authenticated"]},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"sgx-test-","namespace":"default","labels":{"app":"sgx-test","batch.kubernetes.io/job-name":"sgx-test","job-name":"sgx-test"},"ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"sgx-test","uid":"0d1c2b3a-0000-4000-8000-000000000001","controller":true,"blockOwnerDeletion":true}]},"spec":{"containers":[{"name":"sgxtest","image":"oeciteam/sgx-test:1.0","resources":{"limits":{"sgx.intel.com/sgx_epc_mem_in_MiB":"10"}},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Never","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler"}},"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}
EOF

# The same pod without its EPC limit: what most pods in a cluster look like to the webhook.
sed 's/"resources":{"limits":{"sgx.intel.com\/sgx_epc_mem_in_MiB":"10"}},//' "$work/review.json" >"$work/plain.json"
grep -q sgx_epc "$work/plain.json" && { echo "bench: plain body still names EPC" >&2; exit 1; }

cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "r"))
wrk.body = f:read("*a")
f:close()
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  function delay() return pause end
end
EOF

start_server() { # name port extra-args...
  local name=$1 port=$2
  shift 2
  RUST_LOG=warn "$bin" webhook --listen "127.0.0.1:$port" --tls-cert "$work/tls.crt" \
    --tls-key "$work/tls.key" --tolerate sgx.intel.com/epc:NoSchedule "$@" \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -sf --cacert "$work/tls.crt" "https://localhost:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench: $name server did not start:" >&2
  cat "$work/$name.log" >&2
  exit 1
}

# wrk output → "req/s p50_ms p99_ms"; fails on socket errors or non-2xx answers.
run_wrk() { # port connections delay_ms [body]
  local port=$1 conns=$2 pause=$3 body=${4:-$work/review.json} out
  out=$(BENCH_BODY="$body" BENCH_DELAY_MS="$pause" wrk -t1 -c"$conns" -d"${secs}s" \
    --latency -s "$work/post.lua" "https://localhost:$port/mutate-pods")
  if grep -q -e 'Non-2xx' -e 'Socket errors' <<<"$out"; then
    echo "$out" >&2
    echo "bench: errors during the run" >&2
    exit 1
  fi
  local rps p50 p99 n
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") $n"
}

cpu_ticks() { # pid → user+system clock ticks of the process so far
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# Saturation run with the server's CPU time per request (load-independent).
run_saturated() { # port pid [body] → "req/s cpu_us_per_request"
  local port=$1 pid=$2 body=${3:-$work/review.json} before after rps n
  before=$(cpu_ticks "$pid")
  read -r rps _ _ n <<<"$(run_wrk "$port" 16 0 "$body")"
  after=$(cpu_ticks "$pid")
  echo "$rps $(awk -v t=$((after - before)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"
}

to_ms() { # wrk's "812.00us" / "1.20ms" / "2.00s" → milliseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000
    printf "%.3f", n }'
}

start_server mutate 19443
start_server baseline 19444 --passthrough

# Sanity: the mutating server patches, the baseline does not.
curl -sf --cacert "$work/tls.crt" -H 'content-type: application/json' \
  --data-binary @"$work/review.json" https://localhost:19443/mutate-pods | grep -q '"patchType":"JSONPatch"'
curl -sf --cacert "$work/tls.crt" -H 'content-type: application/json' \
  --data-binary @"$work/review.json" https://localhost:19444/mutate-pods | grep -qv '"patch"'

echo "bench: ${secs}s per measurement; $(nproc) CPUs; $(wrk -v 2>&1 | head -1)" >&2
mut_pid=${pids[0]}
base_pid=${pids[1]}
read -r base_rps base_cpu <<<"$(run_saturated 19444 "$base_pid")"
read -r mut_rps mut_cpu <<<"$(run_saturated 19443 "$mut_pid")"
read -r plain_rps plain_cpu <<<"$(run_saturated 19443 "$mut_pid" "$work/plain.json")"
read -r base_rate base_p50 base_p99 _ <<<"$(run_wrk 19444 10 9)"
read -r mut_rate mut_p50 mut_p99 _ <<<"$(run_wrk 19443 10 9)"
read -r plain_rate plain_p50 plain_p99 _ <<<"$(run_wrk 19443 10 9 "$work/plain.json")"
ratio=$(awk -v a="$mut_rps" -v b="$base_rps" 'BEGIN { printf "%.1f", 100 * a / b }')
cpu_ratio=$(awk -v a="$mut_cpu" -v b="$base_cpu" 'BEGIN { printf "%.1f", 100 * b / a }')

printf '\n| server | saturation req/s | server CPU µs/req | paced req/s | p50 ms | p99 ms |\n'
printf '|---|---:|---:|---:|---:|---:|\n'
printf '| baseline (--passthrough) | %s | %s | %s | %s | %s |\n' "$base_rps" "$base_cpu" "$base_rate" "$base_p50" "$base_p99"
printf '| mutate, FAQ SGX pod (patched) | %s | %s | %s | %s | %s |\n' "$mut_rps" "$mut_cpu" "$mut_rate" "$mut_p50" "$mut_p99"
printf '| mutate, same pod without EPC (allowed) | %s | %s | %s | %s | %s |\n' "$plain_rps" "$plain_cpu" "$plain_rate" "$plain_p50" "$plain_p99"
printf '\nmutate throughput = %s%% of baseline by wall clock, %s%% by server CPU per request (target >= 80%%);\n' "$ratio" "$cpu_ratio"
printf 'mutate p99 at ~1,000 req/s = %s ms (target < 2 ms); load average now: %s\n' "$mut_p99" "$(cut -d' ' -f1-3 /proc/loadavg)"
