//! The accept loop: what `axum::serve` leaves to a proxy, for a server exposed without one. A TCP
//! connection costs a file descriptor and a task for as long as it is open, so a client that never
//! finishes its request must not keep it forever:
//!
//! - **Header timeout** (`AP_HTTP_HEADER_TIMEOUT_MS`): a request's head (request line and headers)
//!   must have arrived within it, counted from the accept for a connection's first request and from
//!   the first byte of the next one on a kept-alive connection.
//! - **Idle timeout** (`AP_HTTP_IDLE_TIMEOUT_MS`): a kept-alive connection with no request in flight
//!   and no byte of a next one is closed after it. A request is in flight from its head until its
//!   answer has been sent to the end, so an SSE stream or a `wait-for-alipay-payment` that answers
//!   minutes later is never cut.
//! - **Connection cap** (`AP_HTTP_MAX_CONNECTIONS`): one semaphore permit per open connection, held
//!   for its life, so the process never runs out of descriptors (`EMFILE`) for its ledger, log and
//!   calls to Alipay. When they are all taken, the oldest connections with nothing in flight (idle,
//!   or still sending a head) are closed to make room, as nginx reuses its keep-alive connections;
//!   a connection with a request in flight is never cut, and if every one has one, new connections
//!   wait in the kernel's accept queue (no descriptor) until one ends. Neither refusing nor only
//!   waiting would do: rmcp's HTTP client opens a new connection for every call (it turns pooling
//!   off), so behind a full house of slow connections every call would fail, or wait for a header
//!   timeout (p99 ×76 in `scripts/bench-slow-clients.sh` when it only waited).
//!
//! Why not hyper's own `header_read_timeout`: hyper (1.12) restarts that timer the moment a
//! connection goes idle after an answer (`proto/h1/conn.rs`, `State::idle`), so it bounds the idle
//! wait and the next head together and a kept-alive connection could never outlive the header
//! timeout. The two limits have the meanings of Go's `ReadHeaderTimeout`/`IdleTimeout` and nginx's
//! `client_header_timeout`/`keepalive_timeout` here, so each connection has its own small watchdog
//! instead, fed by the bytes it reads and by its requests starting and ending.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The three limits, from `AP_HTTP_HEADER_TIMEOUT_MS`, `AP_HTTP_IDLE_TIMEOUT_MS` and
/// `AP_HTTP_MAX_CONNECTIONS`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) header_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) max_connections: usize,
}

/// Accept and serve connections until `stop`; then tell every connection to finish its request in
/// flight and close, and return once all are closed.
pub(super) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut open = Open::default();
    let mut warned_full: Option<Instant> = None;
    'accept: loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Once a minute at most: under attack the cap is hit again and again.
                if warned_full.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    warned_full = Some(Instant::now());
                    tracing::warn!(
                        max = limits.max_connections,
                        "HTTP: AP_HTTP_MAX_CONNECTIONS connections open; closing the oldest with nothing in flight to make room"
                    );
                }
                loop {
                    open.evict(EVICT_AT_ONCE);
                    tokio::select! {
                        p = permits.clone().acquire_owned() => match p {
                            Ok(p) => break p,
                            Err(_) => break 'accept, // never closed
                        },
                        () = stop.cancelled() => break 'accept,
                        // Every connection had a request in flight: look again later.
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => break,
        };
        match accepted {
            Ok((tcp, _peer)) => {
                let watch = Arc::new(Watch::new());
                open.push(&watch, limits.max_connections);
                tokio::spawn(connection(
                    tcp,
                    watch,
                    router.clone(),
                    limits,
                    permit,
                    stop.clone(),
                ));
            }
            Err(e) => accept_failed(e).await,
        }
    }
    drop(listener);
    // Every permit back: every connection closed.
    let _ = permits
        .acquire_many_owned(limits.max_connections as u32)
        .await;
}

/// How many connections one look at a full house closes: fewer looks (each goes over every open
/// connection) when an attack keeps it full.
const EVICT_AT_ONCE: usize = 32;

/// The open connections in the order they were accepted (closed ones drop out lazily).
#[derive(Default)]
struct Open(VecDeque<Weak<Watch>>);

impl Open {
    fn push(&mut self, watch: &Arc<Watch>, max: usize) {
        if self.0.len() >= 2 * max {
            self.0.retain(|w| w.strong_count() > 0);
        }
        self.0.push_back(Arc::downgrade(watch));
    }

    /// Tell up to `n` of the oldest connections with nothing in flight (idle, or still sending a
    /// head) to close, so that a new one can be accepted; those with a request in flight are never
    /// cut. Returns how many were told.
    fn evict(&mut self, n: usize) -> usize {
        let mut told = 0;
        self.0.retain(|w| {
            let Some(watch) = w.upgrade() else {
                return false;
            };
            if told < n && watch.evict() {
                told += 1;
                return false;
            }
            true
        });
        told
    }
}

