//! The SQLite ledger (`AP_DATA_DIR/ledger.db`; `sandbox/` and `local/` below it for those
//! environments): one file per environment, any number of apps in it (every row names its app).
//! WAL, one transaction per call, a busy timeout so two server processes on one data dir wait for
//! each other instead of failing. SQLite's calls block, so each runs on the writer's own thread
//! (`writer`), never on an async worker, except a read of one order by its key (`readers`), which
//! takes less than the hand-off would.
//!
//! Across processes sharing the file: liveness and the per-order refund lock by lock files
//! (`liveness`), the refund decision by SQLite's single writer (`begin_refund` checks and records
//! in one IMMEDIATE transaction), and
//! `changes()` hears this handle's writes only (SQLite has no way to tell another process).

mod liveness;
mod ops;
mod outbox;
mod readers;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alipay_openapi::Money;
use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::broadcast;

use self::liveness::{Instance, OrderLocks};
use self::readers::Readers;
use self::rows::{Fail, Res};
use self::writer::Writer;
use super::*;

/// How many changes a slow subscriber may fall behind before it is told it lagged.
const CHANGES_CAPACITY: usize = 1024;

pub struct SqliteLedger {
    /// Point reads in place. Declared before `writer`, so dropped first: the writer's connection
    /// closes last, and the last one closed checkpoints the WAL.
    readers: Readers,
    /// Every other call, in order, on the writer's own thread.
    writer: Writer,
    scope: AppScope,
    instance: Instance,
    instances_dir: PathBuf,
    locks: OrderLocks,
    changes: broadcast::Sender<OrderChanged>,
    /// The outbox's configured targets: each event gets one delivery per target that receives it.
    targets: Arc<[TargetKind]>,
}

/// One reader per worker thread: an in-place read holds its worker, so no more can run at once.
fn reader_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(8))
}

/// How long a call waits for another writer (in this process or another) before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Switch to WAL. On a new file that another process is switching at the same moment SQLite says
/// "locked" at once, without waiting (the busy timeout does not cover a journal-mode change), so
/// wait here, as long as the busy timeout would.
fn wal(conn: &Connection) -> Res<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return Ok(other?),
        }
    }
}

fn open_file(path: &Path, scope: &AppScope) -> Res<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            rows::fail(
                LedgerErrorKind::Unavailable,
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL + NORMAL: a committed transaction survives a process crash (kill -9); only an OS crash
    // could lose the last commits, which fsync-per-commit would cost every call to prevent.
    wal(&conn)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    schema::migrate(&mut conn, scope)?;
    Ok(conn)
}

impl SqliteLedger {
    /// Open (creating, or migrating) the ledger at `path` as `scope`, and register this process in
    /// `instances_dir` for as long as the handle lives.
    pub async fn open(
        path: &Path,
        scope: AppScope,
        instances_dir: &Path,
    ) -> Result<Self, LedgerError> {
        let (path, instances_dir) = (path.to_path_buf(), instances_dir.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let conn = open_file(&path, &scope).map_err(Fail::into_ledger)?;
            let readers = Readers::open(&path, reader_count()).map_err(Fail::into_ledger)?;
            let instance = Instance::register(&instances_dir)?;
            let order_locks = instances_dir
                .parent()
                .unwrap_or(&instances_dir)
                .join("order-locks");
            Ok(Self {
                readers,
                writer: Writer::start(conn).map_err(Fail::into_ledger)?,
                scope,
                instance,
                instances_dir,
                locks: OrderLocks::new(order_locks, ORDER_LOCK_WAIT),
                changes: broadcast::channel(CHANGES_CAPACITY).0,
                targets: Arc::from([]),
            })
        })
        .await
        .map_err(|e| {
            LedgerError::new(
                LedgerErrorKind::Unavailable,
                format!("opening the ledger failed: {e}"),
            )
        })?
    }

    /// Wait at most `wait` (instead of [`ORDER_LOCK_WAIT`]) for another holder of an order's lock.
    pub fn with_order_lock_wait(mut self, wait: Duration) -> Self {
        self.locks.wait = wait;
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

    /// Run `f` on the writer's connection.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &AppScope) -> Res<T> + Send + 'static,
    ) -> Result<T, LedgerError> {
        self.writer.call(self.scope.clone(), f).await
    }

    /// `read` in place on a reader when one is free, else on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        read: impl Fn(&Connection, &AppScope) -> Res<T> + Send + 'static,
    ) -> Result<T, LedgerError> {
        if let Some(done) = self.readers.try_read(&self.scope, &read) {
            return done;
        }
        self.run(move |c, s| read(c, s)).await
    }

    /// Tell subscribers an order's committed state changed.
    fn changed(&self, out_trade_no: &OutTradeNo, changed: bool) {
        if changed {
            // No subscriber is no error.
            let _ = self.changes.send(OrderChanged {
                out_trade_no: out_trade_no.clone(),
            });
        }
    }
}

