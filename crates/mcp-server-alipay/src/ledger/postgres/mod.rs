//! The PostgreSQL ledger: any number of server processes, on any number of hosts, sharing one
//! database (a schema in it: `search_path`, or [`PostgresOptions::schema`]). One environment per
//! schema (its `meta` row), any number of apps in it (every row names its app).
//!
//! Every call is one READ COMMITTED transaction on a pooled connection (deadpool), with
//! `lock_timeout`, `statement_timeout` and `idle_in_transaction_session_timeout` set on every
//! connection. What SQLite's single writer gave, explicit locks and constraints give here:
//! `begin_refund` takes transaction-level advisory locks (the order's, then the day's) as its
//! first statements; a call that reads an order to decide what to write locks its row; accepted
//! notifications' ids are a unique index; events have their unique key. Every time recorded is
//! the database's clock, in Beijing time, so processes on several hosts agree on the day.
//!
//! Across processes: liveness and the per-order refund lock are session advisory locks
//! (`liveness`); `changes()` is LISTEN/NOTIFY (`listen`), so a handle hears every process's
//! writes. Liveness, the listener and order locks need direct sessions: a pooler in transaction
//! mode (PgBouncer) in front breaks them.

/// The database's clock as Beijing time (`yyyy-MM-dd HH:mm:ss`), in SQL.
macro_rules! beijing_now {
    () => {
        "to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI:SS')"
    };
}

mod conn;
mod creates;
mod listen;
mod liveness;
mod ops;
mod outbox;
mod refunds;
mod rows;
mod schema;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alipay_openapi::Money;
use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio::sync::broadcast;

use self::conn::Connector;
use self::creates::Creates;
use self::listen::Listener;
use self::liveness::{Lease, OrderLocks};
use self::ops::Notified;
use self::rows::{Fail, at, pool_error};
use super::*;

/// How many changes a slow subscriber may fall behind before it is told it lagged.
const CHANGES_CAPACITY: usize = 1024;

/// Where the PostgreSQL ledger is.
#[derive(Clone, Default)]
pub struct PostgresOptions {
    /// libpq-style `host=/run/postgresql user=ap dbname=ap` or a `postgres://` URL. With
    /// `sslmode=require`, TLS is required and the server's certificate verified; `prefer` (the
    /// default) uses TLS when a TCP server offers it, verified the same way; `disable` never.
    pub url: String,
    /// PEM file of the roots that verify the server's certificate (else the platform's).
    pub ca_file: Option<PathBuf>,
    /// The schema to keep the ledger in (`search_path`), created if missing; else the first of
    /// the connection's `search_path` that exists. A plain lower-case name.
    pub schema: Option<String>,
    /// Connections for calls (0: [`DEFAULT_POOL_SIZE`]); order locks get half as many more.
    pub pool_size: usize,
}

/// Connections for calls when [`PostgresOptions::pool_size`] is 0 (`AP_DATABASE_POOL_SIZE`'s
/// default): many times what two cores keep busy, and three instances with their lock pools,
/// leases and listeners (3 × 26) fit in PostgreSQL's default `max_connections` of 100.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// The connection string may hold a password: never shown.
impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &"…")
            .field("ca_file", &self.ca_file)
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Which store, scope and channel a handle's calls are about.
pub(super) struct Cx {
    pub(super) scope: AppScope,
    /// The schema the ledger lives in.
    pub(super) schema: String,
    /// Its NOTIFY channel for this scope.
    pub(super) channel: String,
}

impl Cx {
    pub(super) fn app(&self) -> &str {
        &self.scope.app_id
    }

    pub(super) fn env(&self) -> &'static str {
        self.scope.env.as_str()
    }

    /// An advisory lock's key (hashed by the server): `what` of `name`, in this store and scope.
    pub(super) fn key(&self, what: &str, name: &str) -> String {
        format!(
            "ap-ledger:{}:{what}:{}:{}:{name}",
            self.schema,
            self.env(),
            self.app()
        )
    }
}

pub struct PostgresLedger {
    pool: Pool,
    /// Connections holding order locks (see `liveness`).
    lock_pool: Pool,
    /// New orders, written together when they arrive together.
    creates: Creates,
    cx: Arc<Cx>,
    lease: Lease,
    listener: Listener,
    locks: OrderLocks,
    changes: broadcast::Sender<OrderChanged>,
    /// The outbox's configured targets: each event gets one delivery per target that receives it.
    targets: Arc<[TargetKind]>,
}