/// As `axum::serve`: an error about one connection (reset before we accepted it) is that
/// connection's; anything else (`EMFILE`, `ENFILE`, `ENOMEM`) is the process's, and retrying at
/// once would spin, so wait a little.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "HTTP: accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Serve one connection until the client closes it, a limit closes it, or the shutdown has let
/// its request in flight finish.
async fn connection(
    tcp: TcpStream,
    watch: Arc<Watch>,
    router: axum::Router,
    limits: Limits,
    _permit: OwnedSemaphorePermit,
    stop: CancellationToken,
) {
    // No Nagle: an SSE answer is written in pieces (head, event), and Nagle's wait for the
    // client's delayed ACK would add ~40 ms to every call.
    let _ = tcp.set_nodelay(true);
    let io = TokioIo::new(Watched {
        tcp,
        watch: watch.clone(),
    });
    let service = Service {
        router,
        watch: watch.clone(),
    };
    // No timer on the builder: hyper's own header timeout is off (see the module comment), the
    // watchdog below does both timeouts.
    let mut conn = pin!(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
    let mut shutting = false;
    loop {
        let changed = watch.changed.notified();
        // Closing (the server stops, or this connection makes room for a new one): one with nothing
        // in flight goes now; hyper closes one in flight after its answer, and an idle one once
        // its last answer is written out.
        let closing = stop.is_cancelled() || watch.evicted();
        if closing && !shutting {
            shutting = true;
            conn.as_mut().graceful_shutdown();
        }
        let deadline = watch.deadline(&limits, closing);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "HTTP: connection ended with an error");
                }
                break;
            }
            () = stop.cancelled(), if !shutting => {}
            () = changed => {}
            () = sleep_until(deadline) => {
                if watch.deadline(&limits, closing).is_some_and(|d| d <= Instant::now()) {
                    // Nothing in flight by construction: dropping the connection just closes it.
                    tracing::debug!(
                        what = watch.waiting_for(),
                        "HTTP: closed a connection that did not send its request in time"
                    );
                    break;
                }
            }
        }
    }
    // The connection (a local, so dropped first) closes the socket; then `_permit`, a parameter,
    // frees its slot.
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is between requests; what its watchdog's deadline counts from.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Accepted, its first request's head not complete yet.
    Fresh { since: Instant },
    /// `n` requests whose answer has not been sent to the end (HTTP/1: one, but a pipelined next
    /// head may be parsed before the previous answer's body is dropped).
    Busy { n: usize },
    /// Kept alive after an answer, not a byte of the next request yet.
    Idle { since: Instant },
    /// The next request's head has started arriving.
    Head { since: Instant },
}

impl Phase {
    /// When to close the connection if nothing changes; `None` while a request is in flight.
    /// Closing, one still waiting for a head closes at once (an idle one is hyper's to close once
    /// its last answer has been written out).
    fn deadline(self, limits: &Limits, closing: bool, now: Instant) -> Option<Instant> {
        match self {
            Self::Busy { .. } => None,
            Self::Fresh { .. } | Self::Head { .. } if closing => Some(now),
            Self::Fresh { since } | Self::Head { since } => Some(since + limits.header_timeout),
            Self::Idle { since } => Some(since + limits.idle_timeout),
        }
    }

    /// Bytes arrived: on an idle connection they start the next request's head.
    fn read_some(self, now: Instant) -> Self {
        match self {
            Self::Idle { .. } => Self::Head { since: now },
            other => other,
        }
    }

    fn request_started(self) -> Self {
        match self {
            Self::Busy { n } => Self::Busy { n: n + 1 },
            _ => Self::Busy { n: 1 },
        }
    }

    fn request_ended(self, now: Instant) -> Self {
        match self {
            Self::Busy { n } if n > 1 => Self::Busy { n: n - 1 },
            _ => Self::Idle { since: now },
        }
    }
}

/// What the connection's reads, its requests and its watchdog share. Only the connection's own
/// task touches it, so the lock is never contended; it is there because bodies must be `Send`.
struct Watch {
    phase: Mutex<Phase>,
    changed: Notify,
    /// Told to close to make room (`Open::evict`).
    evicted: AtomicBool,
}

