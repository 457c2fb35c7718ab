//! The SQLite ledger runs the conformance suite on a temporary file, and its own tests: migration
//! of the previous release's files, refusals, and races on opening.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;

use super::SqliteLedger;
use crate::domain::{AppScope, Env};
use crate::ledger::conformance::{
    APP, Backend, Corruption, OTHER_APP, Store, no, order, refund, req, scope,
};
use crate::ledger::*;

/// A directory of its own under the system's temporary one, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sqlite-ledger-{}-{test}-{}-{:08x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("ledger.db")
    }

    fn instances(&self) -> PathBuf {
        self.0.join("instances")
    }

    async fn open(&self, scope: &AppScope) -> Result<SqliteLedger, LedgerError> {
        SqliteLedger::open(&self.db(), scope.clone(), &self.instances()).await
    }

    /// A plain connection, as another program (or the previous release) would have.
    fn raw(&self) -> Connection {
        let conn = Connection::open(self.db()).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Sqlite;

#[async_trait]
impl Backend for Sqlite {
    async fn fresh(&self, test: &str) -> Box<dyn Store> {
        Box::new(TempDir::new(test))
    }
}

#[async_trait]
impl Store for TempDir {
    async fn open(&self, scope: &AppScope) -> Box<dyn Ledger> {
        Box::new(Self::open(self, scope).await.unwrap())
    }

    async fn open_waiting(&self, scope: &AppScope, wait: Duration) -> Box<dyn Ledger> {
        Box::new(
            Self::open(self, scope)
                .await
                .unwrap()
                .with_order_lock_wait(wait),
        )
    }

    async fn open_outbox(&self, scope: &AppScope, targets: &[TargetKind]) -> Box<dyn Ledger> {
        Box::new(Self::open(self, scope).await.unwrap().with_outbox(targets))
    }

    async fn audit_rows(&self, scope: &AppScope) -> Vec<String> {
        let conn = self.raw();
        let mut rows = conn
            .prepare(
                "SELECT at || ' | ' || tool || ' | ' || decision || ' | ' || outcome || ' | ' || arguments
                 FROM audit WHERE app_id = ?1 AND env = ?2 ORDER BY id",
            )
            .unwrap();
        rows.query_map(rusqlite::params![scope.app_id, scope.env.as_str()], |r| {
            r.get(0)
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    async fn corrupt(&self, scope: &AppScope, what: &Corruption) {
        let (set, no, req) = match what {
            Corruption::OrderKind(n) => ("orders SET kind = 'desktop'", n, None),
            Corruption::OrderAmount(n) => ("orders SET amount_fen = 0", n, None),
            Corruption::OrderRefunded(n) => ("orders SET refunded_fen = -1", n, None),
            Corruption::RefundState(n, r) => ("refunds SET state = 'refunded'", n, Some(r)),
            Corruption::RefundAmount(n, r) => ("refunds SET amount_fen = 'ten'", n, Some(r)),
        };
        let which = "app_id = ?1 AND env = ?2 AND out_trade_no = ?3";
        let (app, env) = (&scope.app_id, scope.env.as_str());
        let conn = self.raw();
        let changed = match req {
            None => conn.execute(
                &format!("UPDATE {set} WHERE {which}"),
                rusqlite::params![app, env, no.as_str()],
            ),
            Some(r) => conn.execute(
                &format!("UPDATE {set} WHERE {which} AND out_request_no = ?4"),
                rusqlite::params![app, env, no.as_str(), r.as_str()],
            ),
        }
        .unwrap();
        assert_eq!(changed, 1, "{what:?}");
    }
}

/// The suite: `ledger::sqlite::tests::conformance::<case>`.
mod conformance {
    crate::ledger::conformance::conformance_tests!(super::Sqlite);
}

/// The previous release's schema, verbatim.
const V0_SCHEMA: &str = "
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

/// Rows as the previous release wrote them: two orders (B newer, same second), a confirmed and a
/// pending refund of A, notifications, a status event and an audit row.
const V0_ROWS: &str = "
INSERT INTO orders VALUES ('A', 'webPage', 10000, '插画', 'https://a', '2026-11-25 10:00:00',
    'TRADE_SUCCESS', 'T1', 'notify', '2026-11-25 10:01:00', 3000);
INSERT INTO orders VALUES ('B', 'qrCode', 500, 'b', 'https://b', '2026-11-25 10:00:00',
    NULL, NULL, NULL, NULL, 0);
INSERT INTO status_events VALUES (1, 'A', 'TRADE_SUCCESS', 'notify', '2026-11-25 10:01:00');
INSERT INTO refunds VALUES ('A', 'R1', 3000, 'broken', 'succeeded', 'T1', 3000, '2026-11-25',
    '2026-11-25 11:00:00', '2026-11-25 11:00:05', NULL, '00000000000000aa');
INSERT INTO refunds VALUES ('A', 'R2', 2000, NULL, 'pending', NULL, NULL, '2026-11-25',
    '2026-11-25 12:00:00', '2026-11-25 12:00:00', NULL, '00000000000000bb');
INSERT INTO notifications VALUES (1, 'N1', 'A', 'TRADE_SUCCESS', 'accepted', NULL, 'c1',
    '2026-11-25 10:01:00');
INSERT INTO notifications VALUES (2, 'N2', 'A', NULL, 'rejected', 'bad sign', NULL,
    '2026-11-25 10:02:00');
INSERT INTO audit VALUES (1, '2026-11-25 11:00:00', 'refund', '{}', 'allowed', 'succeeded');
";

const OWNER: &str = "prod app 2021000000000001";

/// A file as the previous release left it (WAL, as it opened it), with `owner` if given.
fn v0_file(dir: &TempDir, schema: &str, rows: &str, owner: Option<&str>) {
    let conn = dir.raw();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(schema).unwrap();
    conn.execute_batch(rows).unwrap();
    if let Some(owner) = owner {
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('owner', ?1)",
            [owner],
        )
        .unwrap();
    }
}

fn user_version(dir: &TempDir) -> i64 {
    dir.raw()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn count(dir: &TempDir, table: &str) -> i64 {
    dir.raw()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn meta(dir: &TempDir, key: &str) -> Option<String> {
    use rusqlite::OptionalExtension as _;
    dir.raw()
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .unwrap()
}

fn limits() -> RefundLimits {
    RefundLimits {
        daily: None,
        day: "2026-11-25".into(),
        paid: Money::from_fen(10_000),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v0_ledger_becomes_its_owners_and_keeps_every_row() {
    let dir = TempDir::new("v0_owner");
    v0_file(&dir, V0_SCHEMA, V0_ROWS, Some(OWNER));
    let l = dir.open(&scope(APP)).await.unwrap();
    assert_eq!(user_version(&dir), super::schema::VERSION);
    assert_eq!(meta(&dir, "env").as_deref(), Some("prod"));
    assert_eq!(
        meta(&dir, "owner"),
        None,
        "the previous release refuses it now"
    );
    assert_eq!(meta(&dir, "v0_owner").as_deref(), Some(OWNER));

    let a = l.order(&no("A")).await.unwrap().unwrap();
    assert_eq!(
        a,
        OrderRecord {
            out_trade_no: no("A"),
            kind: OrderKind::WebPage,
            total_amount: Amount::from_fen(10_000).unwrap(),
            title: "插画".into(),
            link: "https://a".into(),
            created_at: "2026-11-25 10:00:00".into(),
            trade_status: Some(TradeStatus::TradeSuccess),
            trade_no: Some("T1".into()),
            status_source: Some(StatusSource::Notify),
            status_at: Some("2026-11-25 10:01:00".into()),
            expires_at: None,
            refunded_amount: Money::from_fen(3_000),
            // Paid before payment times were kept: when it was learned paid.
            paid_at: Some("2026-11-25 10:01:00".into()),
        }
    );
    let listed = l
        .list_orders(&OrderFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let numbers: Vec<_> = listed.iter().map(|o| o.out_trade_no.as_str()).collect();
    assert_eq!(
        numbers,
        ["B", "A"],
        "row order kept (same second: newest row first)"
    );
    assert_eq!(listed[0].kind, OrderKind::QrCode);

    let refunds = l.refunds(&no("A")).await.unwrap();
    assert_eq!(refunds.len(), 2);
    let r1 = &refunds[0];
    assert_eq!(
        (r1.state, r1.reason.as_deref(), r1.trade_no.as_deref()),
        (RefundState::Succeeded, Some("broken"), Some("T1"))
    );
    assert_eq!(r1.total_refunded, Some(Money::from_fen(3_000)));
    assert_eq!(
        (
            r1.day.as_str(),
            r1.created_at.as_str(),
            r1.updated_at.as_str()
        ),
        ("2026-11-25", "2026-11-25 11:00:00", "2026-11-25 11:00:05")
    );
    assert_eq!(r1.owner, Some(InstanceId("00000000000000aa".into())));
    let unsettled = l.unsettled_refunds().await.unwrap();
    assert_eq!(unsettled.len(), 1);
    assert_eq!(
        unsettled[0].owner,
        Some(InstanceId("00000000000000bb".into()))
    );
    // The old rows count for every rule: 3000 confirmed (= reported) + 2000 in flight.
    assert_eq!(
        l.refunded_besides(&no("A"), &req("R9")).await.unwrap(),
        Money::from_fen(5_000)
    );
    assert!(matches!(
        l.begin_refund(&refund("A", "R3", 5_001), &limits())
            .await
            .unwrap(),
        RefundBegin::Over(_)
    ));
    assert!(matches!(
        l.begin_refund(&refund("A", "R2", 2_000), &limits())
            .await
            .unwrap(),
        RefundBegin::Retry(_)
    ));
    assert_eq!(
        l.refunded_on_day("2026-11-25").await.unwrap(),
        Money::from_fen(5_000)
    );

    let notes = l.notifications(&no("A")).await.unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[1].reason.as_deref(), Some("bad sign"));
    let again = ReceivedNotification {
        notify_id: "N1".into(),
        out_trade_no: no("A"),
        trade_status: TradeStatus::TradeSuccess,
        trade_no: None,
        refunded: None,
        refund_request_no: None,
        content: "c1".into(),
        seen_at: None,
        paid_at: None,
        raw: RawForm {
            content_type: "application/x-www-form-urlencoded".into(),
            body: b"notify".to_vec(),
        },
    };
    assert_eq!(
        l.apply_notification(&again).await.unwrap(),
        NotifyApply::Duplicate
    );
    for table in ["status_events", "audit"] {
        let app: String = dir
            .raw()
            .query_row(
                &format!("SELECT app_id || ' ' || env FROM {table}"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(app, format!("{APP} prod"), "{table}");
    }
    drop(l);
    // Opened again: already migrated, nothing changes.
    let l = dir.open(&scope(APP)).await.unwrap();
    assert_eq!(l.refunds(&no("A")).await.unwrap().len(), 2);
    assert_eq!(count(&dir, "orders"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_app_opens_a_v0_ledger_and_sees_none_of_its_rows() {
    let dir = TempDir::new("v0_other_app");
    v0_file(&dir, V0_SCHEMA, V0_ROWS, Some(OWNER));
    let other = dir.open(&scope(OTHER_APP)).await.unwrap();
    assert_eq!(user_version(&dir), super::schema::VERSION);
    assert_eq!(other.order(&no("A")).await.unwrap(), None);
    assert!(other.refunds(&no("A")).await.unwrap().is_empty());
    assert!(other.unsettled_refunds().await.unwrap().is_empty());
    assert!(other.notifications(&no("A")).await.unwrap().is_empty());
    assert_eq!(
        other.refunded_on_day("2026-11-25").await.unwrap(),
        Money::ZERO
    );
    let all = OrderFilter {
        limit: 10,
        ..Default::default()
    };
    assert!(other.list_orders(&all).await.unwrap().is_empty());
    assert!(matches!(
        other.create_order(&order("A", 100)).await.unwrap(),
        CreateOrder::Created(_)
    ));
    // The rows stay the old owner's.
    let owner = dir.open(&scope(APP)).await.unwrap();
    assert_eq!(
        owner
            .order(&no("A"))
            .await
            .unwrap()
            .unwrap()
            .total_amount
            .fen(),
        10_000
    );
    assert_eq!(owner.list_orders(&all).await.unwrap().len(), 2);
    assert_eq!(count(&dir, "orders"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_ledger_without_refund_senders_migrates() {
    let dir = TempDir::new("v0_oldest");
    let oldest = V0_SCHEMA.replace(
        "    detail         TEXT,\n    owner          TEXT,",
        "    detail         TEXT,",
    );
    assert_ne!(oldest, V0_SCHEMA);
    let rows = V0_ROWS
        .replace(", NULL, '00000000000000aa');", ", NULL);")
        .replace(", NULL, '00000000000000bb');", ", NULL);");
    v0_file(&dir, &oldest, &rows, Some(OWNER));
    let l = dir.open(&scope(APP)).await.unwrap();
    let refunds = l.refunds(&no("A")).await.unwrap();
    assert_eq!(refunds.len(), 2);
    assert!(refunds.iter().all(|r| r.owner.is_none()));
    assert_eq!(refunds[1].state, RefundState::Pending);
}

const LEGACY: &str = "order ledger: this ledger was written by an earlier version that kept every environment (local mode too) in one file, so it cannot be trusted as the ledger of prod app 2021000000000001; move it aside (rename ledger.db, ledger.db-wal and ledger.db-shm in AP_DATA_DIR; it stays readable) or set another AP_DATA_DIR";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_from_before_environments_had_their_own_is_not_adopted() {
    let dir = TempDir::new("v0_no_owner");
    v0_file(&dir, V0_SCHEMA, V0_ROWS, None);
    for app in [APP, APP, OTHER_APP] {
        let e = dir.open(&scope(app)).await.err().expect("refused");
        assert_eq!(e.kind, LedgerErrorKind::Refused);
        assert!(
            e.to_string().contains("earlier version") && e.to_string().contains("move it aside"),
            "{e}"
        );
        if app == APP {
            assert_eq!(e.to_string(), LEGACY);
        }
    }
    // Only refunds, no orders: refused too.
    let dir2 = TempDir::new("v0_no_owner_refunds");
    let refunds_only: String = V0_ROWS
        .split(";\n")
        .filter(|s| s.contains("INSERT INTO refunds"))
        .map(|s| format!("{s};\n"))
        .collect();
    v0_file(&dir2, V0_SCHEMA, &refunds_only, None);
    assert_eq!(
        dir2.open(&scope(APP)).await.err().unwrap().to_string(),
        LEGACY
    );
    // Left as it was: readable by whoever moves it aside.
    assert_eq!(user_version(&dir), 0);
    assert_eq!(count(&dir, "orders"), 2);
    assert_eq!(count(&dir, "refunds"), 2);
    assert_eq!(meta(&dir, "env"), None);
    let columns: i64 = dir
        .raw()
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('orders') WHERE name = 'app_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(columns, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_v0_ledger_is_upgraded_and_adopted() {
    let dir = TempDir::new("v0_empty");
    // The previous release's file with nothing but a notification refused and an audit row.
    let rows: String = V0_ROWS
        .split(";\n")
        .filter(|s| s.contains("INSERT INTO audit") || s.contains("'rejected'"))
        .map(|s| format!("{s};\n"))
        .collect();
    v0_file(&dir, V0_SCHEMA, &rows, None);
    let l = dir.open(&scope(OTHER_APP)).await.unwrap();
    assert_eq!(user_version(&dir), super::schema::VERSION);
    assert_eq!(meta(&dir, "env").as_deref(), Some("prod"));
    assert_eq!(
        l.notifications(&no("A")).await.unwrap().len(),
        1,
        "adopted by its first opener"
    );
    assert!(matches!(
        l.create_order(&order("A", 100)).await.unwrap(),
        CreateOrder::Created(_)
    ));
    // A brand-new file is created at the current version.
    let fresh = TempDir::new("fresh");
    let l = fresh.open(&scope(APP)).await.unwrap();
    assert_eq!(user_version(&fresh), super::schema::VERSION);
    assert!(l.order(&no("A")).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_environment_has_its_own_file() {
    let dir = TempDir::new("env");
    let prod = dir.open(&scope(APP)).await.unwrap();
    prod.create_order(&order("A", 100)).await.unwrap();
    let sandbox = AppScope {
        env: Env::Sandbox,
        app_id: APP.into(),
    };
    for other in [
        sandbox.clone(),
        AppScope {
            env: Env::Local,
            ..sandbox.clone()
        },
    ] {
        let e = dir.open(&other).await.err().expect("refused");
        assert_eq!(e.kind, LedgerErrorKind::Refused);
        let text = e.to_string();
        assert!(
            text.contains("prod")
                && text.contains(other.env.as_str())
                && text.contains("AP_DATA_DIR"),
            "{text}"
        );
        assert!(
            text.contains("each environment has its own file under AP_DATA_DIR"),
            "{text}"
        );
    }
    // The same app again, and a second app of the same environment, are welcome.
    dir.open(&scope(APP)).await.unwrap();
    dir.open(&scope(OTHER_APP)).await.unwrap();
    // A previous release's file of another environment is refused, and left as it was.
    let old = TempDir::new("env_v0");
    v0_file(
        &old,
        V0_SCHEMA,
        V0_ROWS,
        Some("sandbox app 2021000000000001"),
    );
    let e = old.open(&scope(APP)).await.err().expect("refused");
    assert_eq!(e.kind, LedgerErrorKind::Refused);
    assert!(
        e.to_string().contains("sandbox") && e.to_string().contains("prod"),
        "{e}"
    );
    assert_eq!(user_version(&old), 0);
    assert_eq!(
        meta(&old, "owner").as_deref(),
        Some("sandbox app 2021000000000001")
    );
    let l = old.open(&sandbox).await.unwrap();
    assert_eq!(l.refunds(&no("A")).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_opening_a_v0_ledger_at_once_migrate_it_once() {
    for i in 0..12 {
        let dir = std::sync::Arc::new(TempDir::new(&format!("v0_race{i}")));
        v0_file(&dir, V0_SCHEMA, V0_ROWS, Some(OWNER));
        let opens: Vec<_> = (0..4)
            .map(|t| {
                let dir = dir.clone();
                let app = if t % 2 == 0 { APP } else { OTHER_APP };
                tokio::spawn(async move { dir.open(&scope(app)).await })
            })
            .collect();
        let mut handles = Vec::new();
        for open in opens {
            handles.push(open.await.unwrap().expect("every opener succeeds"));
        }
        assert_eq!(user_version(&dir), super::schema::VERSION);
        for (table, rows) in [
            ("orders", 2),
            ("refunds", 2),
            ("notifications", 2),
            ("audit", 1),
        ] {
            assert_eq!(count(&dir, table), rows, "{table} copied once");
        }
        assert_eq!(handles[0].refunds(&no("A")).await.unwrap().len(), 2);
        assert!(handles[1].refunds(&no("A")).await.unwrap().is_empty());
    }
    // And on a new file.
    for i in 0..12 {
        let dir = std::sync::Arc::new(TempDir::new(&format!("new_race{i}")));
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.clone();
                tokio::spawn(async move { dir.open(&scope(APP)).await })
            })
            .collect();
        for open in opens {
            open.await.unwrap().expect("every opener succeeds");
        }
        assert_eq!(user_version(&dir), super::schema::VERSION);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_no_ledger_of_this_version_are_refused() {
    let newer = TempDir::new("newer");
    drop(newer.open(&scope(APP)).await.unwrap());
    newer
        .raw()
        .execute_batch(&format!(
            "PRAGMA user_version = {}",
            super::schema::VERSION + 1
        ))
        .unwrap();
    let e = newer.open(&scope(APP)).await.err().expect("refused");
    assert_eq!(e.kind, LedgerErrorKind::Refused, "{e}");
    assert!(
        e.to_string()
            .contains(&format!("schema version {}", super::schema::VERSION + 1)),
        "{e}"
    );

    let foreign = TempDir::new("foreign");
    foreign
        .raw()
        .execute_batch("CREATE TABLE invoices (id INTEGER)")
        .unwrap();
    let e = foreign.open(&scope(APP)).await.err().expect("refused");
    assert_eq!(e.kind, LedgerErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("invoices"), "{e}");

    let garbage = TempDir::new("garbage");
    std::fs::write(garbage.db(), vec![0x5a; 8192]).unwrap();
    let e = garbage.open(&scope(APP)).await.err().expect("refused");
    assert_eq!(e.kind, LedgerErrorKind::Refused, "{e}");

    let odd_owner = TempDir::new("odd_owner");
    v0_file(&odd_owner, V0_SCHEMA, V0_ROWS, Some("someone"));
    let e = odd_owner.open(&scope(APP)).await.err().expect("refused");
    assert_eq!(e.kind, LedgerErrorKind::Refused, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_notification_keeps_short_names() {
    let dir = TempDir::new("clip");
    let l = dir.open(&scope(APP)).await.unwrap();
    let long = "n".repeat(1_000);
    l.reject_notification(Some(&long), Some(&long), &"r".repeat(10_000))
        .await
        .unwrap();
    let (id, no, reason): (String, String, String) = dir
        .raw()
        .query_row(
            "SELECT notify_id, out_trade_no, reason FROM notifications",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (id.len(), no.len(), reason.len()),
        (128, 128, super::ops::MAX_REASON)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_holds_its_lock_file_while_it_lives() {
    let dir = TempDir::new("instance");
    let l = dir.open(&scope(APP)).await.unwrap();
    let token = l.instance().as_str().to_string();
    assert_eq!(token.len(), 16);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let file = dir.instances().join(format!("{token}.lock"));
    assert!(file.exists());
    drop(l);
    assert!(!file.exists(), "removed on drop");
    // A lock file nobody holds (its process was killed before removing it) is a dead process's.
    let stale = dir.instances().join("00000000deadbeef.lock");
    std::fs::write(&stale, b"").unwrap();
    let l = dir.open(&scope(APP)).await.unwrap();
    assert!(
        !l.is_alive(&InstanceId("00000000deadbeef".into()))
            .await
            .unwrap()
    );
    assert!(!stale.exists(), "and is removed");
}
