//! The SQLite ledger (`AP_DATA_DIR/ledger.db`; `sandbox/` and `local/` below it for those
//! environments): WAL, one transaction per call, a busy timeout so two
//! server processes on one data dir wait for each other instead of failing.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use alipay_openapi::time::timestamp_now;
use alipay_openapi::{Amount, Money};
use rusqlite::{Connection, OptionalExtension as _, Row, TransactionBehavior, params};

use super::*;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    out_trade_no  TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    amount_fen    INTEGER NOT NULL,
    title         TEXT NOT NULL,
    link          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    trade_status  TEXT,
    trade_no      TEXT,
    status_source TEXT,
    status_at     TEXT,
    refunded_fen  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS orders_created ON orders (created_at);
CREATE TABLE IF NOT EXISTS status_events (
    id            INTEGER PRIMARY KEY,
    out_trade_no  TEXT NOT NULL,
    trade_status  TEXT NOT NULL,
    source        TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    out_trade_no   TEXT NOT NULL,
    out_request_no TEXT NOT NULL,
    amount_fen     INTEGER NOT NULL,
    reason         TEXT,
    state          TEXT NOT NULL,
    trade_no       TEXT,
    total_refunded_fen INTEGER,
    day            TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    detail         TEXT,
    owner          TEXT,
    PRIMARY KEY (out_trade_no, out_request_no)
);
CREATE INDEX IF NOT EXISTS refunds_day ON refunds (day);
CREATE TABLE IF NOT EXISTS notifications (
    id            INTEGER PRIMARY KEY,
    notify_id     TEXT,
    out_trade_no  TEXT,
    trade_status  TEXT,
    verdict       TEXT NOT NULL,
    reason        TEXT,
    content       TEXT,
    received_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_id ON notifications (notify_id);
CREATE INDEX IF NOT EXISTS notifications_order ON notifications (out_trade_no);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    tool       TEXT NOT NULL,
    arguments  TEXT NOT NULL,
    decision   TEXT NOT NULL,
    outcome    TEXT NOT NULL
);
";

/// Longest reason kept for a refused notification (a 1 MB forgery must not fill the disk).
const MAX_REASON: usize = 500;

pub struct SqliteLedger {
    conn: Mutex<Connection>,
}

impl SqliteLedger {
    /// Open (creating) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| LedgerError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// A ledger in memory (tests).
    #[cfg(test)]
    pub fn in_memory() -> Result<Self, LedgerError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, LedgerError> {
        conn.busy_timeout(Duration::from_secs(5))?;
        // WAL + NORMAL: a committed transaction survives a process crash (kill -9); only an OS crash
        // could lose the last commits, which fsync-per-commit would cost every call to prevent.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        // Ledgers made before refunds recorded their sender.
        let has_owner: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('refunds') WHERE name = 'owner'")?
            .exists([])?;
        if !has_owner {
            // Two servers starting together on an old ledger may both try; one adding it is enough.
            match conn.execute_batch("ALTER TABLE refunds ADD COLUMN owner TEXT") {
                Err(e) if e.to_string().contains("duplicate column") => {}
                other => other?,
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| LedgerError("lock poisoned".into()))?;
        f(&mut conn)
    }
}

fn amount(fen: i64) -> Result<Amount, rusqlite::Error> {
    Amount::from_fen(fen).ok_or_else(|| rusqlite::Error::IntegralValueOutOfRange(0, fen))
}

fn order_row(row: &Row<'_>) -> Result<OrderRecord, rusqlite::Error> {
    let kind: String = row.get("kind")?;
    Ok(OrderRecord {
        out_trade_no: row.get("out_trade_no")?,
        kind: OrderKind::parse(&kind).unwrap_or(OrderKind::Mobile),
        total_amount: amount(row.get("amount_fen")?)?,
        title: row.get("title")?,
        link: row.get("link")?,
        created_at: row.get("created_at")?,
        trade_status: row.get("trade_status")?,
        trade_no: row.get("trade_no")?,
        status_source: row.get("status_source")?,
        status_at: row.get("status_at")?,
        refunded_amount: Money::from_fen(row.get("refunded_fen")?),
    })
}

fn refund_row(row: &Row<'_>) -> Result<RefundRecord, rusqlite::Error> {
    let state: String = row.get("state")?;
    Ok(RefundRecord {
        out_trade_no: row.get("out_trade_no")?,
        out_request_no: row.get("out_request_no")?,
        refund_amount: amount(row.get("amount_fen")?)?,
        reason: row.get("reason")?,
        state: RefundState::parse(&state),
        trade_no: row.get("trade_no")?,
        total_refunded: row
            .get::<_, Option<i64>>("total_refunded_fen")?
            .map(Money::from_fen),
        day: row.get("day")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        detail: row.get("detail")?,
        owner: row.get("owner")?,
    })
}

fn find_order(
    conn: &Connection,
    out_trade_no: &str,
) -> Result<Option<OrderRecord>, rusqlite::Error> {
    conn.prepare_cached("SELECT * FROM orders WHERE out_trade_no = ?1")?
        .query_row([out_trade_no], order_row)
        .optional()
}

fn find_refund(
    conn: &Connection,
    out_trade_no: &str,
    out_request_no: &str,
) -> Result<Option<RefundRecord>, rusqlite::Error> {
    conn.prepare_cached("SELECT * FROM refunds WHERE out_trade_no = ?1 AND out_request_no = ?2")?
        .query_row([out_trade_no, out_request_no], refund_row)
        .optional()
}

fn refunded_on(conn: &Connection, day: &str) -> Result<Money, rusqlite::Error> {
    let fen: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(amount_fen), 0) FROM refunds WHERE day = ?1 AND state != 'failed'",
        )?
        .query_row([day], |r| r.get(0))?;
    Ok(Money::from_fen(fen))
}

