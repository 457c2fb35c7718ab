//! The file's layout and its migrations. `PRAGMA user_version` is the schema version; a migration
//! runs inside one IMMEDIATE transaction, so of two processes opening an old file at once the
//! second waits for the first, then sees its version and does nothing; and a refusal (or a crash)
//! halfway leaves the file exactly as it was.

use rusqlite::{Connection, ErrorCode, OptionalExtension as _, TransactionBehavior, params};

use super::rows::{Fail, Res, fail};
use crate::domain::{AppScope, Env};
use crate::ledger::LedgerErrorKind::Refused;

/// The version this code writes.
pub(super) const VERSION: i64 = 4;

/// Version 1: every row carries the app and environment it belongs to (`meta` is the file's own).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE orders (
    app_id        TEXT NOT NULL,
    env           TEXT NOT NULL,
    out_trade_no  TEXT NOT NULL,
    kind          TEXT NOT NULL,
    amount_fen    INTEGER NOT NULL,
    title         TEXT NOT NULL,
    link          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    trade_status  TEXT,
    trade_no      TEXT,
    status_source TEXT,
    status_at     TEXT,
    refunded_fen  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, out_trade_no)
);
CREATE INDEX orders_by_created ON orders (app_id, env, created_at);
CREATE TABLE status_events (
    id            INTEGER PRIMARY KEY,
    app_id        TEXT NOT NULL,
    env           TEXT NOT NULL,
    out_trade_no  TEXT NOT NULL,
    trade_status  TEXT NOT NULL,
    source        TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX status_events_by_order ON status_events (app_id, env, out_trade_no);
CREATE TABLE refunds (
    app_id         TEXT NOT NULL,
    env            TEXT NOT NULL,
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
    PRIMARY KEY (app_id, out_trade_no, out_request_no)
);
CREATE INDEX refunds_by_day ON refunds (app_id, env, day);
CREATE INDEX refunds_by_state ON refunds (app_id, env, state);
CREATE TABLE notifications (
    id            INTEGER PRIMARY KEY,
    app_id        TEXT NOT NULL,
    env           TEXT NOT NULL,
    notify_id     TEXT,
    out_trade_no  TEXT,
    trade_status  TEXT,
    verdict       TEXT NOT NULL,
    reason        TEXT,
    content       TEXT,
    received_at   TEXT NOT NULL
);
CREATE INDEX notifications_by_id ON notifications (app_id, env, notify_id);
CREATE INDEX notifications_by_order ON notifications (app_id, env, out_trade_no);
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    app_id     TEXT NOT NULL,
    env        TEXT NOT NULL,
    at         TEXT NOT NULL,
    tool       TEXT NOT NULL,
    arguments  TEXT NOT NULL,
    decision   TEXT NOT NULL,
    outcome    TEXT NOT NULL
);
";

/// The tables of a version-0 ledger (the previous release, and the one before it).
const V0_TABLES: [&str; 6] = [
    "orders",
    "status_events",
    "refunds",
    "notifications",
    "audit",
    "meta",
];

/// Copies of every version-0 row into version 1, for one owner (`?1` app, `?2` env). Row ids are
/// kept: they order lists and notifications.
const V0_COPIES: [(&str, &str); 4] = [
    (
        "orders",
        "INSERT INTO orders (rowid, app_id, env, out_trade_no, kind, amount_fen, title, link,
             created_at, trade_status, trade_no, status_source, status_at, refunded_fen)
         SELECT rowid, ?1, ?2, out_trade_no, kind, amount_fen, title, link,
             created_at, trade_status, trade_no, status_source, status_at, refunded_fen
         FROM orders_v0",
    ),
    (
        "status_events",
        "INSERT INTO status_events (id, app_id, env, out_trade_no, trade_status, source, at)
         SELECT id, ?1, ?2, out_trade_no, trade_status, source, at FROM status_events_v0",
    ),
    (
        "notifications",
        "INSERT INTO notifications (id, app_id, env, notify_id, out_trade_no, trade_status,
             verdict, reason, content, received_at)
         SELECT id, ?1, ?2, notify_id, out_trade_no, trade_status, verdict, reason, content,
             received_at
         FROM notifications_v0",
    ),
    (
        "audit",
        "INSERT INTO audit (id, app_id, env, at, tool, arguments, decision, outcome)
         SELECT id, ?1, ?2, at, tool, arguments, decision, outcome FROM audit_v0",
    ),
];

fn env_named(text: &str) -> Option<Env> {
    [Env::Prod, Env::Sandbox, Env::Local]
        .into_iter()
        .find(|e| e.as_str() == text)
}