/// One transaction: `begin`, the body (a future using `$tx`), commit. A failure rolls back.
macro_rules! in_tx {
    // A read is one statement or several, each of which reads committed data on its own under
    // READ COMMITTED whether or not a transaction wraps them: so no BEGIN and COMMIT, two round
    // trips fewer.
    ($self:ident, read, |$tx:ident| $body:expr) => {{
        let $tx = $self.pool.get().await.map_err(pool_error)?;
        $body.await.map_err(Fail::into_ledger)
    }};
    ($self:ident, write, |$tx:ident| $body:expr) => {
        in_tx!(@run $self, false, |$tx| $body)
    };
    // A write that is one statement (reads around it aside) commits on its own: no BEGIN and
    // COMMIT, two round trips fewer. Its answer lost on the way (no error from the server) is
    // an outcome not known, as a lost COMMIT's is.
    ($self:ident, one_write, |$tx:ident| $body:expr) => {{
        let $tx = $self.pool.get().await.map_err(pool_error)?;
        $body.await.map_err(conn::write_error)
    }};
    (@run $self:ident, $read_only:expr, |$tx:ident| $body:expr) => {{
        let mut client = $self.pool.get().await.map_err(pool_error)?;
        let $tx = conn::begin(&mut client, $read_only)
            .await
            .map_err(Fail::into_ledger)?;
        let out = $body.await.map_err(Fail::into_ledger)?;
        conn::commit($tx, !$read_only).await?;
        Ok(out)
    }};
}

impl PostgresLedger {
    /// Connect to the ledger's database as `scope`, creating or migrating its schema, and
    /// register this process (its lease) for as long as the handle lives.
    pub async fn connect(options: &PostgresOptions, scope: AppScope) -> Result<Self, LedgerError> {
        let connector = Connector::new(options)?;
        let pool = connector.pool(false)?;
        let lock_pool = connector.pool(true)?;
        let mut client = pool.get().await.map_err(pool_error)?;
        let schema = match &options.schema {
            Some(schema) => schema.clone(),
            None => {
                let current: Option<String> = client
                    .query_one("SELECT current_schema()::text", &[])
                    .await
                    .map_err(|e| rows::sql_error(&e))
                    .and_then(|r| at(&r, 0).map_err(Fail::into_ledger))?;
                let schema = current.ok_or_else(|| {
                    LedgerError::new(
                        LedgerErrorKind::Refused,
                        "the PostgreSQL connection's search_path names no schema that exists; create one or name the ledger's schema",
                    )
                })?;
                conn::check_schema(&schema)?;
                schema
            }
        };
        schema::migrate(&mut client, &schema, &scope).await?;
        drop(client);
        let cx = Arc::new(Cx {
            channel: listen::channel(&schema, &scope),
            scope,
            schema,
        });
        let lease = Lease::register(connector.clone(), cx.clone()).await?;
        let changes = broadcast::channel(CHANGES_CAPACITY).0;
        let listener =
            Listener::start(connector, cx.clone(), changes.clone(), lease.id().0.clone()).await?;
        Ok(Self {
            creates: Creates::start(pool.clone(), cx.clone()),
            pool,
            lock_pool,
            cx,
            lease,
            listener,
            locks: OrderLocks::new(ORDER_LOCK_WAIT),
            changes,
            targets: Arc::from([]),
        })
    }

    /// Wait at most `wait` (instead of [`ORDER_LOCK_WAIT`]) for another holder of an order's lock.
    pub fn with_order_lock_wait(mut self, wait: Duration) -> Self {
        self.locks = OrderLocks::new(wait);
        self
    }

    /// Record an outbox delivery to each of `targets` for every event from now on.
    pub fn with_outbox(mut self, targets: &[TargetKind]) -> Self {
        let mut targets = targets.to_vec();
        targets.sort();
        targets.dedup();
        self.targets = Arc::from(targets);
        self
    }
}

impl Drop for PostgresLedger {
    fn drop(&mut self) {
        // The lease and the listener's sockets close now; the server releases the lease with it.
        self.lease.close();
        self.listener.close();
        self.lock_pool.close();
        let (pool, token) = (self.pool.clone(), self.lease.id().0.clone());
        let forget = async move {
            // The instance's row is for people looking: best effort.
            if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(2), pool.get()).await {
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    client.execute("DELETE FROM instances WHERE token = $1", &[&token]),
                )
                .await;
            }
            pool.close();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(forget)),
            Err(_) => self.pool.close(),
        }
    }
}

#[async_trait]
impl Ledger for PostgresLedger {
    fn scope(&self) -> &AppScope {
        &self.cx.scope
    }

    fn instance(&self) -> &InstanceId {
        self.lease.id()
    }

    async fn now(&self) -> Result<String, LedgerError> {
        in_tx!(self, read, |tx| async {
            rows::first(&tx, concat!("SELECT ", beijing_now!()), &[], |r| {
                at::<String>(r, 0)
            })
            .await?
            .ok_or_else(|| rows::corrupt("the database has no time"))
        })
    }

