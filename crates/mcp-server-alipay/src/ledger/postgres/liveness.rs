//! What must hold across processes sharing the database, said with session advisory locks: the
//! server releases them when the session ends, however it ends (closed, `kill -9`, a lost host
//! once TCP keepalive gives up).
//!
//! - The instance lease: each handle registers a random token and holds an advisory lock on it on
//!   a dedicated connection for as long as it lives (`is_alive` = that lock cannot be taken), plus
//!   an `instances` row for people looking. A lost connection is re-established and the lease
//!   taken again; meanwhile others see this process as dead.
//! - The per-order refund lock: an in-process async mutex per order (one waiter per order per
//!   process), then a session advisory lock held on a connection of the lock pool inside the
//!   [`OrderLock`] guard. Dropping the guard unlocks on a task (or, when that cannot be done,
//!   discards the connection, so the server releases the lock with it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::Cx;
use super::conn::{Connector, Line, begin};
use super::rows::{Fail, pool_error, sql_error};
use crate::domain::OutTradeNo;
use crate::ledger::{InstanceId, LedgerError, LedgerErrorKind, OrderLock, order_lock_timed_out};

/// How long `is_alive` waits for a lease before it calls its holder alive: a holder that has
/// just closed its connection (a handle dropped, a process killed) is released by the server a
/// moment later, and must not be taken for alive.
const DYING_GRACE_MS: u32 = 250;
/// How often the lease's row is touched (which also finds a dead connection early).
const HEARTBEAT: Duration = Duration::from_secs(30);
/// The longest pause between attempts to take a lost lease back.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest pause between tries of an order lock another process holds.
const MAX_POLL: Duration = Duration::from_millis(100);

/// The lease's key: the schema's, so two stores on one database never meet.
fn lease_key(cx: &Cx, token: &str) -> String {
    format!("ap-ledger:{}:instance:{token}", cx.schema)
}

/// This process, registered: its lease is held until the handle is dropped.
pub(super) struct Lease {
    id: InstanceId,
    line: Line,
    held: Arc<AtomicBool>,
    stop: CancellationToken,
}

/// Take the lease on a fresh connection and record it; `Ok(None)` if the lock is taken already
/// (by this token's previous session, not yet gone).
async fn take(
    connector: &Connector,
    line: &Line,
    cx: &Cx,
    token: &str,
) -> Result<Option<(Client, tokio::task::JoinHandle<()>)>, LedgerError> {
    let (client, driver) = connector
        .dedicated(&format!("lease {token}"), line, |_| {})
        .await?;
    let got: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
            &[&lease_key(cx, token)],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| sql_error(&e))?;
    if !got {
        return Ok(None);
    }
    // For people looking: the lease is the lock, so a row that cannot be written is no failure.
    let recorded = client
        .execute(
            concat!(
                "INSERT INTO instances (token, app_id, env, started_at, heartbeat_at, backend_pid)
                 VALUES ($1, $2, $3, ",
                beijing_now!(),
                ", ",
                beijing_now!(),
                ", pg_backend_pid())
                 ON CONFLICT (token) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at,
                     backend_pid = EXCLUDED.backend_pid"
            ),
            &[&token, &cx.app(), &cx.env()],
        )
        .await;
    if let Err(e) = recorded {
        tracing::debug!(error = %e, "the instance's row could not be written");
    }
    Ok(Some((client, driver)))
}

impl Lease {
    pub(super) async fn register(connector: Connector, cx: Arc<Cx>) -> Result<Self, LedgerError> {
        let token = format!("{:032x}", rand::random::<u128>());
        let line = Line::default();
        let (client, driver) = take(&connector, &line, &cx, &token).await?.ok_or_else(|| {
            LedgerError::new(
                LedgerErrorKind::Unavailable,
                "a new instance's lease is taken already",
            )
        })?;
        let held = Arc::new(AtomicBool::new(true));
        let stop = CancellationToken::new();
        tokio::spawn(keep(
            Keeper {
                connector,
                cx,
                token: token.clone(),
                line: line.clone(),
                held: held.clone(),
                stop: stop.clone(),
            },
            client,
            driver,
        ));
        Ok(Self {
            id: InstanceId(token),
            line,
            held,
            stop,
        })
    }

    pub(super) fn id(&self) -> &InstanceId {
        &self.id
    }

    /// Whether this process holds its lease now.
    pub(super) fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// Give the lease up now (the socket closes at once; the server releases the lock).
    pub(super) fn close(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.stop.cancel();
        self.line.close();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.close();
    }
}

struct Keeper {
    connector: Connector,
    cx: Arc<Cx>,
    token: String,
    line: Line,
    held: Arc<AtomicBool>,
    stop: CancellationToken,
}

