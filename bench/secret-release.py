"""Secret release cost against plain attestation (docs/benchmarks.md#secret-release).

Starts the release `confkube attest serve` on loopback with a testkit quote whose runtime data is
a JWK set, then sends N sequential requests per mode over one kept-alive connection:
  attest            POST /attest/SgxEnclave (verify + sign a token)
  release-token     POST /secrets/db/release {"token"} (verify the token + one JWE)
  release-one-step  POST /secrets/db/release {quote, runtimeData} (verify the quote + one JWE)
for an EC P-256 and an RSA-2048 transfer key. Reports the mean and p50/p99 latency and the
server's CPU time per request (/proc/PID/stat), and the ratio to attest. Loopback only, bounded.
Env: CONFKUBE_BIN (default target/release/confkube), BENCH_N (default 500).
"""
import http.client, json, os, pathlib, socket, statistics, subprocess, sys, tempfile, time
from base64 import urlsafe_b64encode
from jwcrypto import jwk

binary = os.environ.get("CONFKUBE_BIN", "target/release/confkube")
n = int(os.environ.get("BENCH_N", "500"))
b64url = lambda b: urlsafe_b64encode(b).rstrip(b"=").decode()
tick = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    f = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick


def run(kind, work):
    key = jwk.JWK.generate(kty="RSA", size=2048) if kind == "RSA" else jwk.JWK.generate(kty="EC", crv="P-256")
    runtime = json.dumps({"keys": [json.loads(key.export_public())]})
    kit = work / f"kit-{kind}"
    subprocess.run([binary, "quote", "testkit", "--out", str(kit), "--runtime-data", runtime], check=True,
                   capture_output=True)
    meta = json.loads((kit / "testkit.json").read_text())
    coll = work / f"coll-{kind}"
    coll.mkdir()
    (coll / f"{meta['expected']['fmspc']}.json").write_text((kit / "collateral.json").read_text())
    (work / "token").write_text("bench-admin-token-0123456789abcdef")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = subprocess.Popen([binary, "attest", "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                            str(work / f"data-{kind}"), "--root-ca", str(kit / "root-ca.pem"), "--collateral-dir",
                            str(coll), "--admin-token-file", str(work / "token")], stderr=subprocess.DEVNULL)
    try:
        conn = None
        for _ in range(400):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/readyz")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.05)

        def post(path, body, admin=False, method="POST"):
            h = {"content-type": "application/json"}
            if admin:
                h["authorization"] = "Bearer bench-admin-token-0123456789abcdef"
            conn.request(method, path, json.dumps(body), h)
            r = conn.getresponse()
            data = r.read()
            assert r.status == 200, (path, r.status, data[:300])
            return json.loads(data)

        post("/secrets/db", {"value": b64url(b"x" * 64), "policy": {"rules": [{"name": "default"}]}},
             admin=True, method="PUT")
        req = {"quote": (kit / "quote.b64url").read_text().strip(),
               "runtimeData": {"data": b64url(runtime.encode()), "dataType": "JSON"}}
        token = post("/attest/SgxEnclave?api-version=2022-08-01", req)["token"]
        modes = [("attest", "/attest/SgxEnclave?api-version=2022-08-01", req),
                 ("release-token", "/secrets/db/release", {"token": token}),
                 ("release-one-step", "/secrets/db/release", req)]
        rows = []
        for name, path, body in modes:
            for _ in range(50):
                post(path, body)
            lat = []
            c0 = cpu(srv.pid)
            for _ in range(n):
                t = time.perf_counter()
                post(path, body)
                lat.append((time.perf_counter() - t) * 1e6)
            c1 = cpu(srv.pid)
            lat.sort()
            rows.append((name, statistics.mean(lat), lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1],
                         (c1 - c0) * 1e6 / n))
        return rows
    finally:
        srv.terminate()
        srv.wait()


work = pathlib.Path(tempfile.mkdtemp(prefix="bench-secrets-"))
print(f"{n} sequential requests per mode, one connection; {binary}")
print("| transfer key | mode | mean µs | p50 µs | p99 µs | server CPU µs/req | CPU vs attest |")
print("|---|---|---:|---:|---:|---:|---:|")
for kind in ("EC P-256", "RSA"):
    rows = run(kind.split()[0] if kind == "RSA" else "EC", work)
    base = rows[0][4]
    for name, mean, p50, p99, c in rows:
        print(f"| {kind if kind != 'RSA' else 'RSA-2048'} | {name} | {mean:,.0f} | {p50:,.0f} | {p99:,.0f} | {c:,.0f} | {c / base:.2f} |")