/// A version-0 table that cannot be copied is not the previous release's (busy or I/O errors keep
/// their kind: nothing changed, the next open tries again).
fn not_as_written(e: rusqlite::Error, table: &str) -> Fail {
    match e.sqlite_error_code() {
        Some(ErrorCode::Unknown) | None => fail(
            Refused,
            format!(
                "this ledger's table {table} is not as an earlier version of this server wrote it ({e}); move it aside or set another AP_DATA_DIR"
            ),
        ),
        Some(_) => e.into(),
    }
}

/// Bring the file to [`VERSION`] and check it is `scope`'s environment's.
pub(super) fn migrate(conn: &mut Connection, scope: &AppScope) -> Res<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    match version {
        VERSION => {}
        0 => {
            upgrade_v0(&tx, scope)?;
            upgrade_v1(&tx)?;
            upgrade_v2(&tx)?;
            upgrade_v3(&tx)?;
        }
        1 => {
            upgrade_v1(&tx)?;
            upgrade_v2(&tx)?;
            upgrade_v3(&tx)?;
        }
        2 => {
            upgrade_v2(&tx)?;
            upgrade_v3(&tx)?;
        }
        3 => upgrade_v3(&tx)?,
        other => {
            return Err(fail(
                Refused,
                format!(
                    "this ledger has schema version {other}, which this server does not know (it writes {VERSION}): it was written by a newer version, or is no ledger of this server"
                ),
            ));
        }
    }
    let env: Option<String> = tx
        .query_row("SELECT value FROM meta WHERE key = 'env'", [], |r| r.get(0))
        .optional()?;
    match env {
        Some(env) if env == scope.env.as_str() => {}
        Some(env) => {
            return Err(fail(
                Refused,
                format!(
                    "this ledger holds the {env} environment's orders, so it cannot be opened for {scope} ({} environment); each environment has its own file under AP_DATA_DIR, and orders of two environments must never mix",
                    scope.env.as_str()
                ),
            ));
        }
        None => {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('env', ?1)",
                [scope.env.as_str()],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A new file, or one the previous release wrote: its rows become its owner's.
fn upgrade_v0(tx: &Connection, scope: &AppScope) -> Res<()> {
    let mut stmt = tx.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?;
    let tables = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    drop(stmt);
    if let Some(foreign) = tables.iter().find(|t| !V0_TABLES.contains(&t.as_str())) {
        return Err(fail(
            Refused,
            format!(
                "this file is no order ledger of this server (it has a table {foreign:?}); set another AP_DATA_DIR"
            ),
        ));
    }
    let has = |table: &str| tables.iter().any(|t| t == table);
    let owner: Option<String> = if has("meta") {
        tx.query_row("SELECT value FROM meta WHERE key = 'owner'", [], |r| {
            r.get(0)
        })
        .optional()?
    } else {
        None
    };
    let (env, app_id) = match &owner {
        Some(owner) => owner
            .split_once(" app ")
            .and_then(|(env, app)| Some((env_named(env)?, app)))
            .filter(|(_, app)| !app.is_empty())
            .map(|(env, app)| (env, app.to_string()))
            .ok_or_else(|| {
                fail(
                    Refused,
                    format!(
                        "this ledger names its owner {owner:?}, which is no app of this server"
                    ),
                )
            })?,
        None => {
            let mut used = false;
            for t in ["orders", "refunds"].into_iter().filter(|t| has(t)) {
                used |= tx
                    .prepare(&format!("SELECT 1 FROM {t} LIMIT 1"))?
                    .exists([])?;
            }
            if used {
                // Earlier versions kept every environment (local mode too) in one ledger.db:
                // adopting one could replay a local-mode refund as a real one.
                return Err(fail(
                    Refused,
                    format!(
                        "this ledger was written by an earlier version that kept every environment (local mode too) in one file, so it cannot be trusted as the ledger of {scope}; move it aside (rename ledger.db, ledger.db-wal and ledger.db-shm in AP_DATA_DIR; it stays readable) or set another AP_DATA_DIR"
                    ),
                ));
            }
            // Empty: adopted by whoever opens it first, as the previous release did.
            (scope.env, scope.app_id.clone())
        }
    };
    let old: Vec<&str> = V0_TABLES[..5].iter().copied().filter(|t| has(t)).collect();
    for t in &old {
        tx.execute_batch(&format!("ALTER TABLE {t} RENAME TO {t}_v0"))?;
    }
    tx.execute_batch(SCHEMA)?;
    for (table, copy) in V0_COPIES {
        if old.contains(&table) {
            tx.execute(copy, params![app_id, env.as_str()])
                .map_err(|e| not_as_written(e, table))?;
        }
    }
    if old.contains(&"refunds") {
        // The release before the previous one did not record a refund's sender.
        let has_owner = tx
            .prepare("SELECT 1 FROM pragma_table_info('refunds_v0') WHERE name = 'owner'")?
            .exists([])?;
        let owner = if has_owner { "owner" } else { "NULL" };
        tx.execute(
            &format!(
                "INSERT INTO refunds (rowid, app_id, env, out_trade_no, out_request_no, amount_fen,
                     reason, state, trade_no, total_refunded_fen, day, created_at, updated_at,
                     detail, owner)
                 SELECT rowid, ?1, ?2, out_trade_no, out_request_no, amount_fen, reason, state,
                     trade_no, total_refunded_fen, day, created_at, updated_at, detail, {owner}
                 FROM refunds_v0"
            ),
            params![app_id, env.as_str()],
        )
        .map_err(|e| not_as_written(e, "refunds"))?;
    }
    for t in &old {
        tx.execute_batch(&format!("DROP TABLE {t}_v0"))?;
    }
    // The file no longer belongs to one app; the previous release, which would read every app's
    // rows as its own, now refuses it (it has orders and no owner). The old owner stays on record.
    if let Some(owner) = &owner {
        tx.execute("DELETE FROM meta WHERE key = 'owner'", [])?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('v0_owner', ?1)",
            [owner],
        )?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('env', ?1)",
        [env.as_str()],
    )?;
    tx.execute_batch("PRAGMA user_version = 1")?;
    Ok(())
}

