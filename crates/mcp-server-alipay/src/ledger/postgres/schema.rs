//! The schema and its migrations. Applied in one transaction under a transaction-level advisory
//! lock on the schema's name, so any number of processes starting at once migrate it once (the
//! others wait, then find it done); a refusal (or a crash) halfway leaves it as it was.
//!
//! The tables and columns are SQLite's version 4 (so the two backends hold the same facts), with
//! PostgreSQL's types and constraints: the primary keys SQLite has, a unique index on accepted
//! notifications' ids (the dedupe rests on it, not on a lock), the events' unique key, and identity
//! ids where SQLite orders by rowid. Text that is compared or ordered is `COLLATE "C"`, so it sorts
//! byte-wise as in SQLite whatever the database's collation. Plus `instances`, the processes that
//! registered (their liveness itself is an advisory lock, see `liveness`).

use deadpool_postgres::Object;

use super::conn::{begin, commit};
use super::rows::{Fail, Res, at, execute, fail, first};
use crate::domain::AppScope;
use crate::ledger::LedgerError;
use crate::ledger::LedgerErrorKind::Refused;

/// The version this code writes: SQLite's version 4 tables (`V4`), then version 5's indexes
/// (`V5_INDEXES`).
pub(super) const VERSION: i32 = 5;

/// Version 5: no secondary index has `env` among its columns. A schema holds one environment
/// (checked at every start), so `env` never narrows a search; but before PostgreSQL has
/// statistics for a table (until autovacuum's first ANALYZE, a minute or more after it grew) the
/// planner guesses every equality narrows, and so took `(app_id, env, created_at)` over the primary
/// key to find one order by its number, then read every order of the app: 1.8 ms an order with
/// 10,000 of them. Without `env`, an index that matches only `app_id` never looks better than the
/// key that matches the whole number.
const V5_INDEXES: &str = r#"
DROP INDEX orders_by_created;
CREATE INDEX orders_by_created ON orders (app_id, created_at);
DROP INDEX status_events_by_order;
CREATE INDEX status_events_by_order ON status_events (app_id, out_trade_no);
DROP INDEX refunds_by_day;
CREATE INDEX refunds_by_day ON refunds (app_id, day);
DROP INDEX refunds_by_state;
CREATE INDEX refunds_by_state ON refunds (app_id, state);
DROP INDEX notifications_by_order;
CREATE INDEX notifications_by_order ON notifications (app_id, out_trade_no);
DROP INDEX approvals_by_refund;
CREATE INDEX approvals_by_refund ON approvals (app_id, out_trade_no, out_request_no);
DROP INDEX approvals_by_status;
CREATE INDEX approvals_by_status ON approvals (app_id, status);
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (app_id, state, next_ms);
"#;

/// The tables of version 4, for a schema that has none of them.
const TABLES: [&str; 11] = [
    "meta",
    "orders",
    "status_events",
    "refunds",
    "notifications",
    "audit",
    "approvals",
    "events",
    "deliveries",
    "delivery_attempts",
    "instances",
];

