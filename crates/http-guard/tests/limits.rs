//! The bounds against real sockets: a server on 127.0.0.1:0 with short limits, and clients
//! that stall in each phase (silent, partial headers, idle keep-alive, partial ClientHello,
//! idle HTTP/2), hold more connections than allowed, or declare a body above the limit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::Bytes;
use http_body_util::Full;
use http_guard::{Closed, Counts, Limits};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;

struct Running {
    addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.done)
            .await
            .unwrap()
            .unwrap();
    }
}

/// `/slow` waits for a permit of `gate`; `/body` reads the body within the limits; anything
/// else answers "ok".
async fn start(
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    gate: Arc<Semaphore>,
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let gate = Arc::clone(&gate);
        async move {
            let body = match req.uri().path() {
                "/slow" => {
                    let _p = gate.acquire().await.unwrap();
                    Bytes::from_static(b"slow")
                }
                "/body" => {
                    if http_guard::declared_too_large(req.headers(), limits.body_limit).is_some() {
                        let mut r = Response::new(Full::new(Bytes::from_static(b"too large")));
                        *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                        return Ok::<_, Infallible>(r);
                    }
                    match http_guard::read_body(req.into_body(), &limits).await {
                        Ok(b) => b,
                        Err(e) => Bytes::from(e.to_string()),
                    }
                }
                _ => Bytes::from_static(b"ok"),
            };
            Ok::<_, Infallible>(Response::new(Full::new(body)))
        }
    });
    let (tx, rx) = oneshot::channel::<()>();
    let events = Arc::clone(&counts);
    let c2 = Arc::clone(&counts);
    let done = tokio::spawn(async move {
        http_guard::serve(listener, tls, svc, limits, events, Some(c2), async move {
            let _ = rx.await;
        })
        .await;
    });
    Running {
        addr,
        counts,
        stop: Some(tx),
        done,
    }
}

fn short() -> Limits {
    Limits::default()
        .with_handshake_timeout(Duration::from_millis(400))
        .with_header_timeout(Duration::from_millis(400))
        .with_idle_timeout(Duration::from_millis(1200))
        .with_body_timeout(Duration::from_millis(400))
        .with_body_limit(1000)
}

/// Waits until the server closes `s` (EOF or reset), at most 10 s; returns how long it took.
async fn closed_after(s: &mut TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("not closed within 10 s"),
        }
    }
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn silent_and_partial_header_connections_close_at_the_header_timeout() {
    let srv = start(short(), None, Arc::new(Semaphore::new(0))).await;
    let t = Instant::now();
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    let mut partial = TcpStream::connect(srv.addr).await.unwrap();
    partial
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    for s in [&mut silent, &mut partial] {
        let took = closed_after(s, t).await;
        assert!(
            took >= Duration::from_millis(350) && took < Duration::from_millis(1100),
            "{took:?}"
        );
    }
    assert_eq!(srv.counts.get(Closed::HeaderTimeout), 2);
    srv.stop().await;
}

#[tokio::test]
async fn keep_alive_connections_close_at_the_idle_timeout_and_slow_headers_after_it() {
    let srv = start(short(), None, Arc::new(Semaphore::new(0))).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    let t = Instant::now();
    let took = closed_after(&mut s, t).await;
    // Idle keep-alive is the idle timeout (1.2 s), not the header timeout (0.4 s).
    assert!(
        took >= Duration::from_millis(1100) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(srv.counts.get(Closed::IdleTimeout), 1);

    // A keep-alive request whose first bytes arrived must complete within the header timeout.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let _ = s.read(&mut buf).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(b"GET / HT").await.unwrap();
    let t = Instant::now();
    let took = closed_after(&mut s, t).await;
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_millis(1100),
        "{took:?}"
    );
    assert_eq!(srv.counts.get(Closed::HeaderTimeout), 1);
    srv.stop().await;
}

#[tokio::test]
async fn idle_http2_connections_get_a_goaway_at_the_idle_timeout() {
    let srv = start(short(), None, Arc::new(Semaphore::new(0))).await;
    let tcp = TcpStream::connect(srv.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let resp = send
        .send_request(
            Request::get("http://x/")
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    drop(resp);
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the server closes the idle HTTP/2 connection")
        .unwrap()
        .unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1100) && took < Duration::from_millis(3000),
        "{took:?}"
    );
    assert_eq!(srv.counts.get(Closed::IdleTimeout), 1);
    srv.stop().await;
}