/// Version 3: refunds may wait for a person's approval on a page; the page's record (its token only
/// as a hash).
fn upgrade_v2(tx: &Connection) -> Res<()> {
    tx.execute_batch(
        "CREATE TABLE approvals (
             app_id        TEXT NOT NULL,
             env           TEXT NOT NULL,
             token_hash    TEXT PRIMARY KEY,
             out_trade_no  TEXT NOT NULL,
             out_request_no TEXT NOT NULL,
             csrf          TEXT NOT NULL,
             paid_fen      INTEGER NOT NULL,
             refunded_fen  INTEGER NOT NULL,
             expires_at    TEXT NOT NULL,
             status        TEXT NOT NULL,
             created_at    TEXT NOT NULL,
             decided_at    TEXT
         );
         CREATE INDEX approvals_by_refund ON approvals (app_id, env, out_trade_no, out_request_no);
         CREATE INDEX approvals_by_status ON approvals (app_id, env, status);
         PRAGMA user_version = 3;",
    )?;
    Ok(())
}

/// Version 4: the outbox. An event is unique per order, kind and subject (the refund's number, the
/// notification's id, or empty), so recording it twice records it once; a delivery is one event
/// to one target, leased to one sender at a time; every attempt is kept.
fn upgrade_v3(tx: &Connection) -> Res<()> {
    tx.execute_batch(
        "ALTER TABLE orders ADD COLUMN paid_at TEXT;
         ALTER TABLE refunds ADD COLUMN succeeded_at TEXT;
         -- Orders and refunds settled before these were kept: the best word there is.
         UPDATE orders SET paid_at = status_at
             WHERE trade_status IN ('TRADE_SUCCESS', 'TRADE_FINISHED');
         UPDATE refunds SET succeeded_at = updated_at WHERE state = 'succeeded';
         CREATE TABLE events (
             id            TEXT PRIMARY KEY,
             app_id        TEXT NOT NULL,
             env           TEXT NOT NULL,
             out_trade_no  TEXT NOT NULL,
             kind          TEXT NOT NULL,
             subject       TEXT NOT NULL,
             data          TEXT NOT NULL,
             raw_type      TEXT,
             raw_body      BLOB,
             created_ms    INTEGER NOT NULL,
             UNIQUE (app_id, env, out_trade_no, kind, subject)
         );
         CREATE TABLE deliveries (
             event_id      TEXT NOT NULL REFERENCES events (id),
             target        TEXT NOT NULL,
             app_id        TEXT NOT NULL,
             env           TEXT NOT NULL,
             state         TEXT NOT NULL,
             attempts      INTEGER NOT NULL DEFAULT 0,
             next_ms       INTEGER NOT NULL,
             lease_until   INTEGER,
             lease_owner   TEXT,
             last_error    TEXT,
             delivered_at  TEXT,
             PRIMARY KEY (event_id, target)
         );
         CREATE INDEX deliveries_due ON deliveries (app_id, env, state, next_ms);
         CREATE TABLE delivery_attempts (
             id            INTEGER PRIMARY KEY,
             event_id      TEXT NOT NULL,
             target        TEXT NOT NULL,
             at            TEXT NOT NULL,
             ok            INTEGER NOT NULL,
             http_status   INTEGER,
             detail        TEXT NOT NULL
         );
         CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (event_id, target);
         PRAGMA user_version = 4;",
    )?;
    Ok(())
}

/// Version 2: every order expires (`time_expire`); orders made before have no expiry on record.
fn upgrade_v1(tx: &Connection) -> Res<()> {
    tx.execute_batch("ALTER TABLE orders ADD COLUMN expires_at TEXT; PRAGMA user_version = 2")?;
    Ok(())
}
