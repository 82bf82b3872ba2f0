//! The accept-and-serve loop of confkube's HTTP servers (the attestation service and the
//! admission webhook), with the bounds a hostile or broken client meets:
//!
//! - **TLS handshake timeout**: a connection must finish its handshake within
//!   [`Limits::handshake_timeout`] of being accepted.
//! - **Header timeout**: a new connection must deliver the headers of its first request within
//!   [`Limits::header_timeout`] (from the end of the handshake), and so must a keep-alive
//!   connection once the first byte of its next request arrived (HTTP/1.1).
//! - **Idle timeout**: a connection with no request in flight is closed after
//!   [`Limits::idle_timeout`] (HTTP/1.1 keep-alive, and HTTP/2 with no open stream: closed with a
//!   GOAWAY). HTTP/2 connections are also pinged while busy, and closed when the peer stops
//!   answering.
//! - **Body timeout and limit**: [`read_body`] reads a request body within
//!   [`Limits::body_timeout`] and [`Limits::body_limit`]; [`declared_too_large`] lets a handler
//!   refuse a declared `Content-Length` before it reads anything, so the server never sends
//!   `100 Continue` for a body it will refuse.
//! - **Connection bound**: at most [`Limits::max_connections`] connections are held. Beyond it,
//!   a new connection is still accepted and the oldest connection without a request in flight
//!   (in its handshake, reading headers, or idle) is closed to make room, so a flood of idle
//!   or partial connections cannot lock out a health check; when every held connection is
//!   serving a request, the new one is closed. When the process runs out of file descriptors
//!   (`accept` fails), the oldest such connection is closed too.
//!
//! hyper's own HTTP/1.1 header-read timer starts whenever the connection waits for a request,
//! so it cannot tell a slow header from an idle keep-alive connection; this crate therefore
//! tracks each connection itself (bytes read, requests in flight) and leaves hyper's timer off.
//! It does no routing and knows nothing of either server's responses.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{CONTENT_LENGTH, HeaderMap};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// Default [`Limits::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Limits::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Limits::idle_timeout`] (longer than the 90 s idle timeout of Go's HTTP client, the
/// API server's, so the client closes first and never races a closing connection).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default [`Limits::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Limits::max_connections`] (below the 1,024 file descriptors many containers get).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default [`Limits::body_limit`].
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// How long a connection told to close (timeout, shutdown) may take to finish: an HTTP/2
/// GOAWAY, or the response being written.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long in-flight requests may finish after shutdown was requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The bounds of one server; see the crate docs for what each one means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Accept → TLS handshake complete.
    pub handshake_timeout: Duration,
    /// Start of a request (connection ready, or first byte of a keep-alive request) → its
    /// headers complete.
    pub header_timeout: Duration,
    /// No request in flight for this long → the connection is closed.
    pub idle_timeout: Duration,
    /// Reading a request body ([`read_body`]).
    pub body_timeout: Duration,
    /// Connections held at once.
    pub max_connections: usize,
    /// Largest request body in bytes ([`read_body`], [`declared_too_large`]).
    pub body_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

impl Limits {
    /// Sets [`Limits::handshake_timeout`].
    pub fn with_handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }
    /// Sets [`Limits::header_timeout`].
    pub fn with_header_timeout(mut self, d: Duration) -> Self {
        self.header_timeout = d;
        self
    }
    /// Sets [`Limits::idle_timeout`].
    pub fn with_idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }
    /// Sets [`Limits::body_timeout`].
    pub fn with_body_timeout(mut self, d: Duration) -> Self {
        self.body_timeout = d;
        self
    }
    /// Sets [`Limits::max_connections`] (at least 1).
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }
    /// Sets [`Limits::body_limit`].
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