/// Alipay's cumulative refund only grows: keep the largest reported.
fn raise_refunded(
    conn: &Connection,
    out_trade_no: &str,
    refunded: Money,
) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "UPDATE orders SET refunded_fen = MAX(refunded_fen, ?2) WHERE out_trade_no = ?1",
    )?
    .execute(params![out_trade_no, refunded.fen()])?;
    Ok(())
}

/// What was, or may have been, refunded on a trade, not counting `except` (the request being
/// decided): the larger of Alipay's last reported total and our confirmed refunds, plus our
/// refunds still in flight (pending or unknown), which Alipay's figure may not show yet.
fn refunded_on_trade(
    conn: &Connection,
    out_trade_no: &str,
    except: &str,
) -> Result<Money, rusqlite::Error> {
    let (confirmed, in_flight): (i64, i64) = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(CASE WHEN state = 'succeeded' THEN amount_fen END), 0),
                    COALESCE(SUM(CASE WHEN state IN ('pending', 'unknown') THEN amount_fen END), 0)
             FROM refunds WHERE out_trade_no = ?1 AND out_request_no != ?2",
        )?
        .query_row([out_trade_no, except], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let reported: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(MAX(refunded_fen), 0) FROM orders WHERE out_trade_no = ?1",
        )?
        .query_row([out_trade_no], |r| r.get(0))?;
    Ok(Money::from_fen(confirmed.max(reported) + in_flight))
}

