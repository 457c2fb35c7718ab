//! New orders that arrive while others are being written go to PostgreSQL together: one
//! statement and one commit for the lot, not one each. Under load most of a create's cost in
//! PostgreSQL is per statement and per commit (the round trip, the executor's start, the WAL
//! flush), not per row; with no load a create is written at once, alone, as before.
//!
//! Each order still gets its own answer: created, the order that already held its number, or its
//! own error. The batch is one statement, so it commits whole or not at all: a refusal by the
//! server wrote nothing, and its orders are then written one by one so that only the order at
//! fault fails; a lost connection leaves every order of the batch not known, as it would alone.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_postgres::types::ToSql;

use super::Cx;
use super::conn::write_error;
use super::ops::{create_order, taken};
use super::rows::{Fail, ORDER_COLUMNS, Res, all, order_row, pool_error};
use crate::ledger::{CreateOrder, LedgerError, LedgerErrorKind, NewOrder, OrderRecord};

/// Batches written at the same time. A create that finds them all busy waits for one to end and
/// goes in the next; more would mean smaller batches, so more statements and commits for the
/// same orders, and no more throughput once PostgreSQL's CPU is the limit.
const IN_FLIGHT: usize = 2;
/// Most orders in one statement (its parameters stay a few tens of kilobytes).
const MAX_BATCH: usize = 64;

type Answer = Result<CreateOrder, LedgerError>;

struct Job {
    order: NewOrder,
    answer: oneshot::Sender<Answer>,
}

/// The queue of orders to write, and the task that writes them.
pub(super) struct Creates {
    queue: mpsc::UnboundedSender<Job>,
}

impl Creates {
    /// Start the writer on the current runtime; it ends when the handle is dropped and what was
    /// queued is written.
    pub(super) fn start(pool: Pool, cx: Arc<Cx>) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(write_all(pool, cx, jobs));
        Self { queue }
    }

    pub(super) async fn create(&self, order: &NewOrder) -> Answer {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            order: order.clone(),
            answer,
        };
        if self.queue.send(job).is_err() {
            return Err(LedgerError::new(
                LedgerErrorKind::Unavailable,
                "the ledger is closed",
            ));
        }
        // The writer went away with the order (its runtime stopped): it may have been written.
        answered.await.unwrap_or_else(|_| {
            Err(LedgerError::new(
                LedgerErrorKind::CommitOutcomeUnknown,
                "the ledger stopped while writing the order; whether it was recorded is not known",
            ))
        })
    }
}

async fn write_all(pool: Pool, cx: Arc<Cx>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut writing = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            Some(_) = writing.join_next(), if !writing.is_empty() => {}
            job = jobs.recv(), if writing.len() < IN_FLIGHT => {
                let Some(job) = job else { break };
                let mut batch = vec![job];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                writing.spawn(write_batch(pool.clone(), cx.clone(), batch));
            }
        }
    }
    while writing.join_next().await.is_some() {}
}

async fn write_batch(pool: Pool, cx: Arc<Cx>, batch: Vec<Job>) {
    let client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            let e = pool_error(e);
            for job in batch {
                let _ = job.answer.send(Err(e.clone()));
            }
            return;
        }
    };
    // Each number once in the statement; a repeat (the same create sent twice at once) goes
    // after it, on its own, and finds what the first left (or, if the first failed, tries itself).
    let mut seen = HashSet::with_capacity(batch.len());
    let (firsts, repeats): (Vec<Job>, Vec<Job>) = batch
        .into_iter()
        .partition(|job| seen.insert(job.order.out_trade_no.clone()));
    let orders: Vec<&NewOrder> = firsts.iter().map(|job| &job.order).collect();
    let answers = create_orders(&client, &cx, &orders).await;
    for (job, answer) in firsts.into_iter().zip(answers) {
        let _ = job.answer.send(answer);
    }
    for job in repeats {
        let answer = create_order(&client, &cx, &job.order).await;
        let _ = job.answer.send(answer.map_err(write_error));
    }
}

