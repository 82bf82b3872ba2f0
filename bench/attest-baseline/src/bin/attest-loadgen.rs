//! Fixed-rate (open-loop) HTTP/1.1 load generator for `bench/attest-load.sh`.
//!
//! wrk cannot hold a request rate and Debian has no wrk2, so this does what wrk2 does: request
//! number i is *scheduled* at t0 + i/rate, and when no connection is free at that time its
//! latency is measured from the scheduled time, not from when a connection became free to send
//! it. A server that falls behind therefore shows its queueing delay in the percentiles (no
//! coordinated omission). A request whose connection was idle and waiting for its slot is
//! measured from its actual send (the tokio timer wakes up to ~1 ms late; that is not the
//! server's latency). Requests go over
//! `--connections` kept-alive connections; each connection takes the next free slot of the
//! schedule, waits for its time and sends. Bounded: stops scheduling after `--duration` seconds
//! and gives in-flight requests at most 10 s more.
//!
//! Usage: attest-loadgen --url http://127.0.0.1:PORT/PATH?QUERY --body FILE --rate REQ_PER_S
//!                       --duration SECS [--connections N]
//! Prints one line: `sent=N ok=N errors=N rps=F p50_ms=F p90_ms=F p99_ms=F max_ms=F`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Plan {
    addr: String,
    host: String,
    path: String,
    body: Bytes,
    rate: f64,
    t0: Instant,
    slots: u64,
    next: AtomicU64,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    lat_us: Vec<u64>,
    last_done: Option<Instant>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> Option<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

async fn worker(plan: Arc<Plan>, hard_stop: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut sender: Option<Sender> = None;
    loop {
        let i = plan.next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.slots {
            break;
        }
        let scheduled = plan.t0 + Duration::from_secs_f64(i as f64 / plan.rate);
        // Latency is measured from the scheduled time when this connection got to the slot late
        // (the server was still busy with its previous request: real queueing), and from the
        // actual send when it had to wait for the slot (then any lateness is only the timer's
        // ~1 ms granularity, an artifact of the generator, not of the server).
        let start = if Instant::now() < scheduled {
            tokio::time::sleep_until(scheduled.into()).await;
            Instant::now()
        } else {
            scheduled
        };
        if Instant::now() >= hard_stop {
            tally.errors += 1;
            continue;
        }
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = connect(&plan.addr).await;
        }
        let Some(s) = sender.as_mut() else {
            tally.errors += 1;
            continue;
        };
        let ok = async {
            s.ready().await.ok()?;
            let req = Request::post(&plan.path)
                .header("host", &plan.host)
                .header("content-type", "application/json")
                .body(Full::new(plan.body.clone()))
                .ok()?;
            let resp = s.send_request(req).await.ok()?;
            let status = resp.status();
            resp.into_body().collect().await.ok()?;
            Some(status.is_success())
        };
        match tokio::time::timeout_at(hard_stop.into(), ok).await {
            Ok(Some(true)) => {
                let done = Instant::now();
                tally.ok += 1;
                tally
                    .lat_us
                    .push(done.duration_since(start).as_micros() as u64);
                tally.last_done = Some(tally.last_done.map_or(done, |d| d.max(done)));
            }
            _ => {
                tally.errors += 1;
                sender = None;
            }
        }
    }
    tally
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn need(args: &[String], name: &str) -> String {
    arg(args, name).unwrap_or_else(|| {
        eprintln!(
            "usage: attest-loadgen --url http://HOST:PORT/PATH --body FILE --rate R --duration S [--connections N]"
        );
        std::process::exit(2)
    })
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[idx.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = need(&args, "--url");
    let rest = url.strip_prefix("http://").expect("--url must be http://");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let body = Bytes::from(std::fs::read(need(&args, "--body")).expect("--body"));
    let rate: f64 = need(&args, "--rate").parse().expect("--rate");
    let secs: f64 = need(&args, "--duration").parse().expect("--duration");
    let conns: usize =
        arg(&args, "--connections").map_or(64, |c| c.parse().expect("--connections"));
    assert!(rate > 0.0 && secs > 0.0 && conns > 0);

    // One thread: the generator must not take the server's core.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let t0 = Instant::now() + Duration::from_millis(200);
        let plan = Arc::new(Plan {
            addr: authority.to_string(),
            host: authority.to_string(),
            path: path.to_string(),
            body,
            rate,
            t0,
            slots: (rate * secs).round() as u64,
            next: AtomicU64::new(0),
        });
        let hard_stop = t0 + Duration::from_secs_f64(secs + 10.0);
        let tasks: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(worker(plan.clone(), hard_stop)))
            .collect();
        let mut all = Tally::default();
        for t in tasks {
            let t = t.await.expect("worker");
            all.ok += t.ok;
            all.errors += t.errors;
            all.lat_us.extend(t.lat_us);
            all.last_done = match (all.last_done, t.last_done) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        all.lat_us.sort_unstable();
        // Achieved rate: completed requests over the time from the first scheduled send to the
        // last completion (at least the scheduled duration).
        let elapsed = all
            .last_done
            .map_or(secs, |d| d.duration_since(t0).as_secs_f64().max(secs));
        println!(
            "sent={} ok={} errors={} rps={:.1} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3}",
            plan.slots,
            all.ok,
            all.errors,
            all.ok as f64 / elapsed,
            pct(&all.lat_us, 50.0),
            pct(&all.lat_us, 90.0),
            pct(&all.lat_us, 99.0),
            all.lat_us.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
        );
    });
}
