#!/usr/bin/env python3
"""Hostile-client load against one confkube HTTPS server (attest serve or the webhook).

Opens IDLE silent, PARTIAL partial-header (over TLS) and HELLO partial-ClientHello connections,
keeps re-opening them for DURATION seconds, and meanwhile sends a /healthz request and one valid
request every 100 ms on fresh connections, recording their latency. Then opens SMALL silent
connections (fewer than --max-connections) and measures when the server closes them.
Prints one JSON object. Only loopback; bounded in count and time.
"""
import asyncio, json, os, resource, ssl, sys, time

host, port = "127.0.0.1", int(sys.argv[1])
valid_method, valid_path, valid_body = sys.argv[2], sys.argv[3], open(sys.argv[4], "rb").read()
n_each = int(os.environ.get("N_EACH", "1000"))
duration = float(os.environ.get("DURATION", "15"))
small = int(os.environ.get("SMALL", "200"))

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 3 * n_each + small + 1000), hard))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])

stats = {"attack_opened": 0, "attack_refused_or_closed": 0}

async def attacker(kind, stop):
    while time.monotonic() < stop:
        try:
            if kind == "hello":
                r, w = await asyncio.open_connection(host, port)
                w.write(b"\x16\x03\x01\x02\x00\x01")
            elif kind == "partial":
                r, w = await asyncio.open_connection(host, port, ssl=ctx)
                w.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            else:
                r, w = await asyncio.open_connection(host, port)
            stats["attack_opened"] += 1
            await r.read(1)  # until the server closes it
            stats["attack_refused_or_closed"] += 1
            w.close()
        except Exception:
            stats["attack_refused_or_closed"] += 1
            await asyncio.sleep(0.05)

async def request(method, path, body):
    t = time.monotonic()
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), 5)
    w.write(f"{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
    data = await asyncio.wait_for(r.read(), 5)
    w.close()
    return time.monotonic() - t, int(data[9:12])

async def prober(stop, lat):
    while time.monotonic() < stop:
        for m, p, b, key in (("GET", "/healthz", b"", "healthz"), (valid_method, valid_path, valid_body, "valid")):
            try:
                dt, st = await request(m, p, b)
                lat[key].append(dt)
                if st != 200:
                    lat[key + "_non200"] += 1
            except Exception:
                lat[key + "_failed"] += 1
        await asyncio.sleep(0.1)

async def closed_after(kind):
    t = time.monotonic()
    if kind == "partial":
        r, w = await asyncio.open_connection(host, port, ssl=ctx)
        w.write(b"GET / HTTP/1.1\r\nhost: x\r\n")
    elif kind == "keepalive":
        r, w = await asyncio.open_connection(host, port, ssl=ctx)
        w.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        await r.readuntil(b"ok")
        t = time.monotonic()
    else:
        r, w = await asyncio.open_connection(host, port)
    try:
        await asyncio.wait_for(r.read(), 60)
    except Exception:
        pass
    w.close()
    return time.monotonic() - t

def probe_process(stop, q):
    # Its own process and event loop: the attackers' loop must not delay the measurement.
    lat = {"healthz": [], "valid": [], "healthz_failed": 0, "valid_failed": 0,
           "healthz_non200": 0, "valid_non200": 0}
    time.sleep(2)  # let the attack reach full strength first
    asyncio.run(prober(stop, lat))
    q.put(lat)

async def main():
    import multiprocessing as mp
    stop = time.monotonic() + duration
    q = mp.Queue()
    proc = mp.Process(target=probe_process, args=(stop, q))
    proc.start()
    tasks = [asyncio.create_task(attacker(k, stop)) for k in ("idle", "partial", "hello") for _ in range(n_each)]
    while time.monotonic() < stop:
        await asyncio.sleep(0.2)
    lat = await asyncio.get_running_loop().run_in_executor(None, q.get)
    proc.join()
    for t in tasks:
        t.cancel()
    await asyncio.sleep(1)
    res = {}
    for kind in ("idle", "partial", "keepalive"):
        times = await asyncio.gather(*[closed_after(kind) for _ in range(small if kind != "keepalive" else 50)])
        res[kind] = {"n": len(times), "min_s": round(min(times), 2), "max_s": round(max(times), 2)}
    q = lambda v: {"n": len(v), "max_ms": round(1000 * max(v), 1) if v else None,
                   "p99_ms": round(1000 * sorted(v)[int(len(v) * 0.99) - 1], 1) if v else None}
    print(json.dumps({"attack_connections_per_kind": n_each, "seconds": duration,
                      "attack_opened": stats["attack_opened"],
                      "healthz": q(lat["healthz"]), "valid": q(lat["valid"]),
                      "failed": {k: v for k, v in lat.items() if not isinstance(v, list)},
                      "closed_after": res}))

asyncio.run(main())
