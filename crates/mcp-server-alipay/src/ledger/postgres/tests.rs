//! The PostgreSQL ledger runs the conformance suite, each case in a schema of its own on the
//! database `AP_TEST_DATABASE_URL` names (so cases run in parallel on one server); and its own
//! tests: migration races and refusals, the lease and the order lock across handles and lost
//! connections, changes heard across handles, notifications racing.
//!
//! Without `AP_TEST_DATABASE_URL` each test says `skipped: …` on stderr and passes, except in CI
//! (`CI=true`), where it fails: CI must not skip them silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_postgres::Client;

use super::conn::Connector;
use super::liveness::OrderLocks;
use super::{Cx, PostgresLedger, PostgresOptions};
use crate::domain::{AppScope, Env};
use crate::ledger::conformance::{
    APP, Backend, Corruption, OTHER_APP, Store, audited_order, no, no_daily_limit, order, refund,
    scope, status,
};
use crate::ledger::*;

const URL_VAR: &str = "AP_TEST_DATABASE_URL";
/// The roots that verify the test database's certificate, for a URL with `sslmode=require`.
const CA_VAR: &str = "AP_TEST_DATABASE_CA_FILE";

fn ca_file() -> Option<std::path::PathBuf> {
    std::env::var_os(CA_VAR)
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

/// The test database's connection string; `None` (said on stderr) when there is none, except
/// in CI, which fails instead.
fn database() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{URL_VAR} is not set, and CI must not skip the PostgreSQL ledger's tests"
            );
            eprintln!("skipped: {URL_VAR} is not set");
            None
        }
    }
}

struct Postgres {
    url: String,
}

fn backend() -> Option<Postgres> {
    database().map(|url| Postgres { url })
}

/// A plain client on the test database (its `search_path` the schema, if given).
async fn admin(url: &str, schema: Option<&str>) -> Client {
    let options = PostgresOptions {
        url: url.to_string(),
        ca_file: ca_file(),
        schema: schema.map(str::to_string),
        ..Default::default()
    };
    Connector::new(&options).unwrap().plain().await.unwrap()
}