/// Why the server closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Closed {
    /// The TLS handshake did not finish within the handshake timeout.
    HandshakeTimeout,
    /// The TLS handshake failed.
    HandshakeFailed,
    /// Request headers did not arrive within the header timeout.
    HeaderTimeout,
    /// No request for the idle timeout.
    IdleTimeout,
    /// Closed to make room for a new connection (connection bound or descriptors exhausted).
    Evicted,
    /// Refused at once: every held connection was serving a request.
    Refused,
}

impl Closed {
    /// A short label (`handshake_timeout`, `header_timeout`, ...) for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HandshakeTimeout => "handshake_timeout",
            Self::HandshakeFailed => "handshake_failed",
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::Evicted => "evicted",
            Self::Refused => "refused",
        }
    }
}

/// What the loop reports to its server (metrics). Implementations must be cheap.
pub trait Events: Send + Sync {
    /// The server closed a connection for `why`.
    fn closed(&self, why: Closed);
}

/// [`Events`] that counts, readable at any time (metrics, tests, benchmarks).
#[derive(Debug, Default)]
pub struct Counts {
    counts: [AtomicU64; 6],
    open: AtomicUsize,
}

impl Counts {
    /// How many connections were closed for `why` so far.
    pub fn get(&self, why: Closed) -> u64 {
        self.counts
            .get(Self::index(why))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Connections held right now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn index(why: Closed) -> usize {
        match why {
            Closed::HandshakeTimeout => 0,
            Closed::HandshakeFailed => 1,
            Closed::HeaderTimeout => 2,
            Closed::IdleTimeout => 3,
            Closed::Evicted => 4,
            Closed::Refused => 5,
        }
    }
}

impl Events for Counts {
    fn closed(&self, why: Closed) {
        if let Some(c) = self.counts.get(Self::index(why)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is larger than the limit.
    #[error("request body is larger than the {limit}-byte limit (--body-limit)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body did not arrive in time.
    #[error("timed out reading the request body after {}s (--body-timeout)", .after.as_secs_f64())]
    Timeout {
        /// The body timeout.
        after: Duration,
    },
    /// The connection failed while the body was read.
    #[error("cannot read the request body")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The declared `Content-Length`, when it is above `limit`: refuse the request before reading
/// (or acknowledging, `100 Continue`) any of its body.
pub fn declared_too_large(headers: &HeaderMap, limit: usize) -> Option<u64> {
    let n = headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    (n > u64::try_from(limit).unwrap_or(u64::MAX)).then_some(n)
}

/// Reads a whole request body within `limits.body_limit` bytes and `limits.body_timeout`.
pub async fn read_body<B>(body: B, limits: &Limits) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = limits.body_limit;
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(limits.body_timeout, collect).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge { limit })
        }
        Ok(Err(e)) => Err(BodyError::Read(e)),
        Err(_) => Err(BodyError::Timeout {
            after: limits.body_timeout,
        }),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the headers of a request (new connection, or bytes of one arrived).
    Header,
    /// Keep-alive: waiting for the next request, nothing received yet.
    Idle,
}

#[derive(Debug, Clone, Copy)]
struct Activity {
    busy: usize,
    phase: Phase,
    since: Instant,
}

/// One held connection, shared by its task, its IO wrapper, its service and the registry.
struct Conn {
    activity: watch::Sender<Activity>,
    /// Idle with nothing received since the last response (HTTP/1.1 only).
    awaiting_bytes: AtomicBool,
    /// HTTP/2: frames (pings, settings) between requests do not start a header deadline.
    h2: AtomicBool,
    first_read: AtomicBool,
    busy: AtomicUsize,
    evict: Notify,
}

impl Conn {
    fn new() -> Self {
        Self {
            activity: watch::Sender::new(Activity {
                busy: 0,
                phase: Phase::Header,
                since: Instant::now(),
            }),
            awaiting_bytes: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            first_read: AtomicBool::new(true),
            busy: AtomicUsize::new(0),
            evict: Notify::new(),
        }
    }

    /// The connection is ready for its first request (after the TLS handshake).
    fn ready(&self) {
        self.activity.send_modify(|a| {
            a.phase = Phase::Header;
            a.since = Instant::now();
        });
    }