/// Hold the lease: touch its row now and then; when the connection is lost, take it again.
async fn keep(k: Keeper, client: Client, driver: tokio::task::JoinHandle<()>) {
    let (mut client, mut driver) = (client, driver);
    loop {
        tokio::select! {
            () = k.stop.cancelled() => return,
            _ = &mut driver => {}
            () = tokio::time::sleep(HEARTBEAT) => {
                let touched = client
                    .execute(
                        concat!("UPDATE instances SET heartbeat_at = ", beijing_now!(), " WHERE token = $1"),
                        &[&k.token],
                    )
                    .await;
                // Only a lost connection loses the lease; a failed touch of the row does not.
                if touched.is_ok() || !client.is_closed() {
                    continue;
                }
            }
        }
        k.held.store(false, Ordering::SeqCst);
        // Whatever is left of the old session goes, so that its lock is not in the way.
        k.line.cut();
        drop(client);
        tracing::warn!(
            instance = %k.token,
            "the ledger's instance lease was lost with its PostgreSQL connection; until it is taken again, other processes see this one as dead"
        );
        let mut backoff = Duration::from_millis(250);
        loop {
            tokio::select! {
                () = k.stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            match take(&k.connector, &k.line, &k.cx, &k.token).await {
                Ok(Some((c, d))) => {
                    (client, driver) = (c, d);
                    k.held.store(true, Ordering::SeqCst);
                    tracing::info!(instance = %k.token, "the ledger's instance lease is held again");
                    break;
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "taking the instance lease again failed"),
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Whether the process that registered `token` still holds its lease. Taken (for a moment, at
/// transaction scope) means dead; still held after [`DYING_GRACE_MS`] means alive.
pub(super) async fn is_alive(pool: &Pool, cx: &Cx, token: &str) -> Result<bool, LedgerError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = begin(&mut client, true).await.map_err(Fail::into_ledger)?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = {DYING_GRACE_MS}"))
        .await
        .map_err(|e| sql_error(&e))?;
    match tx
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&lease_key(cx, token)],
        )
        .await
    {
        // Released at the end of the transaction.
        Ok(_) => {
            drop(tx.rollback().await);
            Ok(false)
        }
        Err(e) if e.code().is_some_and(|c| c.code() == "55P03") => Ok(true),
        Err(e) => Err(sql_error(&e)),
    }
}

/// A lock-pool connection that may hold a session lock: unless [`Session::release`]d, dropping it
/// discards the connection (the server then releases whatever it held), never returning it to
/// the pool with a lock on it.
struct Session(Option<Object>);

impl Session {
    /// Back to the pool: it holds nothing.
    fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(Object::take(object));
        }
    }
}

/// An order lock, held: the in-process guard and the session lock on its connection.
struct Held {
    session: Option<Session>,
    key: String,
    local: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (Some(session), local) = (self.session.take(), self.local.take()) else {
            return;
        };
        let key = std::mem::take(&mut self.key);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move {
                let unlocked = match session.0.as_ref() {
                    Some(client) => tokio::time::timeout(
                        Duration::from_secs(5),
                        client.query_one(
                            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                            &[&key],
                        ),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|r| r.try_get::<_, bool>(0).ok())
                    .unwrap_or(false),
                    None => false,
                };
                if unlocked {
                    session.release();
                }
                // Otherwise dropped: discarded, and the server releases the lock with it.
                drop(local);
            })),
            Err(_) => {
                drop(session);
                drop(local);
            }
        }
    }
}

/// One refund decision per order at a time, in this process and across every process sharing
/// the database; a waiter gives up after `wait`.
pub(super) struct OrderLocks {
    in_process: Mutex<HashMap<OutTradeNo, Arc<tokio::sync::Mutex<()>>>>,
    wait: Duration,
}

impl OrderLocks {
    pub(super) fn new(wait: Duration) -> Self {
        Self {
            in_process: Mutex::default(),
            wait,
        }
    }

    /// The lock's key: not `begin_refund`'s (which a holder's own calls must still take).
    pub(super) fn key(cx: &Cx, no: &OutTradeNo) -> String {
        cx.key("refund-lock", no.as_str())
    }

    pub(super) async fn lock(
        &self,
        pool: &Pool,
        cx: &Cx,
        no: &OutTradeNo,
    ) -> Result<OrderLock, LedgerError> {
        let deadline = tokio::time::Instant::now() + self.wait;
        let local = {
            let mut locks = self
                .in_process
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Forget locks nobody holds or waits for, so the map stays small.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(no.clone()).or_default().clone()
        };
        let local = tokio::time::timeout_at(deadline, local.lock_owned())
            .await
            .map_err(|_| order_lock_timed_out(no, self.wait))?;
        let key = Self::key(cx, no);
        // Polled with a try, on a connection taken for each try: a waiter holds no connection
        // and no place in the server's lock queue, so a cancelled wait leaves nothing behind.
        let mut pause = Duration::from_millis(5);
        loop {
            let session = Session(Some(pool.get().await.map_err(pool_error)?));
            let got = match session.0.as_ref() {
                Some(client) => client
                    .query_one(
                        "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                        &[&key],
                    )
                    .await
                    .and_then(|r| r.try_get::<_, bool>(0))
                    .map_err(|e| sql_error(&e))?,
                None => false,
            };
            if got {
                return Ok(OrderLock::new(Held {
                    session: Some(session),
                    key,
                    local: Some(local),
                }));
            }
            session.release();
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(order_lock_timed_out(no, self.wait));
            }
            // The last try comes at the deadline.
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}