#[tokio::test]
async fn partial_tls_handshakes_close_at_the_handshake_timeout() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let srv = start(short(), Some(acceptor), Arc::new(Semaphore::new(0))).await;
    let t = Instant::now();
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    let mut partial = TcpStream::connect(srv.addr).await.unwrap();
    // The first bytes of a ClientHello record (handshake, TLS 1.0 record, 512 bytes), no more.
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    for s in [&mut silent, &mut partial] {
        let took = closed_after(s, t).await;
        assert!(
            took >= Duration::from_millis(350) && took < Duration::from_millis(1100),
            "{took:?}"
        );
    }
    assert_eq!(srv.counts.get(Closed::HandshakeTimeout), 2);
    srv.stop().await;
}

#[tokio::test]
async fn beyond_max_connections_the_oldest_idle_one_makes_room() {
    let srv = start(
        short()
            .with_header_timeout(Duration::from_secs(30))
            .with_max_connections(4),
        None,
        Arc::new(Semaphore::new(0)),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    // A health check still answers, at once, although 10 partial connections were opened.
    let t = Instant::now();
    let resp = get(srv.addr, "/healthz").await;
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(t.elapsed() < Duration::from_secs(1));
    // The first 7 were closed to make room (10 + the health check - 4 held).
    let mut closed = 0;
    for s in &mut held {
        let mut b = [0u8; 16];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 7);
    assert_eq!(srv.counts.get(Closed::Evicted), 7);
    assert!(srv.counts.open() <= 4, "{}", srv.counts.open());
    srv.stop().await;
}

#[tokio::test]
async fn when_every_connection_serves_a_request_a_new_one_is_refused() {
    let gate = Arc::new(Semaphore::new(0));
    let srv = start(short().with_max_connections(2), None, Arc::clone(&gate)).await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        busy.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(srv.addr).await.unwrap();
    let took = closed_after(&mut extra, Instant::now()).await;
    assert!(took < Duration::from_millis(300), "{took:?}");
    assert_eq!(srv.counts.get(Closed::Refused), 1);
    gate.add_permits(2);
    for s in &mut busy {
        let mut b = [0u8; 64];
        let n = s.read(&mut b).await.unwrap();
        assert!(b[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    }
    srv.stop().await;
}

#[tokio::test]
async fn bodies_limit_and_timeout() {
    let srv = start(short(), None, Arc::new(Semaphore::new(0))).await;
    // Declared above the limit with Expect: 100-continue: 413 at once, never 100 Continue.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(
        b"POST /body HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\nexpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut b = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&b[..n]).to_string();
    assert!(
        head.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{head}"
    );
    assert!(!head.contains("100 Continue"), "{head}");

    // A body that stalls is cut at the body timeout.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(
        b"POST /body HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\nconnection: close\r\n\r\nabc",
    )
    .await
    .unwrap();
    let mut out = String::new();
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t.elapsed()
    );
    assert!(
        out.ends_with("timed out reading the request body after 0.4s (--body-timeout)"),
        "{out}"
    );

    // A chunked body above the limit is cut by the streaming limit.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut raw = b"POST /body HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    raw.extend_from_slice(b"7d0\r\n");
    raw.extend_from_slice(&[b'a'; 2000]);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    s.write_all(&raw).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.ends_with("request body is larger than the 1000-byte limit (--body-limit)"),
        "{out}"
    );
    srv.stop().await;
}

#[test]
fn declared_length_checks() {
    let mut h = hyper::HeaderMap::new();
    assert_eq!(http_guard::declared_too_large(&h, 10), None);
    h.insert("content-length", "10".parse().unwrap());
    assert_eq!(http_guard::declared_too_large(&h, 10), None);
    h.insert("content-length", "11".parse().unwrap());
    assert_eq!(http_guard::declared_too_large(&h, 10), Some(11));
    h.insert("content-length", "nonsense".parse().unwrap());
    assert_eq!(http_guard::declared_too_large(&h, 10), None);
}