    fn on_read(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.first_read.swap(false, Ordering::Relaxed) && bytes.starts_with(b"PRI * HTTP/2") {
            self.h2.store(true, Ordering::Relaxed);
        }
        if self.awaiting_bytes.swap(false, Ordering::Relaxed) && !self.h2.load(Ordering::Relaxed) {
            self.activity.send_modify(|a| {
                if a.busy == 0 {
                    a.phase = Phase::Header;
                    a.since = Instant::now();
                }
            });
        }
    }

    fn request_started(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.activity
            .send_modify(|a| a.busy = a.busy.saturating_add(1));
    }

    fn request_done(&self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
        self.activity.send_modify(|a| {
            a.busy = a.busy.saturating_sub(1);
            if a.busy == 0 {
                a.phase = Phase::Idle;
                a.since = Instant::now();
            }
        });
        self.awaiting_bytes.store(true, Ordering::Relaxed);
    }
}

/// Resolves when a connection has been without a request for too long.
async fn watchdog(mut rx: watch::Receiver<Activity>, limits: Limits) -> Closed {
    loop {
        let a = *rx.borrow_and_update();
        let deadline = match (a.busy, a.phase) {
            (0, Phase::Header) => Some((a.since + limits.header_timeout, Closed::HeaderTimeout)),
            (0, Phase::Idle) => Some((a.since + limits.idle_timeout, Closed::IdleTimeout)),
            _ => None,
        };
        match deadline {
            Some((at, why)) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => return why,
                    r = rx.changed() => if r.is_err() { std::future::pending::<()>().await },
                }
            }
            None => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// The stream of a connection, noting when bytes arrive.
struct Watched<T> {
    inner: T,
    conn: Arc<Conn>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r
            && let Some(new) = buf.filled().get(before..)
        {
            this.conn.on_read(new);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Counts a request as in flight until its response is ready (or the request is dropped).
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// The server's service, with requests counted per connection.
struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.conn.request_started();
        let guard = InFlight(Arc::clone(&self.conn));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            drop(guard);
            r
        })
    }
}

/// The held connections, oldest first.
struct Registry {
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
}

impl Registry {
    /// Closes the oldest connection without a request in flight; false when there is none.
    fn evict_one(&self) -> bool {
        let mut conns = lock(&self.conns);
        let victim = conns
            .iter()
            .find(|(_, c)| c.busy.load(Ordering::Relaxed) == 0)
            .map(|(id, _)| *id);
        match victim.and_then(|id| conns.remove(&id)) {
            Some(c) => {
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }

    /// Registers a new connection, making room if needed (`Ok(true)`: another was closed for
    /// it); `Err(())` = refuse it.
    fn admit(&self, max: usize) -> Result<(u64, Arc<Conn>, bool), ()> {
        let full = lock(&self.conns).len() >= max;
        if full && !self.evict_one() {
            return Err(());
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new());
        lock(&self.conns).insert(id, Arc::clone(&conn));
        Ok((id, conn, full))
    }
}

/// Removes the connection from the registry when its task ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
    events: Arc<dyn Events>,
    counts: Option<Arc<Counts>>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.registry.conns).remove(&self.id);
        if let Some(c) = &self.counts {
            c.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Serves `service` on `listener` (TLS when `tls` is given, HTTP/1.1 and HTTP/2 either way)
/// within `limits`, until `shutdown` completes; then stops accepting, lets requests in flight
/// finish (at most 10 s) and returns. Events go to `events`; when `events` is a [`Counts`],
/// pass it as `counts` too to keep [`Counts::open`] current.
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    limits: Limits,
    events: Arc<dyn Events>,
    counts: Option<Arc<Counts>>,
    shutdown: impl Future<Output = ()>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let registry = Arc::new(Registry {
        conns: Mutex::new(BTreeMap::new()),
        next: AtomicU64::new(0),
    });
    let (drain_tx, drain_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(100)
        .max_header_list_size(64 * 1024);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or memory: make room, then retry.
                    let evicted = registry.evict_one();
                    if evicted {
                        events.closed(Closed::Evicted);
                    }
                    tracing::warn!(error = %e, evicted, "accept failed");
                    let pause = if evicted { 5 } else { 100 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    continue;
                }
            },
        };
        let Ok((id, conn, evicted)) = registry.admit(limits.max_connections) else {
            events.closed(Closed::Refused);
            drop(tcp);
            continue;
        };
        if evicted {
            events.closed(Closed::Evicted);
        }
        if let Some(c) = &counts {
            c.open.fetch_add(1, Ordering::Relaxed);
        }
        let registered = Registered {
            registry: Arc::clone(&registry),
            id,
            events: Arc::clone(&events),
            counts: counts.clone(),
        };
        let task = Connection {
            conn,
            registered,
            limits,
            service: service.clone(),
            builder: Arc::clone(&builder),
            drain: drain_rx.clone(),
            _alive: alive_tx.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(task.run(tcp, tls));
    }
    drop(listener);
    let _ = drain_tx.send(true);
    drop(alive_tx);
    if tokio::time::timeout(DRAIN_TIMEOUT, alive_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("connections still open 10 s after shutdown; closing them");
    }
}