#[async_trait]
impl Ledger for SqliteLedger {
    fn scope(&self) -> &AppScope {
        &self.scope
    }

    fn instance(&self) -> &InstanceId {
        self.instance.id()
    }

    async fn now(&self) -> Result<String, LedgerError> {
        // One host: its clock is the store's.
        Ok(alipay_openapi::time::timestamp_now())
    }

    async fn is_alive(&self, instance: &InstanceId) -> Result<bool, LedgerError> {
        let (dir, token) = (self.instances_dir.clone(), instance.0.clone());
        tokio::task::spawn_blocking(move || liveness::is_alive(&dir, &token))
            .await
            .map_err(|e| {
                LedgerError::new(
                    LedgerErrorKind::Unavailable,
                    format!("checking an instance failed: {e}"),
                )
            })
    }

    async fn lock_order(&self, out_trade_no: &OutTradeNo) -> Result<OrderLock, LedgerError> {
        self.locks.lock(out_trade_no).await
    }

    fn changes(&self) -> broadcast::Receiver<OrderChanged> {
        self.changes.subscribe()
    }

    async fn create_order(&self, order: &NewOrder) -> Result<CreateOrder, LedgerError> {
        let order = order.clone();
        self.run(move |c, s| ops::create_order(c, s, &order)).await
    }

    async fn order(&self, out_trade_no: &OutTradeNo) -> Result<Option<OrderRecord>, LedgerError> {
        let no = out_trade_no.clone();
        self.read(move |c, s| ops::order(c, s, &no)).await
    }

    async fn update_status(
        &self,
        out_trade_no: &OutTradeNo,
        update: &StatusUpdate,
    ) -> Result<bool, LedgerError> {
        // Most updates repeat what is known (a paid order queried again): a read answers them.
        if update.changes_nothing_in(self.order(out_trade_no).await?.as_ref()) {
            return Ok(false);
        }
        let (no, update, targets) = (out_trade_no.clone(), update.clone(), self.targets.clone());
        let (status_changed, changed) = self
            .run(move |c, s| ops::update_status(c, s, &targets, &no, &update))
            .await?;
        self.changed(out_trade_no, changed);
        Ok(status_changed)
    }

    async fn list_orders(&self, filter: &OrderFilter) -> Result<Vec<OrderRecord>, LedgerError> {
        let filter = filter.clone();
        self.run(move |c, s| ops::list_orders(c, s, &filter)).await
    }

    async fn begin_refund(
        &self,
        refund: &NewRefund,
        limits: &RefundLimits,
    ) -> Result<RefundBegin, LedgerError> {
        let (r, limits) = (refund.clone(), limits.clone());
        let (begin, changed) = self
            .run(move |c, s| ops::begin_refund(c, s, &r, &limits))
            .await?;
        self.changed(&refund.out_trade_no, changed);
        Ok(begin)
    }

    async fn finish_refund(
        &self,
        out_trade_no: &OutTradeNo,
        out_request_no: &OutRequestNo,
        outcome: &RefundOutcome,
        sender: Option<&InstanceId>,
    ) -> Result<Option<RefundState>, LedgerError> {
        let (no, req, outcome) = (
            out_trade_no.clone(),
            out_request_no.clone(),
            outcome.clone(),
        );
        let sender = sender.map(|s| s.0.clone());
        let targets = self.targets.clone();
        let (held, changed) = self
            .run(move |c, s| {
                ops::finish_refund(c, s, &targets, &no, &req, &outcome, sender.as_deref())
            })
            .await?;
        self.changed(out_trade_no, changed);
        Ok(held)
    }

    async fn refund(
        &self,
        out_trade_no: &OutTradeNo,
        out_request_no: &OutRequestNo,
    ) -> Result<Option<RefundRecord>, LedgerError> {
        let (no, req) = (out_trade_no.clone(), out_request_no.clone());
        self.run(move |c, s| ops::refund(c, s, &no, &req)).await
    }

    async fn refunds(&self, out_trade_no: &OutTradeNo) -> Result<Vec<RefundRecord>, LedgerError> {
        let no = out_trade_no.clone();
        self.run(move |c, s| ops::refunds(c, s, &no)).await
    }

    async fn unsettled_refunds(&self) -> Result<Vec<RefundRecord>, LedgerError> {
        self.run(|c, s| ops::unsettled_refunds(c, s)).await
    }

    async fn refunded_besides(
        &self,
        out_trade_no: &OutTradeNo,
        except: &OutRequestNo,
    ) -> Result<Money, LedgerError> {
        let (no, except) = (out_trade_no.clone(), except.clone());
        self.run(move |c, s| ops::refunded_besides(c, s, &no, &except))
            .await
    }