const V4: &str = r#"
CREATE TABLE meta (
    key   text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE orders (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    app_id        text COLLATE "C" NOT NULL,
    env           text COLLATE "C" NOT NULL,
    out_trade_no  text COLLATE "C" NOT NULL,
    kind          text COLLATE "C" NOT NULL,
    amount_fen    bigint NOT NULL,
    title         text NOT NULL,
    link          text NOT NULL,
    created_at    text COLLATE "C" NOT NULL,
    trade_status  text COLLATE "C",
    trade_no      text COLLATE "C",
    status_source text COLLATE "C",
    status_at     text COLLATE "C",
    refunded_fen  bigint NOT NULL DEFAULT 0,
    expires_at    text COLLATE "C",
    paid_at       text COLLATE "C",
    PRIMARY KEY (app_id, out_trade_no)
);
CREATE INDEX orders_by_created ON orders (app_id, env, created_at);
CREATE TABLE status_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id        text COLLATE "C" NOT NULL,
    env           text COLLATE "C" NOT NULL,
    out_trade_no  text COLLATE "C" NOT NULL,
    trade_status  text COLLATE "C" NOT NULL,
    source        text COLLATE "C" NOT NULL,
    at            text COLLATE "C" NOT NULL
);
CREATE INDEX status_events_by_order ON status_events (app_id, env, out_trade_no);
CREATE TABLE refunds (
    id             bigint GENERATED ALWAYS AS IDENTITY,
    app_id         text COLLATE "C" NOT NULL,
    env            text COLLATE "C" NOT NULL,
    out_trade_no   text COLLATE "C" NOT NULL,
    out_request_no text COLLATE "C" NOT NULL,
    amount_fen     bigint NOT NULL,
    reason         text,
    state          text COLLATE "C" NOT NULL,
    trade_no       text COLLATE "C",
    total_refunded_fen bigint,
    day            text COLLATE "C" NOT NULL,
    created_at     text COLLATE "C" NOT NULL,
    updated_at     text COLLATE "C" NOT NULL,
    detail         text,
    owner          text COLLATE "C",
    succeeded_at   text COLLATE "C",
    PRIMARY KEY (app_id, out_trade_no, out_request_no)
);
CREATE INDEX refunds_by_day ON refunds (app_id, env, day);
CREATE INDEX refunds_by_state ON refunds (app_id, env, state);
CREATE TABLE notifications (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id        text COLLATE "C" NOT NULL,
    env           text COLLATE "C" NOT NULL,
    notify_id     text COLLATE "C",
    out_trade_no  text COLLATE "C",
    trade_status  text COLLATE "C",
    verdict       text COLLATE "C" NOT NULL,
    reason        text,
    content       text,
    received_at   text COLLATE "C" NOT NULL
);
CREATE UNIQUE INDEX notifications_accepted ON notifications (app_id, env, notify_id)
    WHERE verdict = 'accepted';
CREATE INDEX notifications_by_order ON notifications (app_id, env, out_trade_no);
CREATE TABLE audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id     text COLLATE "C" NOT NULL,
    env        text COLLATE "C" NOT NULL,
    at         text COLLATE "C" NOT NULL,
    tool       text NOT NULL,
    arguments  text NOT NULL,
    decision   text NOT NULL,
    outcome    text NOT NULL
);
CREATE TABLE approvals (
    id             bigint GENERATED ALWAYS AS IDENTITY,
    app_id         text COLLATE "C" NOT NULL,
    env            text COLLATE "C" NOT NULL,
    token_hash     text COLLATE "C" PRIMARY KEY,
    out_trade_no   text COLLATE "C" NOT NULL,
    out_request_no text COLLATE "C" NOT NULL,
    csrf           text NOT NULL,
    paid_fen       bigint NOT NULL,
    refunded_fen   bigint NOT NULL,
    expires_at     text COLLATE "C" NOT NULL,
    status         text COLLATE "C" NOT NULL,
    created_at     text COLLATE "C" NOT NULL,
    decided_at     text COLLATE "C"
);
CREATE INDEX approvals_by_refund ON approvals (app_id, env, out_trade_no, out_request_no);
CREATE INDEX approvals_by_status ON approvals (app_id, env, status);
CREATE TABLE events (
    id            text COLLATE "C" PRIMARY KEY,
    app_id        text COLLATE "C" NOT NULL,
    env           text COLLATE "C" NOT NULL,
    out_trade_no  text COLLATE "C" NOT NULL,
    kind          text COLLATE "C" NOT NULL,
    subject       text COLLATE "C" NOT NULL,
    data          text NOT NULL,
    raw_type      text,
    raw_body      bytea,
    created_ms    bigint NOT NULL,
    UNIQUE (app_id, env, out_trade_no, kind, subject)
);
CREATE TABLE deliveries (
    event_id      text COLLATE "C" NOT NULL REFERENCES events (id),
    target        text COLLATE "C" NOT NULL,
    app_id        text COLLATE "C" NOT NULL,
    env           text COLLATE "C" NOT NULL,
    state         text COLLATE "C" NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    next_ms       bigint NOT NULL,
    lease_until   bigint,
    lease_owner   text COLLATE "C",
    last_error    text,
    delivered_at  text COLLATE "C",
    PRIMARY KEY (event_id, target)
);
CREATE INDEX deliveries_due ON deliveries (app_id, env, state, next_ms);
CREATE TABLE delivery_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id        text COLLATE "C" NOT NULL,
    env           text COLLATE "C" NOT NULL,
    event_id      text COLLATE "C" NOT NULL,
    target        text COLLATE "C" NOT NULL,
    at            text COLLATE "C" NOT NULL,
    ok            boolean NOT NULL,
    http_status   integer,
    detail        text NOT NULL
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (event_id, target);
CREATE TABLE instances (
    token         text COLLATE "C" PRIMARY KEY,
    app_id        text COLLATE "C" NOT NULL,
    env           text COLLATE "C" NOT NULL,
    started_at    text COLLATE "C" NOT NULL,
    heartbeat_at  text COLLATE "C" NOT NULL,
    backend_pid   integer NOT NULL
);
"#;