/// Resolves once shutdown was requested.
async fn drained(rx: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await.
    let _ = rx.wait_for(|d| *d).await;
}

struct Connection<S> {
    conn: Arc<Conn>,
    registered: Registered,
    limits: Limits,
    service: S,
    builder: Arc<auto::Builder<TokioExecutor>>,
    drain: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
}

impl<S, B> Connection<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    async fn run(mut self, tcp: TcpStream, tls: Option<TlsAcceptor>) {
        let _ = tcp.set_nodelay(true);
        let conn = Arc::clone(&self.conn);
        let evicted = conn.evict.notified();
        let mut evicted = std::pin::pin!(evicted);
        let Some(acceptor) = tls else {
            return self.http(tcp, evicted).await;
        };
        let handshake = tokio::time::timeout(self.limits.handshake_timeout, acceptor.accept(tcp));
        let stream = tokio::select! {
            () = &mut evicted => return,
            () = drained(&mut self.drain) => return,
            r = handshake => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    self.registered.events.closed(Closed::HandshakeFailed);
                    return;
                }
                Err(_) => {
                    self.registered.events.closed(Closed::HandshakeTimeout);
                    return;
                }
            },
        };
        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            conn.h2.store(true, Ordering::Relaxed);
        }
        self.http(stream, evicted).await;
    }

    async fn http<T>(mut self, io: T, mut evicted: Pin<&mut tokio::sync::futures::Notified<'_>>)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        conn.ready();
        let io = TokioIo::new(Watched {
            inner: io,
            conn: Arc::clone(&conn),
        });
        let service = Tracked {
            inner: self.service,
            conn: Arc::clone(&conn),
        };
        let served = self.builder.serve_connection(io, service);
        let mut served = std::pin::pin!(served);
        let dog = watchdog(conn.activity.subscribe(), self.limits);
        let result = tokio::select! {
            r = &mut served => Some(r),
            () = &mut evicted => return,
            why = dog => {
                self.registered.events.closed(why);
                if why == Closed::HeaderTimeout {
                    // Half a request is buffered: hyper would wait for the rest.
                    return;
                }
                // Idle: HTTP/1.1 closes at once, HTTP/2 sends GOAWAY first.
                served.as_mut().graceful_shutdown();
                None
            }
            () = drained(&mut self.drain) => {
                if conn.busy.load(Ordering::Relaxed) == 0 {
                    return;
                }
                served.as_mut().graceful_shutdown();
                tokio::select! {
                    r = &mut served => Some(r),
                    () = &mut evicted => return,
                }
            }
        };
        let result = match result {
            Some(r) => r,
            None => match tokio::time::timeout(CLOSE_GRACE, served).await {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}