/// Record `orders` (each number once), answering each in order. One order is one statement, as
/// [`create_order`] alone; several are one statement for all, or, when the server refuses it,
/// one each.
pub(super) async fn create_orders(
    client: &impl GenericClient,
    cx: &Cx,
    orders: &[&NewOrder],
) -> Vec<Answer> {
    if let [order] = orders {
        return vec![create_order(client, cx, order).await.map_err(write_error)];
    }
    match insert_all(client, cx, orders).await {
        Ok(created) => {
            let mut answers = Vec::with_capacity(orders.len());
            for (order, created) in orders.iter().zip(created) {
                answers.push(match created {
                    Some(record) => Ok(CreateOrder::Created(record)),
                    None => taken(client, cx, &order.out_trade_no)
                        .await
                        .map_err(write_error),
                });
            }
            answers
        }
        // Refused by the server: the statement wrote nothing, so each order goes alone and only
        // the one at fault (or the one a timeout caught) fails.
        Err(Fail::Sql(e)) if e.as_db_error().is_some() => {
            let mut answers = Vec::with_capacity(orders.len());
            for order in orders {
                answers.push(create_order(client, cx, order).await.map_err(write_error));
            }
            answers
        }
        Err(other) => {
            let e = write_error(other);
            orders.iter().map(|_| Err(e.clone())).collect()
        }
    }
}

/// The statement of [`insert_all`]. Rows go in by number so that two batches holding the same
/// two numbers wait for each other in one order and never deadlock.
static INSERT_ALL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH input AS (
             SELECT * FROM unnest($3::text[], $4::text[], $5::int8[], $6::text[], $7::text[],
                                  $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
                 AS i (out_trade_no, kind, amount_fen, title, link, expires_at,
                       tool, arguments, decision, outcome)),
         created AS (
             INSERT INTO orders (app_id, env, out_trade_no, kind, amount_fen, title, link,
                 created_at, expires_at)
             SELECT $1::text, $2::text, out_trade_no, kind, amount_fen, title, link, {}, expires_at
             FROM input
             ORDER BY out_trade_no
             ON CONFLICT (app_id, out_trade_no) DO NOTHING
             RETURNING {ORDER_COLUMNS}),
         audited AS (
             INSERT INTO audit (app_id, env, at, tool, arguments, decision, outcome)
             SELECT $1::text, $2::text, c.created_at, i.tool, i.arguments, i.decision, i.outcome
             FROM created c JOIN input i USING (out_trade_no)
             WHERE i.tool IS NOT NULL)
         SELECT {ORDER_COLUMNS} FROM created",
        beijing_now!()
    )
});

/// One statement inserting every order whose number is free, with its audit row; for each
/// order, in order, the row it created (`None`: the number was taken).
async fn insert_all(
    client: &impl GenericClient,
    cx: &Cx,
    orders: &[&NewOrder],
) -> Res<Vec<Option<OrderRecord>>> {
    let column = |f: fn(&NewOrder) -> Option<&str>| orders.iter().map(|o| f(o)).collect::<Vec<_>>();
    let numbers = column(|o| Some(o.out_trade_no.as_str()));
    let kinds = column(|o| Some(o.kind.as_str()));
    let amounts: Vec<i64> = orders.iter().map(|o| o.amount.fen()).collect();
    let titles = column(|o| Some(o.title.as_str()));
    let links = column(|o| Some(o.link.as_str()));
    let expiries = column(|o| o.expires_at.as_deref());
    let tools = column(|o| o.audit.as_ref().map(|a| a.tool.as_str()));
    let arguments = column(|o| o.audit.as_ref().map(|a| a.arguments.as_str()));
    let decisions = column(|o| o.audit.as_ref().map(|a| a.decision.as_str()));
    let outcomes = column(|o| o.audit.as_ref().map(|a| a.outcome));
    let params: [&(dyn ToSql + Sync); 12] = [
        &cx.app(),
        &cx.env(),
        &numbers,
        &kinds,
        &amounts,
        &titles,
        &links,
        &expiries,
        &tools,
        &arguments,
        &decisions,
        &outcomes,
    ];
    let mut created = all(client, &INSERT_ALL, &params, order_row).await?;
    Ok(orders
        .iter()
        .map(|order| {
            let at = created
                .iter()
                .position(|record| record.out_trade_no == order.out_trade_no)?;
            Some(created.swap_remove(at))
        })
        .collect())
}