fn refuse<T>(message: String) -> Res<T> {
    Err(fail(Refused, message))
}

/// Bring `schema` (the one in `search_path`) to [`VERSION`] and check it is `scope`'s
/// environment's.
pub(super) async fn migrate(
    client: &mut Object,
    schema: &str,
    scope: &AppScope,
) -> Result<(), LedgerError> {
    let tx = begin(client, false).await.map_err(Fail::into_ledger)?;
    run(&tx, schema, scope).await.map_err(Fail::into_ledger)?;
    commit(tx, true).await
}

async fn run(tx: &super::rows::Tx<'_>, schema: &str, scope: &AppScope) -> Res<()> {
    // A migration may take longer than an ordinary call, and so may waiting for another's.
    tx.batch_execute("SET LOCAL lock_timeout = '60s'; SET LOCAL statement_timeout = '10min'")
        .await?;
    // First: every other process migrating this schema waits here, and then finds it done.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('ap-ledger:migrate:' || $1, 0))",
        &[&schema],
    )
    .await?;
    let schema_exists = first(
        tx,
        "SELECT 1 FROM pg_namespace WHERE nspname = $1",
        &[&schema],
        |_| Ok(()),
    )
    .await?
    .is_some();
    if !schema_exists {
        // A plain name (checked), so it needs no quoting.
        tx.batch_execute(&format!("CREATE SCHEMA {schema}")).await?;
    }
    let tables = super::rows::all(
        tx,
        "SELECT tablename::text FROM pg_tables WHERE schemaname = $1",
        &[&schema],
        |r| at::<String>(r, 0),
    )
    .await?;
    let has = |t: &str| tables.iter().any(|x| x == t);
    if has("schema_version") {
        let version: Option<i32> = first(tx, "SELECT max(version) FROM schema_version", &[], |r| {
            at(r, 0)
        })
        .await?
        .flatten();
        match version {
            Some(VERSION) => {}
            Some(4) => {
                tx.batch_execute(V5_INDEXES).await?;
                execute(
                    tx,
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[&VERSION],
                )
                .await?;
            }
            Some(other) if other > VERSION => {
                return refuse(format!(
                    "this ledger (PostgreSQL schema {schema}) has schema version {other}, which this server does not know (it writes {VERSION}): it was written by a newer version"
                ));
            }
            other => {
                return refuse(format!(
                    "this ledger (PostgreSQL schema {schema}) has schema version {other:?}, which no version of this server wrote"
                ));
            }
        }
    } else {
        if let Some(theirs) = TABLES.iter().find(|t| has(t)) {
            return refuse(format!(
                "PostgreSQL schema {schema} has a table {theirs} that is no ledger table of this server; set another schema"
            ));
        }
        tx.batch_execute(V4).await?;
        tx.batch_execute(V5_INDEXES).await?;
        tx.batch_execute(
            "CREATE TABLE schema_version (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
        execute(
            tx,
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&VERSION],
        )
        .await?;
    }
    let env: Option<String> = first(tx, "SELECT value FROM meta WHERE key = 'env'", &[], |r| {
        at(r, 0)
    })
    .await?;
    match env {
        Some(env) if env == scope.env.as_str() => {}
        Some(env) => {
            return refuse(format!(
                "this ledger holds the {env} environment's orders, so it cannot be opened for {scope} ({} environment); give each environment its own PostgreSQL schema or database, and orders of two environments must never mix",
                scope.env.as_str()
            ));
        }
        None => {
            execute(
                tx,
                "INSERT INTO meta (key, value) VALUES ('env', $1)",
                &[&scope.env.as_str()],
            )
            .await?;
        }
    }
    Ok(())
}