/// A schema of its own on the test database, dropped with everything in it when dropped.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    /// A new name (the schema is not created: the first handle's connect does that).
    fn named(url: &str, test: &str) -> Self {
        let test: String = test
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .take(40)
            .collect();
        Self {
            url: url.to_string(),
            name: format!("t_{test}_{:08x}", rand::random::<u32>()),
        }
    }

    /// A new, empty schema.
    async fn new(url: &str, test: &str) -> Self {
        let schema = Self::named(url, test);
        admin(url, None)
            .await
            .batch_execute(&format!("CREATE SCHEMA {}", schema.name))
            .await
            .unwrap();
        schema
    }

    fn options(&self) -> PostgresOptions {
        PostgresOptions {
            url: self.url.clone(),
            ca_file: ca_file(),
            schema: Some(self.name.clone()),
            ..Default::default()
        }
    }

    async fn connect(&self, scope: &AppScope) -> Result<PostgresLedger, LedgerError> {
        PostgresLedger::connect(&self.options(), scope.clone()).await
    }

    /// A plain client in the schema, as another program would have.
    async fn sql(&self) -> Client {
        admin(&self.url, Some(&self.name)).await
    }

    fn cx(&self, scope: &AppScope) -> Cx {
        Cx {
            scope: scope.clone(),
            schema: self.name.clone(),
            channel: super::listen::channel(&self.name, scope),
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // On a runtime of its own: this one may be ending.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let options = PostgresOptions {
                    url,
                    ca_file: ca_file(),
                    schema: None,
                    ..Default::default()
                };
                let client = Connector::new(&options).ok()?.plain().await.ok()?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

#[async_trait]
impl Backend for Postgres {
    async fn fresh(&self, test: &str) -> Box<dyn Store> {
        Box::new(Schema::new(&self.url, test).await)
    }
}

#[async_trait]
impl Store for Schema {
    async fn open(&self, scope: &AppScope) -> Box<dyn Ledger> {
        Box::new(self.connect(scope).await.unwrap())
    }

    async fn open_waiting(&self, scope: &AppScope, wait: Duration) -> Box<dyn Ledger> {
        Box::new(
            self.connect(scope)
                .await
                .unwrap()
                .with_order_lock_wait(wait),
        )
    }

    async fn open_outbox(&self, scope: &AppScope, targets: &[TargetKind]) -> Box<dyn Ledger> {
        Box::new(self.connect(scope).await.unwrap().with_outbox(targets))
    }

    async fn audit_rows(&self, scope: &AppScope) -> Vec<String> {
        let client = self.sql().await;
        client
            .query(
                "SELECT at || ' | ' || tool || ' | ' || decision || ' | ' || outcome || ' | ' || arguments
                 FROM audit WHERE app_id = $1 AND env = $2 ORDER BY id",
                &[&scope.app_id.as_str(), &scope.env.as_str()],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    async fn corrupt(&self, scope: &AppScope, what: &Corruption) {
        let (set, no, req) = match what {
            Corruption::OrderKind(n) => ("orders SET kind = 'desktop'", n, None),
            Corruption::OrderAmount(n) => ("orders SET amount_fen = 0", n, None),
            Corruption::OrderRefunded(n) => ("orders SET refunded_fen = -1", n, None),
            Corruption::RefundState(n, r) => ("refunds SET state = 'refunded'", n, Some(r)),
            // A bigint column cannot hold text: the nearest a hand edit can do is a number that
            // is no amount.
            Corruption::RefundAmount(n, r) => ("refunds SET amount_fen = -100", n, Some(r)),
        };
        let which = "app_id = $1 AND env = $2 AND out_trade_no = $3";
        let (app, env) = (scope.app_id.as_str(), scope.env.as_str());
        let client = self.sql().await;
        let changed = match req {
            None => {
                client
                    .execute(
                        &format!("UPDATE {set} WHERE {which}"),
                        &[&app, &env, &no.as_str()],
                    )
                    .await
            }
            Some(r) => {
                client
                    .execute(
                        &format!("UPDATE {set} WHERE {which} AND out_request_no = $4"),
                        &[&app, &env, &no.as_str(), &r.as_str()],
                    )
                    .await
            }
        }
        .unwrap();
        assert_eq!(changed, 1, "{what:?}");
    }
}

/// The suite: `ledger::postgres::tests::conformance::<case>`.
mod conformance {
    crate::ledger::conformance::conformance_tests!(match super::backend() {
        Some(backend) => backend,
        None => return,
    });
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_processes_starting_at_once_migrate_once() {
    let Some(url) = database() else { return };
    // On an empty schema, and on one that does not exist yet.
    for fresh in [true, false] {
        let schema = Arc::new(if fresh {
            Schema::new(&url, "migrate_once").await
        } else {
            Schema::named(&url, "migrate_once_new")
        });
        let connects: Vec<_> = (0..8)
            .map(|i| {
                let schema = schema.clone();
                let app = if i % 2 == 0 { APP } else { OTHER_APP };
                tokio::spawn(async move { schema.connect(&scope(app)).await })
            })
            .collect();
        let mut handles = Vec::new();
        for connect in connects {
            handles.push(connect.await.unwrap().expect("every process starts"));
        }
        let sql = schema.sql().await;
        assert_eq!(count(&sql, "SELECT count(*) FROM schema_version").await, 1);
        assert_eq!(
            count(&sql, "SELECT max(version)::bigint FROM schema_version").await,
            i64::from(super::schema::VERSION)
        );
        assert_eq!(count(&sql, "SELECT count(*) FROM meta").await, 1);
        assert_eq!(count(&sql, "SELECT count(*) FROM instances").await, 8);
        // Each its own process.
        let mut ids: Vec<_> = handles.iter().map(|h| h.instance().clone()).collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ids.dedup();
        assert_eq!(ids.len(), 8);
        handles[0].create_order(&order("A", 100)).await.unwrap();
        assert!(handles[2].order(&no("A")).await.unwrap().is_some());
        assert!(handles[1].order(&no("A")).await.unwrap().is_none());
        drop(handles);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_this_version_did_not_write_are_refused() {
    let Some(url) = database() else { return };
    let schema = Schema::new(&url, "refused").await;
    let first = schema.connect(&scope(APP)).await.unwrap();
    first.create_order(&order("A", 100)).await.unwrap();
    let sql = schema.sql().await;
    // Written by a newer version.
    let newer = super::schema::VERSION + 1;
    sql.batch_execute(&format!(
        "INSERT INTO schema_version (version) VALUES ({newer})"
    ))
    .await
    .unwrap();
    let e = schema.connect(&scope(APP)).await.err().expect("refused");
    assert_eq!(e.kind, LedgerErrorKind::Refused, "{e}");
    assert!(
        e.to_string().contains(&format!("schema version {newer}")),
        "{e}"
    );
    sql.batch_execute(&format!(
        "DELETE FROM schema_version WHERE version = {newer}"
    ))
    .await
    .unwrap();
    // Another environment's.
    for env in [Env::Sandbox, Env::Local] {
        let other = AppScope {
            env,
            app_id: APP.into(),
        };
        let e = schema.connect(&other).await.err().expect("refused");
        assert_eq!(e.kind, LedgerErrorKind::Refused, "{e}");
        assert!(
            e.to_string().contains("prod") && e.to_string().contains(env.as_str()),
            "{e}"
        );
    }
    schema.connect(&scope(OTHER_APP)).await.unwrap();
    // A schema with a table of the same name that is not ours.
    let foreign = Schema::new(&url, "foreign").await;
    foreign
        .sql()
        .await
        .batch_execute("CREATE TABLE orders (id integer)")
        .await
        .unwrap();
    let e = foreign.connect(&scope(APP)).await.err().expect("refused");
    assert_eq!(e.kind, LedgerErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("orders"), "{e}");
}

#[tokio::test]
async fn options_that_cannot_be_are_refused_before_connecting() {
    let refused = |options: PostgresOptions| async move {
        let e = PostgresLedger::connect(&options, scope(APP))
            .await
            .err()
            .expect("refused");
        assert_eq!(e.kind, LedgerErrorKind::Refused, "{e}");
        e.to_string()
    };
    let e = refused(PostgresOptions {
        url: "postgres://a:b@/x?sslmode=sometimes".into(),
        ..Default::default()
    })
    .await;
    assert!(e.contains("connection string"), "{e}");
    let e = refused(PostgresOptions {
        url: "host=/nowhere".into(),
        schema: Some("Robert'); DROP TABLE orders;--".into()),
        ..Default::default()
    })
    .await;
    assert!(e.contains("not a plain name"), "{e}");
    let e = refused(PostgresOptions {
        url: "host=/nowhere sslmode=require".into(),
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..Default::default()
    })
    .await;
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
}

/// The server process holding the advisory lock named `key`, if any.
async fn holder(sql: &Client, key: &str) -> Option<i32> {
    sql.query_opt(
        "WITH k AS (SELECT hashtextextended($1, 0) AS k)
         SELECT l.pid FROM pg_locks l, k
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid = ((k.k >> 32) & 4294967295)::oid
           AND l.objid = (k.k & 4294967295)::oid",
        &[&key],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
}

async fn terminate(sql: &Client, pid: i32) {
    let done: bool = sql
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(done, "terminated {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_lock_holds_across_handles_until_dropped_or_its_connection_dies() {
    let Some(url) = database() else { return };
    let schema = Schema::new(&url, "order_lock").await;
    let (one, two) = (
        Arc::new(schema.connect(&scope(APP)).await.unwrap()),
        Arc::new(schema.connect(&scope(APP)).await.unwrap()),
    );
    let a = no("A");
    let held = one.lock_order(&a).await.unwrap();
    // Another handle waits (and a wait given up leaves nothing behind).
    for _ in 0..3 {
        assert!(
            tokio::time::timeout(Duration::from_millis(200), two.lock_order(&a))
                .await
                .is_err(),
            "another handle waits"
        );
    }
    // Another app's order of the same number is another lock.
    let other = schema.connect(&scope(OTHER_APP)).await.unwrap();
    drop(
        tokio::time::timeout(Duration::from_secs(5), other.lock_order(&a))
            .await
            .expect("another app's lock is free")
            .unwrap(),
    );
    let taken = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (two, taken, a) = (two.clone(), taken.clone(), a.clone());
        tokio::spawn(async move {
            let guard = two.lock_order(&a).await.unwrap();
            taken.store(true, Ordering::SeqCst);
            guard
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!taken.load(Ordering::SeqCst));
    drop(held);
    let guard = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("released on drop")
        .unwrap();
    // The holder's connection dies (its process is gone): the server releases the lock.
    let sql = schema.sql().await;
    let key = OrderLocks::key(&schema.cx(&scope(APP)), &a);
    let pid = holder(&sql, &key).await.expect("the lock is held");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), one.lock_order(&a))
            .await
            .is_err()
    );
    terminate(&sql, pid).await;
    let again = tokio::time::timeout(Duration::from_secs(5), one.lock_order(&a))
        .await
        .expect("released with its connection")
        .unwrap();
    assert_ne!(holder(&sql, &key).await, Some(pid));
    // The dead holder's guard goes quietly; the live one still holds.
    drop(guard);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(holder(&sql, &key).await.is_some());
    drop(again);
    let deadline = Instant::now() + Duration::from_secs(5);
    while holder(&sql, &key).await.is_some() {
        assert!(Instant::now() < deadline, "unlocked on drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_dies_with_its_handle_and_comes_back_after_its_connection_is_cut() {
    let Some(url) = database() else { return };
    let schema = Schema::new(&url, "lease").await;
    let one = schema.connect(&scope(APP)).await.unwrap();
    let two = schema.connect(&scope(APP)).await.unwrap();
    let first = one.instance().clone();
    assert_eq!(first.as_str().len(), 32);
    assert!(two.is_alive(&first).await.unwrap());
    // Cut its connection, as a network would: dead, then alive again once it reconnected.
    let sql = schema.sql().await;
    let pid: i32 = sql
        .query_one(
            "SELECT backend_pid FROM instances WHERE token = $1",
            &[&first.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    terminate(&sql, pid).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while two.is_alive(&first).await.unwrap() {
        assert!(Instant::now() < deadline, "a cut lease is lost");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !two.is_alive(&first).await.unwrap() {
        assert!(Instant::now() < deadline, "the lease is taken again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(one.is_alive(&first).await.unwrap());
    // Dropped: dead at once, and its row goes.
    drop(one);
    assert!(!two.is_alive(&first).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = sql
            .query(
                "SELECT 1 FROM instances WHERE token = $1",
                &[&first.as_str()],
            )
            .await
            .unwrap();
        if rows.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "its row is removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(two.is_alive(two.instance()).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_that_lost_its_lease_starts_no_refund() {
    let Some(url) = database() else { return };
    let schema = Schema::new(&url, "fenced").await;
    let one = schema.connect(&scope(APP)).await.unwrap();
    let two = schema.connect(&scope(APP)).await.unwrap();
    one.create_order(&order("A", 1000)).await.unwrap();
    let paid = status("TRADE_SUCCESS", None, StatusSource::Query);
    one.update_status(&no("A"), &paid).await.unwrap();
    let mut r = refund("A", "A_R", 300);
    r.owner = one.instance().clone();
    // Without its lease, the others take it for dead and would settle what it sends.
    one.lease.close();
    assert!(!two.is_alive(one.instance()).await.unwrap());
    let e = one
        .begin_refund(&r, &no_daily_limit(1000))
        .await
        .expect_err("fenced");
    assert_eq!(e.kind, LedgerErrorKind::Unavailable, "{e}");
    assert!(
        e.message.contains("lost its lease") && e.message.contains("nothing was sent"),
        "{e}"
    );
    assert!(
        one.refunds(&no("A")).await.unwrap().is_empty(),
        "nothing recorded"
    );
    // A live process starts it.
    let mut r = r.clone();
    r.owner = two.instance().clone();
    let begun = two.begin_refund(&r, &no_daily_limit(1000)).await.unwrap();
    assert!(matches!(begun, RefundBegin::Fresh), "{begun:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_is_heard_by_every_handle_on_the_store_within_a_second() {
    let Some(url) = database() else { return };
    let schema = Schema::new(&url, "changes").await;
    let writer = schema.connect(&scope(APP)).await.unwrap();
    let reader = schema.connect(&scope(APP)).await.unwrap();
    let other_app = schema.connect(&scope(OTHER_APP)).await.unwrap();
    let elsewhere = Schema::new(&url, "changes_elsewhere").await;
    let other_store = elsewhere.connect(&scope(APP)).await.unwrap();
    let (mut rx, mut theirs, mut far) =
        (reader.changes(), other_app.changes(), other_store.changes());
    let mut own = writer.changes();
    writer.create_order(&order("A", 1_000)).await.unwrap();
    let paid = status("TRADE_SUCCESS", None, StatusSource::Query);
    let at = Instant::now();
    assert!(writer.update_status(&no("A"), &paid).await.unwrap());
    let heard = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .expect("heard within a second")
        .unwrap();
    assert_eq!(heard.out_trade_no, no("A"));
    assert!(at.elapsed() < Duration::from_secs(1));
    let heard = tokio::time::timeout(Duration::from_secs(1), own.recv())
        .await
        .expect("its own too")
        .unwrap();
    assert_eq!(heard.out_trade_no, no("A"));
    // Nobody else's.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(theirs.try_recv().is_err(), "another app hears nothing");
    assert!(far.try_recv().is_err(), "another store hears nothing");
    // The listener's connection cut: it comes back, and hears again.
    let sql = schema.sql().await;
    let name = format!("mcp-server-alipay changes {}", reader.instance().as_str());
    let pid: i32 = sql
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    terminate(&sql, pid).await;
    let lim = no_daily_limit(1_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        writer
            .begin_refund(&refund("A", &format!("R{n}"), 1), &lim)
            .await
            .unwrap();
        if let Ok(Ok(heard)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            assert_eq!(heard.out_trade_no, no("A"));
            break;
        }
        assert!(Instant::now() < deadline, "the listener comes back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_notifications_are_recorded_once() {
    let Some(url) = database() else { return };
    let schema = Schema::new(&url, "racing_notifications").await;
    let handles: [Arc<PostgresLedger>; 2] = [
        Arc::new(schema.connect(&scope(APP)).await.unwrap()),
        Arc::new(schema.connect(&scope(APP)).await.unwrap()),
    ];
    let notification = |id: &str, number: &str| ReceivedNotification {
        notify_id: id.into(),
        out_trade_no: no(number),
        trade_status: TradeStatus::TradeSuccess,
        trade_no: Some("T".into()),
        refunded: None,
        refund_request_no: None,
        content: format!("c-{id}-{number}"),
        seen_at: None,
        paid_at: None,
        raw: RawForm {
            content_type: "application/x-www-form-urlencoded".into(),
            body: b"notify".to_vec(),
        },
    };
    for i in 0..10 {
        let (a, b) = (format!("A{i}"), format!("B{i}"));
        for number in [&a, &b] {
            handles[0].create_order(&order(number, 100)).await.unwrap();
        }
        // Eight deliveries of one notification, and the same id for another order at once.
        let tasks: Vec<_> = (0..9)
            .map(|t| {
                let l = handles[t % 2].clone();
                let n = notification(&format!("N{i}"), if t == 8 { &b } else { &a });
                tokio::spawn(async move { l.apply_notification(&n).await.unwrap() })
            })
            .collect();
        let (mut applied, mut duplicates, mut reused) = (0, 0, 0);
        for task in tasks {
            match task.await.unwrap() {
                NotifyApply::Applied => applied += 1,
                NotifyApply::Duplicate => duplicates += 1,
                NotifyApply::ReusedId => reused += 1,
                other => panic!("{other:?}"),
            }
        }
        // A's won (its seven twins are duplicates, B's is a reused id), or B's (A's eight are).
        assert_eq!(applied, 1, "round {i}");
        assert!(
            (duplicates, reused) == (7, 1) || (duplicates, reused) == (0, 8),
            "round {i}: {duplicates} duplicates, {reused} reused"
        );
        let accepted = count(
            &schema.sql().await,
            &format!(
                "SELECT count(*) FROM notifications WHERE notify_id = 'N{i}' AND verdict = 'accepted'"
            ),
        )
        .await;
        assert_eq!(accepted, 1, "round {i}");
    }
}

/// The plan PostgreSQL picks for finding one order by its number, as the ledger asks it.
async fn order_lookup_plan(sql: &Client, number: &str) -> String {
    let rows = sql
        .query(
            &format!(
                "EXPLAIN SELECT * FROM orders WHERE app_id = '{APP}' AND env = 'prod' AND out_trade_no = '{number}'"
            ),
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Before autovacuum's first ANALYZE of a table that grew fast (no statistics yet), an order is
/// still found by its key, not by reading every order of the app (version 4's `env` indexes made
/// the planner guess otherwise: 1.8 ms a lookup at 10,000 orders), also by a statement prepared
/// while the table was empty (a generic plan made then reads the whole table). And a version 4
/// store is brought to version 5 in place, its orders kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_found_by_its_key_before_any_statistics_and_v4_stores_are_upgraded() {
    let Some(url) = database() else { return };
    let schema = Schema::new(&url, "lookup_plan").await;
    let ledger = schema.connect(&scope(APP)).await.unwrap();
    let sql = schema.sql().await;
    // A lookup prepared and run while the table is empty, as a pooled connection's first calls
    // are: the plan it runs with later must not be the one made for an empty table.
    let lookup = format!("lookup('{APP}', 'prod', 'N4321')");
    sql.batch_execute(
        "PREPARE lookup(text, text, text) AS
         SELECT * FROM orders WHERE app_id = $1 AND env = $2 AND out_trade_no = $3",
    )
    .await
    .unwrap();
    for _ in 0..8 {
        sql.batch_execute(&format!("EXECUTE {lookup}"))
            .await
            .unwrap();
    }
    sql.batch_execute(&format!(
        "INSERT INTO orders (app_id, env, out_trade_no, kind, amount_fen, title, link, created_at)
         SELECT '{APP}', 'prod', 'N' || i, 'webPage', 100, 't', 'l', '2026-12-01 10:00:00'
         FROM generate_series(1, 5000) AS i"
    ))
    .await
    .unwrap();
    let analyzed = count(
        &sql,
        "SELECT count(*) FROM pg_stats WHERE tablename = 'orders' AND schemaname = current_schema()",
    )
    .await;
    assert_eq!(analyzed, 0, "the test needs a table with no statistics");
    let plan = order_lookup_plan(&sql, "N4321").await;
    assert!(plan.contains("orders_pkey"), "{plan}");
    let prepared: Vec<String> = sql
        .query(&format!("EXPLAIN EXECUTE {lookup}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        prepared.iter().any(|l| l.contains("orders_pkey")),
        "{prepared:?}"
    );
    assert!(ledger.order(&no("N4321")).await.unwrap().is_some());

    // A version 4 store: its indexes as version 4 made them, and no row for version 5.
    drop(ledger);
    sql.batch_execute(
        "DROP INDEX orders_by_created;
         CREATE INDEX orders_by_created ON orders (app_id, env, created_at);
         DELETE FROM schema_version;
         INSERT INTO schema_version (version) VALUES (4);",
    )
    .await
    .unwrap();
    assert!(
        !order_lookup_plan(&sql, "N4321")
            .await
            .contains("orders_pkey")
    );
    let ledger = schema.connect(&scope(APP)).await.unwrap();
    assert_eq!(
        count(&sql, "SELECT max(version)::bigint FROM schema_version").await,
        i64::from(super::schema::VERSION)
    );
    let plan = order_lookup_plan(&sql, "N4321").await;
    assert!(plan.contains("orders_pkey"), "{plan}");
    assert!(ledger.order(&no("N4321")).await.unwrap().is_some());
}

/// The numbers of the audit rows in the schema, in the order they were written.
async fn audited_numbers(sql: &Client) -> Vec<String> {
    sql.query("SELECT arguments FROM audit ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let arguments: String = r.get(0);
            let json: serde_json::Value = serde_json::from_str(&arguments).unwrap();
            json["outTradeNo"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_creates_answers_each_order_as_it_would_alone() {
    let Some(url) = database() else { return };
    let schema = Schema::new(&url, "batch_of_creates").await;
    let ledger = schema.connect(&scope(APP)).await.unwrap();
    let CreateOrder::Created(old) = ledger.create_order(&order("OLD", 700)).await.unwrap() else {
        panic!("a new number is created");
    };
    let (sql, cx) = (schema.sql().await, schema.cx(&scope(APP)));
    let pooled = ledger.pool.get().await.unwrap();

    // New numbers are created with their audit row (or none when given none); a number taken
    // before is answered with its order and writes no row.
    let (n1, taken, n2) = (audited_order("N1"), audited_order("OLD"), order("N2", 250));
    let answers = super::creates::create_orders(&pooled, &cx, &[&n1, &taken, &n2]).await;
    let answers: Vec<CreateOrder> = answers.into_iter().map(Result::unwrap).collect();
    let CreateOrder::Created(first) = &answers[0] else {
        panic!("N1: {:?}", answers[0]);
    };
    assert_eq!(
        (first.out_trade_no.as_str(), first.total_amount.fen()),
        ("N1", 100)
    );
    assert_eq!(first.expires_at.as_deref(), Some("2026-11-25 10:30:00"));
    assert_eq!(answers[1], CreateOrder::Existing(old));
    let CreateOrder::Created(second) = &answers[2] else {
        panic!("N2: {:?}", answers[2]);
    };
    assert_eq!(second.total_amount.fen(), 250);
    // What the batch wrote reads back as what it answered.
    assert_eq!(ledger.order(&no("N1")).await.unwrap().as_ref(), Some(first));
    assert_eq!(
        ledger.order(&no("N2")).await.unwrap().as_ref(),
        Some(second)
    );
    assert_eq!(audited_numbers(&sql).await, ["N1"]);

    // An order the server refuses (text cannot hold a NUL) fails alone: the others are created.
    let bad = NewOrder {
        title: "nul\0title".into(),
        ..audited_order("BAD")
    };
    let (n3, n4) = (audited_order("N3"), audited_order("N4"));
    let answers = super::creates::create_orders(&pooled, &cx, &[&n3, &bad, &n4]).await;
    assert!(
        matches!(answers[0], Ok(CreateOrder::Created(_))),
        "{:?}",
        answers[0]
    );
    let refused = answers[1].as_ref().unwrap_err();
    assert_ne!(
        refused.kind,
        LedgerErrorKind::CommitOutcomeUnknown,
        "{refused}"
    );
    assert!(
        matches!(answers[2], Ok(CreateOrder::Created(_))),
        "{:?}",
        answers[2]
    );
    assert_eq!(ledger.order(&no("BAD")).await.unwrap(), None);
    assert_eq!(audited_numbers(&sql).await, ["N1", "N3", "N4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_sent_at_once_are_each_answered_and_each_order_audited_once() {
    let Some(url) = database() else { return };
    let schema = Schema::new(&url, "creates_at_once").await;
    let ledger = Arc::new(schema.connect(&scope(APP)).await.unwrap());
    // 24 numbers, each sent twice at the same moment (a client's retry racing its first try).
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let number = format!("C{}", i % 24);
                (
                    number.clone(),
                    ledger.create_order(&audited_order(&number)).await,
                )
            })
        })
        .collect();
    let mut answers: std::collections::BTreeMap<String, Vec<CreateOrder>> = Default::default();
    for task in tasks {
        let (number, answer) = task.await.unwrap();
        answers.entry(number).or_default().push(answer.unwrap());
    }
    assert_eq!(answers.len(), 24);
    for (number, both) in &answers {
        let (created, existing): (Vec<_>, Vec<_>) = both
            .iter()
            .partition(|a| matches!(a, CreateOrder::Created(_)));
        let (Some(CreateOrder::Created(made)), Some(CreateOrder::Existing(found))) =
            (created.first(), existing.first())
        else {
            panic!("{number}: one try creates the order and the other finds it: {both:?}");
        };
        assert_eq!(made, found, "{number}");
    }
    let sql = schema.sql().await;
    assert_eq!(count(&sql, "SELECT count(*) FROM orders").await, 24);
    let mut numbers = audited_numbers(&sql).await;
    numbers.sort();
    assert_eq!(numbers, answers.keys().cloned().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_batches_holding_the_same_numbers_each_answer_every_order() {
    let Some(url) = database() else { return };
    let schema = Schema::new(&url, "crossing_batches").await;
    let ledger = schema.connect(&scope(APP)).await.unwrap();
    let cx = schema.cx(&scope(APP));
    let (one, two) = (
        ledger.pool.get().await.unwrap(),
        ledger.pool.get().await.unwrap(),
    );
    let (a, b) = (audited_order("XA"), audited_order("XB"));
    // The same two numbers in crossing order, written at the same moment on two connections.
    let (forward, backward) = ([&a, &b], [&b, &a]);
    let (first, second) = tokio::join!(
        super::creates::create_orders(&one, &cx, &forward),
        super::creates::create_orders(&two, &cx, &backward),
    );
    let created = |answers: &[Result<CreateOrder, LedgerError>], at: usize| {
        matches!(answers[at], Ok(CreateOrder::Created(_)))
    };
    for (number, mine, theirs) in [("XA", 0, 1), ("XB", 1, 0)] {
        let existing = |answer: &Result<CreateOrder, LedgerError>| matches!(answer, Ok(CreateOrder::Existing(o)) if o.out_trade_no.as_str() == number);
        // Exactly one batch created the number; the other was answered with that order.
        assert!(
            created(&first, mine) && existing(&second[theirs])
                || created(&second, theirs) && existing(&first[mine]),
            "{number}: {first:?} {second:?}"
        );
    }
    let sql = schema.sql().await;
    let mut numbers = audited_numbers(&sql).await;
    numbers.sort();
    assert_eq!(numbers, ["XA", "XB"]);
}
