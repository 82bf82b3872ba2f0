#!/usr/bin/env bash
# Node agent benchmark: idle RSS, Allocate latency (p50/p99) and re-registration time after the
# plugin socket is deleted. Runs `confkube node-agent` with a fixture machine (no SGX needed)
# against the kubelet stand-in in crates/node-agent/examples/kubelet_bench.rs.
#
#   bench/node-agent.sh [CALLS]      (PROFILE=release|dev, default release)
#
# Targets (issue 4): idle RSS < 10 MiB, Allocate p99 < 1 ms, re-registration < 2 s.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-10000}
target=${CARGO_TARGET_DIR:-target}
profile=${PROFILE:-release}
outdir=$([ "$profile" = dev ] && echo debug || echo "$profile")
cargo build --profile "$profile" -q -p confkube
cargo build --profile "$profile" -q -p node-agent --example kubelet_bench
confkube=$target/$outdir/confkube
bench=$target/$outdir/examples/kubelet_bench
dir=$(mktemp -d /tmp/na-bench.XXXXXX)
trap 'kill "$agent" "$kubelet" 2>/dev/null || true; rm -rf "$dir"' EXIT

"$bench" "$dir" "$calls" >"$dir/out" &
kubelet=$!
until grep -q kubelet=ready "$dir/out" 2>/dev/null; do sleep 0.05; done
"$confkube" --log-level warn node-agent --probe-fixture crates/node-agent/fixtures/one-socket.json \
  --device-plugin-dir "$dir" --proc-root "$dir" --socket-poll-interval 100ms &
agent=$!
until grep -q '^registered=' "$dir/out"; do sleep 0.05; done
sleep 2
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$agent/status")
wait "$kubelet"
cat "$dir/out"
echo "idle_rss_kib=$rss_kib"