    async fn refunded_on_day(&self, day: &str) -> Result<Money, LedgerError> {
        let day = day.to_string();
        self.run(move |c, s| ops::day_used(c, s, &day)).await
    }

    async fn paid_on(&self, day: &str) -> Result<Vec<OrderRecord>, LedgerError> {
        let day = day.to_string();
        self.run(move |c, s| ops::paid_on(c, s, &day)).await
    }

    async fn refunds_succeeded_on(&self, day: &str) -> Result<Vec<RefundRecord>, LedgerError> {
        let day = day.to_string();
        self.run(move |c, s| ops::refunds_succeeded_on(c, s, &day))
            .await
    }

    async fn apply_notification(
        &self,
        n: &ReceivedNotification,
    ) -> Result<NotifyApply, LedgerError> {
        let (notification, targets) = (n.clone(), self.targets.clone());
        let (apply, changed) = self
            .run(move |c, s| ops::apply_notification(c, s, &targets, &notification))
            .await?;
        self.changed(&n.out_trade_no, changed);
        Ok(apply)
    }

    async fn reject_notification(
        &self,
        notify_id: Option<&str>,
        out_trade_no: Option<&str>,
        reason: &str,
    ) -> Result<(), LedgerError> {
        let (id, no) = (
            notify_id.map(str::to_string),
            out_trade_no.map(str::to_string),
        );
        let reason = reason.to_string();
        self.run(move |c, s| ops::reject_notification(c, s, id.as_deref(), no.as_deref(), &reason))
            .await
    }

    async fn notifications(
        &self,
        out_trade_no: &OutTradeNo,
    ) -> Result<Vec<NotificationRecord>, LedgerError> {
        let no = out_trade_no.clone();
        self.run(move |c, s| ops::notifications(c, s, &no)).await
    }

    async fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), LedgerError> {
        let row = AuditRow::of(entry);
        self.run(move |c, s| ops::audit(c, s, &row)).await
    }

    async fn put_approval(&self, approval: &ApprovalRecord) -> Result<(), LedgerError> {
        let approval = approval.clone();
        self.run(move |c, s| ops::put_approval(c, s, &approval))
            .await
    }

    async fn approval(&self, token_hash: &str) -> Result<Option<ApprovalRecord>, LedgerError> {
        let token_hash = token_hash.to_string();
        self.run(move |c, s| ops::approval(c, s, &token_hash)).await
    }

    async fn close_approval(
        &self,
        token_hash: &str,
        status: ApprovalStatus,
    ) -> Result<bool, LedgerError> {
        let token_hash = token_hash.to_string();
        self.run(move |c, s| ops::close_approval(c, s, &token_hash, status))
            .await
    }

    async fn open_approvals(&self) -> Result<Vec<ApprovalRecord>, LedgerError> {
        self.run(|c, s| ops::open_approvals(c, s)).await
    }

    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, LedgerError> {
        let (owner, targets) = (self.instance.id().0.clone(), self.targets.clone());
        self.run(move |c, s| outbox::claim(c, s, &targets, &owner, now_ms, lease_ms, limit))
            .await
    }

    async fn record_attempt(
        &self,
        event_id: &str,
        target: TargetKind,
        result: &AttemptResult,
    ) -> Result<(), LedgerError> {
        let (id, result) = (event_id.to_string(), result.clone());
        let owner = self.instance.id().0.clone();
        self.run(move |c, _| outbox::record_attempt(c, &owner, &id, target, &result))
            .await
    }

    async fn next_delivery_at(&self) -> Result<Option<i64>, LedgerError> {
        let targets = self.targets.clone();
        self.run(move |c, s| outbox::next_due(c, s, &targets)).await
    }

    async fn deliveries(
        &self,
        out_trade_no: &OutTradeNo,
    ) -> Result<Vec<DeliveryRecord>, LedgerError> {
        let no = out_trade_no.clone();
        self.run(move |c, s| outbox::deliveries(c, s, &no)).await
    }

    async fn delivery_health(&self) -> Result<Vec<TargetHealth>, LedgerError> {
        self.run(|c, s| outbox::health(c, s)).await
    }

    async fn expired_untold(
        &self,
        since: &str,
        expired_by: &str,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, LedgerError> {
        let (since, by) = (since.to_string(), expired_by.to_string());
        self.run(move |c, s| outbox::expired_untold(c, s, &since, &by, limit))
            .await
    }

    async fn note_expired(&self, out_trade_no: &OutTradeNo) -> Result<bool, LedgerError> {
        let (no, targets) = (out_trade_no.clone(), self.targets.clone());
        let new = self
            .run(move |c, s| outbox::note_expired(c, s, &targets, &no))
            .await?;
        self.changed(out_trade_no, new);
        Ok(new)
    }
}
