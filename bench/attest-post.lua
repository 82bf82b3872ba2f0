-- wrk script for bench/attest-load.sh: POST the MAA attestation request body read from the file
-- named by $BENCH_BODY, over kept-alive connections; counts non-200 answers as failures in the
-- summary (wrk prints "Non-2xx or 3xx responses").
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(assert(os.getenv("BENCH_BODY"), "BENCH_BODY is not set"), "rb"))
wrk.body = f:read("*a")
f:close()