/// Apply a status to an order row inside the caller's transaction; returns true when it changed.
fn apply_status(
    conn: &Connection,
    out_trade_no: &str,
    update: &StatusUpdate<'_>,
) -> Result<bool, rusqlite::Error> {
    let now = timestamp_now();
    let changed = conn
        .prepare_cached(
            "UPDATE orders SET trade_status = ?2, trade_no = COALESCE(?3, trade_no), status_source = ?4, status_at = ?5
             WHERE out_trade_no = ?1 AND (trade_status IS NOT ?2 OR (trade_no IS NULL AND ?3 IS NOT NULL))",
        )?
        .execute(params![out_trade_no, update.trade_status, update.trade_no, update.source, now])?;
    if let Some(refunded) = update.refunded {
        raise_refunded(conn, out_trade_no, refunded)?;
    }
    if changed > 0 {
        conn.prepare_cached("INSERT INTO status_events (out_trade_no, trade_status, source, at) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![out_trade_no, update.trade_status, update.source, now])?;
    }
    Ok(changed > 0)
}

impl Ledger for SqliteLedger {
    fn claim(&self, env: &str, app_id: &str) -> Result<(), LedgerError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let owner = format!("{env} app {app_id}");
            let existing: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'owner'", [], |r| r.get(0))
                .optional()?;
            match existing {
                Some(existing) if existing != owner => Err(LedgerError(format!(
                    "this ledger holds the orders of {existing}, not {owner}; give this configuration its own AP_DATA_DIR (orders of two apps must never mix)"
                ))),
                Some(_) => Ok(()),
                None => {
                    // Earlier versions kept every environment (local mode too) in one ledger.db:
                    // adopting one could replay a local-mode refund as a real one.
                    let used: bool = tx
                        .prepare("SELECT 1 FROM orders UNION ALL SELECT 1 FROM refunds LIMIT 1")?
                        .exists([])?;
                    if used {
                        return Err(LedgerError(format!(
                            "this ledger was written by an earlier version that kept every environment (local mode too) in one file, so it cannot be trusted as the ledger of {owner}; move it aside (rename ledger.db, ledger.db-wal and ledger.db-shm in AP_DATA_DIR; it stays readable) or set another AP_DATA_DIR"
                        )));
                    }
                    tx.execute("INSERT INTO meta (key, value) VALUES ('owner', ?1)", [&owner])?;
                    tx.commit()?;
                    Ok(())
                }
            }
        })
    }

    fn create_order(&self, order: &NewOrder) -> Result<CreateOrder, LedgerError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(existing) = find_order(&tx, &order.out_trade_no)? {
                return Ok(CreateOrder::Existing(existing));
            }
            tx.execute(
                "INSERT INTO orders (out_trade_no, kind, amount_fen, title, link, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![order.out_trade_no, order.kind.as_str(), order.amount.fen(), order.title, order.link, timestamp_now()],
            )?;
            let created = find_order(&tx, &order.out_trade_no)?.ok_or_else(|| LedgerError("order vanished".into()))?;
            tx.commit()?;
            Ok(CreateOrder::Created(created))
        })
    }

    fn order(&self, out_trade_no: &str) -> Result<Option<OrderRecord>, LedgerError> {
        self.with(|conn| Ok(find_order(conn, out_trade_no)?))
    }

    fn update_status(
        &self,
        out_trade_no: &str,
        update: &StatusUpdate<'_>,
    ) -> Result<bool, LedgerError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let changed = apply_status(&tx, out_trade_no, update)?;
            tx.commit()?;
            Ok(changed)
        })
    }

    fn begin_refund(
        &self,
        refund: &NewRefund,
        limits: &RefundLimits<'_>,
    ) -> Result<RefundBegin, LedgerError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing = find_refund(&tx, &refund.out_trade_no, &refund.out_request_no)?;
            match &existing {
                Some(e) if e.refund_amount != refund.amount => return Ok(RefundBegin::Conflict(e.clone())),
                Some(e) if e.state == RefundState::Succeeded => return Ok(RefundBegin::Replay(e.clone())),
                // Sent before with an unknown outcome: only a resend with the same number, which
                // Alipay cannot turn into a second refund, so no limit applies to it.
                Some(e) if e.state != RefundState::Failed => {
                    tx.execute(
                        "UPDATE refunds SET owner = ?3, updated_at = ?4 WHERE out_trade_no = ?1 AND out_request_no = ?2",
                        params![refund.out_trade_no, refund.out_request_no, refund.owner, timestamp_now()],
                    )?;
                    tx.commit()?;
                    return Ok(RefundBegin::Retry(e.clone()));
                }
                // Failed (no money moved) or new: every limit applies.
                _ => {}
            }
            if let Some(limit) = limits.daily {
                let used = refunded_on(&tx, limits.day)?;
                if used.fen() + refund.amount.fen() > limit.fen() {
                    return Ok(RefundBegin::OverDailyLimit { used });
                }
            }
            let refunded = refunded_on_trade(&tx, &refund.out_trade_no, &refund.out_request_no)?;
            if refunded.fen() + refund.amount.fen() > limits.paid.fen() {
                return Ok(RefundBegin::OverRemaining { refunded });
            }
            let now = timestamp_now();
            if existing.is_some() {
                tx.execute(
                    "UPDATE refunds SET state = 'pending', reason = ?3, day = ?4, updated_at = ?5, detail = NULL, owner = ?6
                     WHERE out_trade_no = ?1 AND out_request_no = ?2",
                    params![refund.out_trade_no, refund.out_request_no, refund.reason, limits.day, now, refund.owner],
                )?;
            } else {
                tx.execute(
                    "INSERT INTO refunds (out_trade_no, out_request_no, amount_fen, reason, state, day, created_at, updated_at, owner)
                     VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?6, ?7)",
                    params![refund.out_trade_no, refund.out_request_no, refund.amount.fen(), refund.reason, limits.day, now, refund.owner],
                )?;
            }
            tx.commit()?;
            Ok(RefundBegin::Fresh)
        })
    }

    fn finish_refund(
        &self,
        out_trade_no: &str,
        out_request_no: &str,
        outcome: &RefundOutcome<'_>,
        sender: Option<&str>,
    ) -> Result<Option<RefundState>, LedgerError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE refunds SET state = ?3, trade_no = COALESCE(?4, trade_no),
                    total_refunded_fen = COALESCE(?5, total_refunded_fen), detail = ?6, updated_at = ?7
                 WHERE out_trade_no = ?1 AND out_request_no = ?2
                   AND (?3 = 'succeeded' OR (state IN ('pending', 'unknown') AND (?8 IS NULL OR owner IS ?8)))",
                params![
                    out_trade_no,
                    out_request_no,
                    outcome.state.as_str(),
                    outcome.trade_no,
                    outcome.total_refunded.map(Money::fen),
                    outcome.detail,
                    timestamp_now(),
                    sender
                ],
            )?;
            if let Some(total) = outcome.total_refunded {
                raise_refunded(&tx, out_trade_no, total)?;
            }
            let stored = find_refund(&tx, out_trade_no, out_request_no)?.map(|r| r.state);
            tx.commit()?;
            Ok(stored)
        })
    }

    fn refunds(&self, out_trade_no: &str) -> Result<Vec<RefundRecord>, LedgerError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM refunds WHERE out_trade_no = ?1 ORDER BY created_at, out_request_no",
            )?;
            let rows = stmt.query_map([out_trade_no], refund_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn unsettled_refunds(&self) -> Result<Vec<RefundRecord>, LedgerError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM refunds WHERE state IN ('pending', 'unknown') ORDER BY created_at",
            )?;
            let rows = stmt.query_map([], refund_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn refunded_before(
        &self,
        out_trade_no: &str,
        except_request: &str,
    ) -> Result<Money, LedgerError> {
        self.with(|conn| Ok(refunded_on_trade(conn, out_trade_no, except_request)?))
    }

    fn refunded_on(&self, day: &str) -> Result<Money, LedgerError> {
        self.with(|conn| Ok(refunded_on(conn, day)?))
    }

    fn apply_notification(&self, n: &ReceivedNotification) -> Result<NotifyApply, LedgerError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let previous: Option<String> = tx
                .prepare_cached("SELECT content FROM notifications WHERE notify_id = ?1 AND verdict = 'accepted' LIMIT 1")?
                .query_row([&n.notify_id], |r| r.get(0))
                .optional()?;
            if let Some(previous) = previous {
                return Ok(if previous == n.content { NotifyApply::Duplicate } else { NotifyApply::ReusedId });
            }
            let order = find_order(&tx, &n.out_trade_no)?.ok_or_else(|| LedgerError("order vanished".into()))?;
            let (known, incoming) = (status_rank(order.trade_status.as_deref()), status_rank(Some(&n.trade_status)));
            if incoming < known {
                let superseded_refund = n.refunded.is_some_and(|r| r <= order.refunded_amount);
                if !superseded_refund {
                    return Ok(NotifyApply::Stale(format!(
                        "{} after the order became {}",
                        n.trade_status,
                        order.trade_status.as_deref().unwrap_or("?")
                    )));
                }
            } else {
                apply_status(
                    &tx,
                    &n.out_trade_no,
                    &StatusUpdate {
                        trade_status: &n.trade_status,
                        trade_no: n.trade_no.as_deref(),
                        refunded: n.refunded,
                        source: "notify",
                    },
                )?;
            }
            // A refund's notification settles that refund, so it is not counted twice (once in
            // Alipay's reported total, once as still in flight).
            if let Some(request_no) = &n.refund_request_no {
                tx.execute(
                    "UPDATE refunds SET state = 'succeeded', total_refunded_fen = COALESCE(total_refunded_fen, ?3),
                        detail = 'confirmed by notification', updated_at = ?4
                     WHERE out_trade_no = ?1 AND out_request_no = ?2 AND state IN ('pending', 'unknown')",
                    params![n.out_trade_no, request_no, n.refunded.map(Money::fen), timestamp_now()],
                )?;
            }
            tx.execute(
                "INSERT INTO notifications (notify_id, out_trade_no, trade_status, verdict, content, received_at)
                 VALUES (?1, ?2, ?3, 'accepted', ?4, ?5)",
                params![n.notify_id, n.out_trade_no, n.trade_status, n.content, timestamp_now()],
            )?;
            tx.commit()?;
            Ok(NotifyApply::Applied)
        })
    }

    fn reject_notification(
        &self,
        notify_id: Option<&str>,
        out_trade_no: Option<&str>,
        reason: &str,
    ) -> Result<(), LedgerError> {
        let reason: String = reason.chars().take(MAX_REASON).collect();
        let clip = |s: Option<&str>| s.map(|s| s.chars().take(128).collect::<String>());
        self.with(|conn| {
            conn.prepare_cached(
                "INSERT INTO notifications (notify_id, out_trade_no, verdict, reason, received_at) VALUES (?1, ?2, 'rejected', ?3, ?4)",
            )?
            .execute(params![clip(notify_id), clip(out_trade_no), reason, timestamp_now()])?;
            Ok(())
        })
    }

    fn notifications(&self, out_trade_no: &str) -> Result<Vec<NotificationRecord>, LedgerError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT notify_id, out_trade_no, trade_status, verdict, reason, received_at FROM notifications
                 WHERE out_trade_no = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([out_trade_no], |r| {
                Ok(NotificationRecord {
                    notify_id: r.get(0)?,
                    out_trade_no: r.get(1)?,
                    trade_status: r.get(2)?,
                    verdict: r.get(3)?,
                    reason: r.get(4)?,
                    received_at: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn list_orders(&self, filter: &OrderFilter) -> Result<Vec<OrderRecord>, LedgerError> {
        self.with(|conn| {
            let limit = filter.limit.clamp(1, 500) as i64;
            let day = filter.day.as_ref().map(|d| format!("{d}%"));
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM orders
                 WHERE (?1 IS NULL OR (?1 = 'NOT_CREATED' AND trade_status IS NULL) OR trade_status = ?1)
                   AND (?2 IS NULL OR created_at LIKE ?2)
                 ORDER BY created_at DESC, rowid DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![filter.status, day, limit], order_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), LedgerError> {
        self.with(|conn| {
            conn.prepare_cached("INSERT INTO audit (at, tool, arguments, decision, outcome) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![timestamp_now(), entry.tool, entry.arguments.to_string(), entry.decision, entry.outcome])?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(no: &str, fen: i64) -> NewOrder {
        NewOrder {
            out_trade_no: no.into(),
            kind: OrderKind::WebPage,
            amount: Amount::from_fen(fen).unwrap(),
            title: "t".into(),
            link: "https://x".into(),
        }
    }

    /// Limits with no daily budget, on a day of the tests, for a trade that paid `paid_fen`.
    fn no_daily_limit(paid_fen: i64) -> RefundLimits<'static> {
        RefundLimits {
            daily: None,
            day: "2026-11-25",
            paid: Money::from_fen(paid_fen),
        }
    }

    fn refund(no: &str, req: &str, fen: i64) -> NewRefund {
        NewRefund {
            out_trade_no: no.into(),
            out_request_no: req.into(),
            amount: Amount::from_fen(fen).unwrap(),
            reason: None,
            owner: "test".into(),
        }
    }

    #[test]
    fn orders_are_created_once() {
        let l = SqliteLedger::in_memory().unwrap();
        assert!(matches!(
            l.create_order(&order("A", 100)).unwrap(),
            CreateOrder::Created(_)
        ));
        match l.create_order(&order("A", 200)).unwrap() {
            CreateOrder::Existing(o) => {
                assert_eq!(o.total_amount.fen(), 100, "the first order is kept")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refunds_replay_retry_conflict_and_respect_the_limits() {
        let l = SqliteLedger::in_memory().unwrap();
        l.create_order(&order("A", 10_000)).unwrap();
        let limits = |day| RefundLimits {
            daily: Some(Money::from_fen(1_500)),
            day,
            paid: Money::from_fen(10_000),
        };
        let today = limits("2026-11-25");
        let begin = |req: &str, fen: i64, lim: &RefundLimits<'_>| {
            l.begin_refund(&refund("A", req, fen), lim).unwrap()
        };
        assert_eq!(begin("R1", 1_000, &today), RefundBegin::Fresh);
        assert!(matches!(begin("R1", 1_000, &today), RefundBegin::Retry(_)));
        assert!(matches!(begin("R1", 999, &today), RefundBegin::Conflict(_)));
        // Pending refunds count against the limit: 1000 + 501 > 1500.
        assert_eq!(
            begin("R2", 501, &today),
            RefundBegin::OverDailyLimit {
                used: Money::from_fen(1_000)
            }
        );
        assert_eq!(begin("R2", 500, &today), RefundBegin::Fresh);
        l.finish_refund(
            "A",
            "R1",
            &RefundOutcome {
                state: RefundState::Succeeded,
                trade_no: Some("T"),
                total_refunded: Some(Money::from_fen(1_000)),
                detail: None,
            },
            None,
        )
        .unwrap();
        assert!(matches!(begin("R1", 1_000, &today), RefundBegin::Replay(_)));
        // A confirmed refund is never downgraded by a later, less certain answer.
        l.finish_refund("A", "R1", &RefundOutcome::state(RefundState::Unknown), None)
            .unwrap();
        l.finish_refund("A", "R1", &RefundOutcome::state(RefundState::Failed), None)
            .unwrap();
        assert!(matches!(begin("R1", 1_000, &today), RefundBegin::Replay(_)));
        l.finish_refund(
            "A",
            "R2",
            &RefundOutcome {
                state: RefundState::Failed,
                trade_no: None,
                total_refunded: None,
                detail: Some("ACQ.X"),
            },
            None,
        )
        .unwrap();
        assert_eq!(
            l.refunded_on("2026-11-25").unwrap(),
            Money::from_fen(1_000),
            "failed refunds do not count"
        );
        assert_eq!(l.refunded_on("2026-11-26").unwrap(), Money::ZERO);
        assert_eq!(
            l.order("A").unwrap().unwrap().refunded_amount,
            Money::from_fen(1_000)
        );
        // A failed refund retried is a new refund for every limit, counted on the day it is retried.
        let tomorrow = limits("2026-11-26");
        assert_eq!(begin("R2", 500, &tomorrow), RefundBegin::Fresh);
        assert_eq!(l.refunded_on("2026-11-26").unwrap(), Money::from_fen(500));
        assert_eq!(l.refunded_on("2026-11-25").unwrap(), Money::from_fen(1_000));
        l.finish_refund("A", "R2", &RefundOutcome::state(RefundState::Failed), None)
            .unwrap();
        assert_eq!(
            begin(
                "R2",
                500,
                &RefundLimits {
                    daily: Some(Money::from_fen(400)),
                    ..tomorrow
                }
            ),
            RefundBegin::OverDailyLimit { used: Money::ZERO }
        );
    }

    #[test]
    fn two_refunds_cannot_together_exceed_what_was_paid() {
        let l = SqliteLedger::in_memory().unwrap();
        l.create_order(&order("A", 10_000)).unwrap();
        let lim = no_daily_limit(10_000);
        assert_eq!(
            l.begin_refund(&refund("A", "R1", 6_000), &lim).unwrap(),
            RefundBegin::Fresh
        );
        // R1 is pending (it may have moved money): R2 may take only the rest.
        assert_eq!(
            l.begin_refund(&refund("A", "R2", 4_001), &lim).unwrap(),
            RefundBegin::OverRemaining {
                refunded: Money::from_fen(6_000)
            }
        );
        assert_eq!(
            l.begin_refund(&refund("A", "R2", 4_000), &lim).unwrap(),
            RefundBegin::Fresh
        );
        // Alipay's own reported total counts too (refunds made elsewhere).
        l.create_order(&order("B", 10_000)).unwrap();
        l.update_status(
            "B",
            &StatusUpdate {
                trade_status: "TRADE_SUCCESS",
                trade_no: None,
                refunded: Some(Money::from_fen(9_000)),
                source: "notify",
            },
        )
        .unwrap();
        assert!(matches!(
            l.begin_refund(&refund("B", "R1", 1_001), &lim).unwrap(),
            RefundBegin::OverRemaining { .. }
        ));
        // Alipay reports 6000 (made elsewhere); our 3000 is still in flight, so it may not be in
        // that figure yet: both count, and only 1000 remains.
        l.create_order(&order("C", 10_000)).unwrap();
        let reported = StatusUpdate {
            trade_status: "TRADE_SUCCESS",
            trade_no: None,
            refunded: Some(Money::from_fen(6_000)),
            source: "query",
        };
        l.update_status("C", &reported).unwrap();
        assert_eq!(
            l.begin_refund(&refund("C", "R1", 3_000), &lim).unwrap(),
            RefundBegin::Fresh
        );
        assert_eq!(
            l.begin_refund(&refund("C", "R2", 1_001), &lim).unwrap(),
            RefundBegin::OverRemaining {
                refunded: Money::from_fen(9_000)
            }
        );
    }

    #[test]
    fn a_refund_notification_settles_its_refund() {
        let l = SqliteLedger::in_memory().unwrap();
        l.create_order(&order("A", 10_000)).unwrap();
        l.update_status(
            "A",
            &StatusUpdate {
                trade_status: "TRADE_SUCCESS",
                trade_no: None,
                refunded: None,
                source: "query",
            },
        )
        .unwrap();
        let lim = no_daily_limit(10_000);
        l.begin_refund(&refund("A", "R1", 6_000), &lim).unwrap();
        // Alipay's notification of R1 arrives before R1's own answer.
        let n = ReceivedNotification {
            notify_id: "N1".into(),
            out_trade_no: "A".into(),
            trade_status: "TRADE_SUCCESS".into(),
            trade_no: None,
            refunded: Some(Money::from_fen(6_000)),
            refund_request_no: Some("R1".into()),
            content: "c".into(),
        };
        assert_eq!(l.apply_notification(&n).unwrap(), NotifyApply::Applied);
        assert_eq!(l.refunds("A").unwrap()[0].state, RefundState::Succeeded);
        // Counted once: 6000 refunded, 4000 remains.
        assert_eq!(
            l.refunded_before("A", "R2").unwrap(),
            Money::from_fen(6_000)
        );
        assert_eq!(
            l.begin_refund(&refund("A", "R2", 4_000), &lim).unwrap(),
            RefundBegin::Fresh
        );
    }

    #[test]
    fn an_outcome_applies_only_while_its_sender_holds_the_refund() {
        let l = SqliteLedger::in_memory().unwrap();
        l.create_order(&order("A", 10_000)).unwrap();
        let lim = no_daily_limit(10_000);
        l.begin_refund(&refund("A", "R1", 100), &lim).unwrap();
        // Another process resends it: the first sender's late "failed" no longer applies.
        let other = NewRefund {
            owner: "other".into(),
            ..refund("A", "R1", 100)
        };
        assert!(matches!(
            l.begin_refund(&other, &lim).unwrap(),
            RefundBegin::Retry(_)
        ));
        let failed = RefundOutcome::state(RefundState::Failed);
        assert_eq!(
            l.finish_refund("A", "R1", &failed, Some("test")).unwrap(),
            Some(RefundState::Pending)
        );
        let unknown = RefundOutcome::state(RefundState::Unknown);
        assert_eq!(
            l.finish_refund("A", "R1", &unknown, Some("other")).unwrap(),
            Some(RefundState::Unknown)
        );
        // Settled once: a reconciliation's stale view changes nothing.
        assert_eq!(
            l.finish_refund("A", "R1", &failed, Some("other")).unwrap(),
            Some(RefundState::Failed)
        );
        assert_eq!(
            l.finish_refund("A", "R1", &unknown, Some("other")).unwrap(),
            Some(RefundState::Failed),
            "failed is settled; only success can follow it"
        );
        // Alipay's verified success applies whoever sent it.
        let succeeded = RefundOutcome::state(RefundState::Succeeded);
        assert_eq!(
            l.finish_refund("A", "R1", &succeeded, Some("test"))
                .unwrap(),
            Some(RefundState::Succeeded)
        );
        assert_eq!(l.finish_refund("A", "R9", &failed, None).unwrap(), None);
    }

    #[test]
    fn unsettled_refunds_carry_their_sender() {
        let l = SqliteLedger::in_memory().unwrap();
        l.create_order(&order("A", 10_000)).unwrap();
        let lim = no_daily_limit(10_000);
        l.begin_refund(&refund("A", "R1", 100), &lim).unwrap();
        let unsettled = l.unsettled_refunds().unwrap();
        assert_eq!(unsettled.len(), 1);
        assert_eq!(unsettled[0].owner.as_deref(), Some("test"));
        // A resend by another process takes the refund over.
        l.begin_refund(
            &NewRefund {
                owner: "other".into(),
                ..refund("A", "R1", 100)
            },
            &lim,
        )
        .unwrap();
        assert_eq!(
            l.unsettled_refunds().unwrap()[0].owner.as_deref(),
            Some("other")
        );
        l.finish_refund(
            "A",
            "R1",
            &RefundOutcome::state(RefundState::Succeeded),
            None,
        )
        .unwrap();
        assert!(l.unsettled_refunds().unwrap().is_empty());
    }

    #[test]
    fn a_ledger_belongs_to_one_app() {
        let l = SqliteLedger::in_memory().unwrap();
        l.claim("prod", "2021000000000001").unwrap();
        l.claim("prod", "2021000000000001").unwrap();
        let e = l.claim("prod", "2021000000000002").unwrap_err();
        assert!(
            e.to_string().contains("prod app 2021000000000001")
                && e.to_string().contains("AP_DATA_DIR"),
            "{e}"
        );
        assert!(l.claim("local", "2021000000000001").is_err());
    }

    #[test]
    fn a_ledger_from_before_environments_had_their_own_is_not_adopted() {
        let l = SqliteLedger::in_memory().unwrap();
        l.create_order(&order("LOCAL_DEMO", 100)).unwrap();
        let e = l.claim("prod", "2021000000000001").unwrap_err();
        assert!(
            e.to_string().contains("earlier version") && e.to_string().contains("move it aside"),
            "{e}"
        );
    }

    #[test]
    fn notifications_dedupe_and_never_move_status_backwards() {
        let l = SqliteLedger::in_memory().unwrap();
        l.create_order(&order("A", 100)).unwrap();
        let n =
            |id: &str, status: &str, content: &str, refunded: Option<i64>| ReceivedNotification {
                notify_id: id.into(),
                out_trade_no: "A".into(),
                trade_status: status.into(),
                trade_no: Some("T".into()),
                refunded: refunded.map(Money::from_fen),
                refund_request_no: None,
                content: content.into(),
            };
        assert_eq!(
            l.apply_notification(&n("N1", "TRADE_SUCCESS", "c1", None))
                .unwrap(),
            NotifyApply::Applied
        );
        assert_eq!(
            l.apply_notification(&n("N1", "TRADE_SUCCESS", "c1", None))
                .unwrap(),
            NotifyApply::Duplicate
        );
        assert_eq!(
            l.apply_notification(&n("N1", "TRADE_SUCCESS", "other", None))
                .unwrap(),
            NotifyApply::ReusedId
        );
        assert_eq!(
            l.apply_notification(&n("N2", "TRADE_CLOSED", "c2", Some(100)))
                .unwrap(),
            NotifyApply::Applied
        );
        assert_eq!(
            l.order("A").unwrap().unwrap().trade_status.as_deref(),
            Some("TRADE_CLOSED")
        );
        assert!(matches!(
            l.apply_notification(&n("N3", "TRADE_SUCCESS", "c3", None))
                .unwrap(),
            NotifyApply::Stale(_)
        ));
        assert_eq!(
            l.order("A").unwrap().unwrap().trade_status.as_deref(),
            Some("TRADE_CLOSED")
        );
        // An older partial-refund notice arriving late is acknowledged, and changes nothing.
        assert_eq!(
            l.apply_notification(&n("N4", "TRADE_SUCCESS", "c4", Some(50)))
                .unwrap(),
            NotifyApply::Applied
        );
        assert_eq!(
            l.order("A").unwrap().unwrap().trade_status.as_deref(),
            Some("TRADE_CLOSED")
        );
        l.reject_notification(Some("N5"), Some("A"), &"x".repeat(10_000))
            .unwrap();
        let all = l.notifications("A").unwrap();
        assert_eq!(all.iter().filter(|n| n.verdict == "accepted").count(), 3);
        assert!(all.last().unwrap().reason.as_ref().unwrap().len() <= MAX_REASON);
    }

    #[test]
    fn lists_filter_by_status_and_day() {
        let l = SqliteLedger::in_memory().unwrap();
        for (i, no) in ["A", "B", "C"].iter().enumerate() {
            l.create_order(&order(no, 100 + i as i64)).unwrap();
        }
        l.update_status(
            "B",
            &StatusUpdate {
                trade_status: "TRADE_SUCCESS",
                trade_no: Some("T"),
                refunded: None,
                source: "query",
            },
        )
        .unwrap();
        let all = l
            .list_orders(&OrderFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 3);
        let paid = l
            .list_orders(&OrderFilter {
                status: Some("TRADE_SUCCESS".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            paid.iter()
                .map(|o| o.out_trade_no.as_str())
                .collect::<Vec<_>>(),
            ["B"]
        );
        let open = l
            .list_orders(&OrderFilter {
                status: Some("NOT_CREATED".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(open.len(), 2);
        let today = &timestamp_now()[..10];
        assert_eq!(
            l.list_orders(&OrderFilter {
                day: Some(today.into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .len(),
            3
        );
        assert!(
            l.list_orders(&OrderFilter {
                day: Some("2000-01-01".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .is_empty()
        );
        assert!(
            !l.update_status(
                "B",
                &StatusUpdate {
                    trade_status: "TRADE_SUCCESS",
                    trade_no: Some("T"),
                    refunded: None,
                    source: "query"
                }
            )
            .unwrap(),
            "unchanged status is not rewritten"
        );
    }
}