impl Watch {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Fresh {
                since: Instant::now(),
            }),
            changed: Notify::new(),
            evicted: AtomicBool::new(false),
        }
    }

    /// Close to make room, unless a request is in flight (then `false`).
    fn evict(&self) -> bool {
        let phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*phase, Phase::Busy { .. }) {
            return false;
        }
        self.evicted.store(true, Ordering::Relaxed);
        drop(phase);
        self.changed.notify_one();
        true
    }

    fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Move to the next phase; wake the watchdog if it changed.
    fn update(&self, next: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let before = *phase;
        *phase = next(before);
        let changed = !matches!(
            (before, *phase),
            (Phase::Fresh { .. }, Phase::Fresh { .. }) | (Phase::Head { .. }, Phase::Head { .. })
        );
        drop(phase);
        if changed {
            self.changed.notify_one();
        }
    }

    fn deadline(&self, limits: &Limits, stopping: bool) -> Option<Instant> {
        self.phase().deadline(limits, stopping, Instant::now())
    }

    fn waiting_for(&self) -> &'static str {
        match self.phase() {
            Phase::Fresh { .. } | Phase::Head { .. } => {
                "a request head (AP_HTTP_HEADER_TIMEOUT_MS)"
            }
            Phase::Idle { .. } => "a next request (AP_HTTP_IDLE_TIMEOUT_MS)",
            Phase::Busy { .. } => "nothing",
        }
    }

    fn read_some(&self) {
        // Checked first: most reads are of a request in flight, and change nothing.
        if matches!(self.phase(), Phase::Idle { .. }) {
            self.update(|p| p.read_some(Instant::now()));
        }
    }

    fn request_started(&self) {
        self.update(Phase::request_started);
    }

    fn request_ended(&self) {
        self.update(|p| p.request_ended(Instant::now()));
    }
}

/// The TCP stream, telling the watchdog when bytes arrive.
struct Watched {
    tcp: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.read_some();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// The router, with each request counted in flight from its head until its answer has been sent
/// to the end (or dropped, when the client goes away).
struct Service {
    router: axum::Router,
    watch: Arc<Watch>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::enter(&self.watch);
        // A `Router` is always ready (its `poll_ready` is `Ready(Ok)`), as `axum::serve` relies on.
        let answer = tower_service::Service::call(&mut self.router.clone(), request.map(Body::new));
        Box::pin(async move {
            let response = answer.await?;
            // The request stays in flight until its answer's last frame.
            Ok(response.map(|body| super::HeldUntilEnd::wrap(body, in_flight)))
        })
    }
}

/// One request in flight; ended when dropped.
struct InFlight(Arc<Watch>);

impl InFlight {
    fn enter(watch: &Arc<Watch>) -> Self {
        watch.request_started();
        Self(watch.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// The default `AP_HTTP_MAX_CONNECTIONS`: 1024, or half the open-file limit when that is lower, so
/// that the ledger, the log, outgoing calls and deliveries always have descriptors left.
pub(super) fn default_max_connections() -> usize {
    match open_file_limit() {
        Some(limit) => (limit / 2).clamp(1, 1024),
        None => 1024,
    }
}

/// The soft `RLIMIT_NOFILE` (`ulimit -n`), from `/proc/self/limits` (Linux; elsewhere `None`).
pub(super) fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&limits)
}

fn parse_open_file_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_the_soft_one() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95422                95422                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_file_limit(limits), Some(1024));
        assert_eq!(
            parse_open_file_limit("Max open files  unlimited  unlimited  files"),
            None
        );
        assert_eq!(parse_open_file_limit(""), None);
    }

    #[test]
    fn the_watchdog_counts_from_the_right_moment() {
        let limits = Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
        };
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let deadline = |p: Phase, now: u64| p.deadline(&limits, false, at(now));
        let fresh = Phase::Fresh { since: t0 };
        assert_eq!(
            deadline(fresh.read_some(at(1)), 1),
            Some(at(10)),
            "a first request: the header timeout from the accept; trickling does not extend it"
        );
        let busy = fresh.request_started();
        assert_eq!(deadline(busy, 500), None, "in flight: no limit");
        let idle = busy.request_ended(at(600));
        assert_eq!(deadline(idle, 600), Some(at(660)));
        let head = idle.read_some(at(630));
        assert_eq!(
            deadline(head, 630),
            Some(at(640)),
            "the next head: the header timeout from its first byte"
        );
        assert_eq!(deadline(head.read_some(at(635)), 635), Some(at(640)));
        let pipelined = head
            .request_started()
            .request_started()
            .request_ended(at(641));
        assert_eq!(
            pipelined.deadline(&limits, true, at(641)),
            None,
            "shutting down, one still in flight"
        );
        let done = pipelined.request_ended(at(642));
        assert_eq!(
            done.deadline(&limits, true, at(642)),
            Some(at(702)),
            "closing, an idle one is hyper's to close after writing its answer out"
        );
        assert_eq!(
            done.read_some(at(643)).deadline(&limits, true, at(643)),
            Some(at(643)),
            "closing, one sending a head goes at once"
        );
    }
}
