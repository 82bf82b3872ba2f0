#!/usr/bin/env bash
# Hostile clients against both HTTPS servers under a 1,024-descriptor limit (issue 11):
# thousands of silent, partial-header and partial-ClientHello connections, while /healthz and a
# valid request are timed; then when idle/partial connections are closed.
# Usage: bench/hostile-clients.sh [BIN]   (N_EACH, DURATION, SMALL tune bench/hostile-clients.py)
set -euo pipefail
BIN=${1:-target/debug/confkube}
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$W/tls.key" -out "$W/tls.crt" 2>/dev/null
LIMITS=(--header-timeout 3s --idle-timeout 5s --tls-handshake-timeout 3s --max-connections 900)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -sk "https://127.0.0.1:$1/healthz" >/dev/null && return; sleep 0.1; done; exit 1; }

AP=$(port)
(ulimit -n 1024; exec "$BIN" attest serve --demo --data-dir "$W/data" --listen "127.0.0.1:$AP" \
  --tls-cert "$W/tls.crt" --tls-key "$W/tls.key" "${LIMITS[@]}" 2>"$W/attest.log") &
wait_up "$AP"
echo "attest serve (ulimit -n 1024, ${LIMITS[*]}):"
python3 bench/hostile-clients.py "$AP" POST '/attest/SgxEnclave?api-version=2022-08-01' "$W/data/demo/request.json"

cat > "$W/review.json" <<'JSON'
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x"}]}}}}
JSON
WP=$(port)
(ulimit -n 1024; exec "$BIN" webhook --listen "127.0.0.1:$WP" --tls-cert "$W/tls.crt" \
  --tls-key "$W/tls.key" "${LIMITS[@]}" 2>"$W/webhook.log") &
wait_up "$WP"
echo "webhook (ulimit -n 1024, ${LIMITS[*]}):"
python3 bench/hostile-clients.py "$WP" POST /validate-pods "$W/review.json"