    async fn is_alive(&self, instance: &InstanceId) -> Result<bool, LedgerError> {
        if instance == self.lease.id() {
            return Ok(self.lease.held());
        }
        liveness::is_alive(&self.pool, &self.cx, instance.as_str()).await
    }

    async fn lock_order(&self, out_trade_no: &OutTradeNo) -> Result<OrderLock, LedgerError> {
        self.locks
            .lock(&self.lock_pool, &self.cx, out_trade_no)
            .await
    }

    fn changes(&self) -> broadcast::Receiver<OrderChanged> {
        self.changes.subscribe()
    }

    async fn create_order(&self, order: &NewOrder) -> Result<CreateOrder, LedgerError> {
        self.creates.create(order).await
    }

    async fn order(&self, out_trade_no: &OutTradeNo) -> Result<Option<OrderRecord>, LedgerError> {
        in_tx!(self, read, |tx| ops::find_order(
            &tx,
            &self.cx,
            out_trade_no
        ))
    }

    async fn update_status(
        &self,
        out_trade_no: &OutTradeNo,
        update: &StatusUpdate,
    ) -> Result<bool, LedgerError> {
        // Most updates repeat what is known: a read answers them, without a transaction.
        let known = in_tx!(self, read, |tx| ops::find_order(
            &tx,
            &self.cx,
            out_trade_no
        ))?;
        if update.changes_nothing_in(known.as_ref()) {
            return Ok(false);
        }
        let (status_changed, _) = in_tx!(self, write, |tx| ops::update_status(
            &tx,
            &self.cx,
            &self.targets,
            out_trade_no,
            update
        ))?;
        Ok(status_changed)
    }

    async fn list_orders(&self, filter: &OrderFilter) -> Result<Vec<OrderRecord>, LedgerError> {
        in_tx!(self, read, |tx| ops::list_orders(&tx, &self.cx, filter))
    }

    async fn begin_refund(
        &self,
        refund: &NewRefund,
        limits: &RefundLimits,
    ) -> Result<RefundBegin, LedgerError> {
        // Fenced: without its lease, others take this process for dead and settle its refunds,
        // so it starts none (the lease comes back with the connection, and with it the refunds).
        if !self.lease.held() {
            return Err(LedgerError::new(
                LedgerErrorKind::Unavailable,
                "this process has lost its lease on the ledger (its PostgreSQL connection) and sends no refund until it holds it again; nothing was sent",
            ));
        }
        in_tx!(self, write, |tx| refunds::begin_refund(
            &tx, &self.cx, refund, limits
        ))
    }

    async fn finish_refund(
        &self,
        out_trade_no: &OutTradeNo,
        out_request_no: &OutRequestNo,
        outcome: &RefundOutcome,
        sender: Option<&InstanceId>,
    ) -> Result<Option<RefundState>, LedgerError> {
        let (held, _) = in_tx!(self, write, |tx| refunds::finish_refund(
            &tx,
            &self.cx,
            &self.targets,
            out_trade_no,
            out_request_no,
            outcome,
            sender.map(InstanceId::as_str)
        ))?;
        Ok(held)
    }

    async fn refund(
        &self,
        out_trade_no: &OutTradeNo,
        out_request_no: &OutRequestNo,
    ) -> Result<Option<RefundRecord>, LedgerError> {
        in_tx!(self, read, |tx| refunds::find_refund(
            &tx,
            &self.cx,
            out_trade_no,
            out_request_no,
            false
        ))
    }

    async fn refunds(&self, out_trade_no: &OutTradeNo) -> Result<Vec<RefundRecord>, LedgerError> {
        in_tx!(self, read, |tx| refunds::refunds_of(
            &tx,
            &self.cx,
            out_trade_no
        ))
    }

    async fn unsettled_refunds(&self) -> Result<Vec<RefundRecord>, LedgerError> {
        in_tx!(self, read, |tx| refunds::unsettled_refunds(&tx, &self.cx))
    }

    async fn refunded_besides(
        &self,
        out_trade_no: &OutTradeNo,
        except: &OutRequestNo,
    ) -> Result<Money, LedgerError> {
        in_tx!(self, read, |tx| refunds::refunded_besides(
            &tx,
            &self.cx,
            out_trade_no,
            except
        ))
    }

    async fn refunded_on_day(&self, day: &str) -> Result<Money, LedgerError> {
        in_tx!(self, read, |tx| refunds::day_used(&tx, &self.cx, day))
    }

    async fn paid_on(&self, day: &str) -> Result<Vec<OrderRecord>, LedgerError> {
        in_tx!(self, read, |tx| ops::paid_on(&tx, &self.cx, day))
    }

    async fn refunds_succeeded_on(&self, day: &str) -> Result<Vec<RefundRecord>, LedgerError> {
        in_tx!(self, read, |tx| refunds::refunds_succeeded_on(
            &tx, &self.cx, day
        ))
    }

    async fn apply_notification(
        &self,
        n: &ReceivedNotification,
    ) -> Result<NotifyApply, LedgerError> {
        // Twice at most: a writer that recorded the same id for another order between this one's
        // look-up and its insert is found on the second try (and nothing of the first is kept).
        for _ in 0..2 {
            let mut client = self.pool.get().await.map_err(pool_error)?;
            let tx = conn::begin(&mut client, false)
                .await
                .map_err(Fail::into_ledger)?;
            match ops::apply_notification(&tx, &self.cx, &self.targets, n)
                .await
                .map_err(Fail::into_ledger)?
            {
                Notified::Decided(apply) => {
                    conn::commit(tx, true).await?;
                    return Ok(apply);
                }
                Notified::Raced => drop(tx.rollback().await),
            }
        }
        Err(LedgerError::new(
            LedgerErrorKind::Unavailable,
            format!(
                "notification {} was being recorded by another writer; try again",
                n.notify_id
            ),
        ))
    }

    async fn reject_notification(
        &self,
        notify_id: Option<&str>,
        out_trade_no: Option<&str>,
        reason: &str,
    ) -> Result<(), LedgerError> {
        in_tx!(self, write, |tx| ops::reject_notification(
            &tx,
            &self.cx,
            notify_id,
            out_trade_no,
            reason
        ))
    }

    async fn notifications(
        &self,
        out_trade_no: &OutTradeNo,
    ) -> Result<Vec<NotificationRecord>, LedgerError> {
        in_tx!(self, read, |tx| ops::notifications(
            &tx,
            &self.cx,
            out_trade_no
        ))
    }

    async fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), LedgerError> {
        let row = AuditRow::of(entry);
        in_tx!(self, one_write, |tx| ops::audit(&tx, &self.cx, &row))
    }

    async fn put_approval(&self, approval: &ApprovalRecord) -> Result<(), LedgerError> {
        in_tx!(self, write, |tx| ops::put_approval(&tx, &self.cx, approval))
    }

    async fn approval(&self, token_hash: &str) -> Result<Option<ApprovalRecord>, LedgerError> {
        in_tx!(self, read, |tx| ops::approval(&tx, &self.cx, token_hash))
    }

    async fn close_approval(
        &self,
        token_hash: &str,
        status: ApprovalStatus,
    ) -> Result<bool, LedgerError> {
        in_tx!(self, write, |tx| ops::close_approval(
            &tx, &self.cx, token_hash, status
        ))
    }

    async fn open_approvals(&self) -> Result<Vec<ApprovalRecord>, LedgerError> {
        in_tx!(self, read, |tx| ops::open_approvals(&tx, &self.cx))
    }

    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, LedgerError> {
        let owner = self.lease.id().as_str();
        in_tx!(self, write, |tx| outbox::claim(
            &tx,
            &self.cx,
            &self.targets,
            owner,
            now_ms,
            lease_ms,
            limit
        ))
    }

    async fn record_attempt(
        &self,
        event_id: &str,
        target: TargetKind,
        result: &AttemptResult,
    ) -> Result<(), LedgerError> {
        let owner = self.lease.id().as_str();
        in_tx!(self, write, |tx| outbox::record_attempt(
            &tx, &self.cx, owner, event_id, target, result
        ))
    }

    async fn next_delivery_at(&self) -> Result<Option<i64>, LedgerError> {
        in_tx!(self, read, |tx| outbox::next_due(
            &tx,
            &self.cx,
            &self.targets
        ))
    }

    async fn deliveries(
        &self,
        out_trade_no: &OutTradeNo,
    ) -> Result<Vec<DeliveryRecord>, LedgerError> {
        in_tx!(self, read, |tx| outbox::deliveries(
            &tx,
            &self.cx,
            out_trade_no
        ))
    }

    async fn delivery_health(&self) -> Result<Vec<TargetHealth>, LedgerError> {
        in_tx!(self, read, |tx| outbox::health(&tx, &self.cx))
    }

    async fn expired_untold(
        &self,
        since: &str,
        expired_by: &str,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, LedgerError> {
        in_tx!(self, read, |tx| outbox::expired_untold(
            &tx, &self.cx, since, expired_by, limit
        ))
    }

    async fn note_expired(&self, out_trade_no: &OutTradeNo) -> Result<bool, LedgerError> {
        in_tx!(self, write, |tx| outbox::note_expired(
            &tx,
            &self.cx,
            &self.targets,
            out_trade_no
        ))
    }
}
