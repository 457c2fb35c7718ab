//! Refunds: the decision to send one and the record of what came of it, inside the caller's
//! transaction. Where SQLite's `BEGIN IMMEDIATE` serialised every writer, `begin_refund` takes
//! transaction-level advisory locks as its first statements — the order's, then (when a daily
//! limit is set) the Beijing day's, always in that order — and then reads the facts: at READ
//! COMMITTED each later statement sees everything committed before the lock was granted, so two
//! refunds can never both pass a limit. (Not REPEATABLE READ: its snapshot would predate the
//! lock.) Writers of a refund's row lock its order's row first (`FOR UPDATE`), so lock order is
//! always advisory → order row → refund row.

use alipay_openapi::Money;
use deadpool_postgres::GenericClient;

use super::Cx;
use super::ops::{Changed, announce, find_order};
use super::outbox::emit;
use super::rows::{
    REFUND_COLUMNS, Res, Tx, all, amount, at, execute, fail, first, get, money, refund_row, state,
    sum,
};
use crate::domain::outbox::{self as events, TargetKind};
use crate::domain::refund::{self, ApprovalStep, BeginDecision, PriorRefund, RefundFacts};
use crate::domain::{OutRequestNo, OutTradeNo, RefundState};
use crate::ledger::events::NewEvent;
use crate::ledger::{
    LedgerErrorKind, NewRefund, RefundBegin, RefundLimits, RefundOutcome, RefundRecord,
};

/// Wait for, and hold until the transaction ends, the lock on refund decisions for the order
/// (an advisory lock: the order may have no row here).
pub(super) async fn lock_decisions(tx: &Tx<'_>, cx: &Cx, no: &OutTradeNo) -> Res<()> {
    execute(
        tx,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&cx.key("order", no.as_str())],
    )
    .await?;
    Ok(())
}

/// As [`lock_decisions`], for the refunds of a Beijing day (the daily budget).
async fn lock_day(tx: &Tx<'_>, cx: &Cx, day: &str) -> Res<()> {
    execute(
        tx,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&cx.key("refund-day", day)],
    )
    .await?;
    Ok(())
}

pub(super) async fn find_refund(
    tx: &impl GenericClient,
    cx: &Cx,
    no: &OutTradeNo,
    req: &OutRequestNo,
    for_update: bool,
) -> Res<Option<RefundRecord>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    first(
        tx,
        &format!(
            "SELECT {REFUND_COLUMNS} FROM refunds
             WHERE app_id = $1 AND env = $2 AND out_trade_no = $3 AND out_request_no = $4{lock}"
        ),
        &[&cx.app(), &cx.env(), &no.as_str(), &req.as_str()],
        refund_row,
    )
    .await
}

pub(super) async fn refunds_of(
    tx: &impl GenericClient,
    cx: &Cx,
    no: &OutTradeNo,
) -> Res<Vec<RefundRecord>> {
    all(
        tx,
        &format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE app_id = $1 AND env = $2 AND out_trade_no = $3
             ORDER BY created_at, out_request_no"
        ),
        &[&cx.app(), &cx.env(), &no.as_str()],
        refund_row,
    )
    .await
}

/// Alipay's last reported refund total on the order (locking its row when `for_update`), if the
/// order is here.
async fn reported(
    tx: &impl GenericClient,
    cx: &Cx,
    no: &OutTradeNo,
    for_update: bool,
) -> Res<Option<i64>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    first(
        tx,
        &format!(
            "SELECT refunded_fen FROM orders WHERE app_id = $1 AND env = $2 AND out_trade_no = $3{lock}"
        ),
        &[&cx.app(), &cx.env(), &no.as_str()],
        |r| at(r, 0),
    )
    .await
}

/// The trade's refunds besides `except`, and Alipay's last reported total: every row read (a
/// corrupt one is an error, never left out of a sum).
async fn facts(
    tx: &impl GenericClient,
    cx: &Cx,
    no: &OutTradeNo,
    except: &OutRequestNo,
    reported_fen: Option<i64>,
) -> Res<RefundFacts> {
    let mut facts = RefundFacts::default();
    for r in refunds_of(tx, cx, no).await? {
        if &r.out_request_no == except {
            continue;
        }
        let what = format_args!("refunds of order {no}");
        match r.state {
            RefundState::Succeeded => {
                facts.confirmed = sum(facts.confirmed, r.refund_amount.into(), what)?
            }
            st if st.unsettled() => {
                facts.in_flight = sum(facts.in_flight, r.refund_amount.into(), what)?
            }
            _ => {}
        }
    }
    facts.reported = money(
        reported_fen.unwrap_or(0),
        format_args!("order {no} refunded"),
    )?;
    Ok(facts)
}

/// What the scope's refunds begun on `day` that may have moved money add up to.
pub(super) async fn day_used(tx: &impl GenericClient, cx: &Cx, day: &str) -> Res<Money> {
    day_used_besides(tx, cx, day, None).await
}

/// As [`day_used`], leaving out the refund being decided (one awaiting approval already counts).
async fn day_used_besides(
    tx: &impl GenericClient,
    cx: &Cx,
    day: &str,
    except: Option<(&OutTradeNo, &OutRequestNo)>,
) -> Res<Money> {
    let rows = all(
        tx,
        "SELECT out_trade_no, out_request_no, state, amount_fen FROM refunds
         WHERE app_id = $1 AND env = $2 AND day = $3",
        &[&cx.app(), &cx.env(), &day],
        |r| {
            let (no, req): (&str, &str) = (get(r, "out_trade_no")?, get(r, "out_request_no")?);
            let what = format!("refund {req} of order {no}");
            let excepted = except.is_some_and(|(n, q)| n.as_str() == no && q.as_str() == req);
            Ok((
                state(get(r, "state")?, &what)?,
                amount(get(r, "amount_fen")?, &what)?,
                excepted,
            ))
        },
    )
    .await?;
    rows.into_iter()
        .filter(|(st, _, excepted)| st.may_have_moved_money() && !excepted)
        .try_fold(Money::ZERO, |used, (_, a, _)| {
            sum(used, a.into(), format_args!("refunds of {day}"))
        })
}

/// Alipay's cumulative refund only grows: keep the largest reported. True when it grew.
pub(super) async fn raise_refunded(
    tx: &Tx<'_>,
    cx: &Cx,
    no: &OutTradeNo,
    refunded: Money,
) -> Res<bool> {
    let raised = execute(
        tx,
        "UPDATE orders SET refunded_fen = GREATEST(refunded_fen, $4)
         WHERE app_id = $1 AND env = $2 AND out_trade_no = $3 AND refunded_fen < $4",
        &[&cx.app(), &cx.env(), &no.as_str(), &refunded.fen()],
    )
    .await?;
    Ok(raised > 0)
}

/// Record a refund's event (if its settlement is one) inside the caller's transaction.
pub(super) async fn emit_refund(
    tx: &Tx<'_>,
    cx: &Cx,
    targets: &[TargetKind],
    before: RefundState,
    no: &OutTradeNo,
    req: &OutRequestNo,
) -> Res<()> {
    let (Some(order), Some(refund)) = (
        find_order(tx, cx, no).await?,
        find_refund(tx, cx, no, req, false).await?,
    ) else {
        return Ok(());
    };
    if let Some(kind) = events::refund_event(before, refund.state) {
        let event = NewEvent {
            kind,
            order: &order,
            refund: Some(&refund),
            notification: None,
        };
        emit(tx, cx, targets, &event).await?;
    }
    Ok(())
}

/// When a refund succeeded: the first word is kept (the bill's time, else now).
pub(super) async fn mark_succeeded(
    tx: &Tx<'_>,
    cx: &Cx,
    no: &OutTradeNo,
    req: &OutRequestNo,
    at: Option<&str>,
) -> Res<()> {
    execute(
        tx,
        concat!(
            "UPDATE refunds SET succeeded_at = COALESCE(succeeded_at, $5::text, ",
            beijing_now!(),
            ") WHERE app_id = $1 AND env = $2 AND out_trade_no = $3 AND out_request_no = $4"
        ),
        &[&cx.app(), &cx.env(), &no.as_str(), &req.as_str(), &at],
    )
    .await?;
    Ok(())
}

pub(super) async fn begin_refund(
    tx: &Tx<'_>,
    cx: &Cx,
    refund: &NewRefund,
    limits: &RefundLimits,
) -> Res<RefundBegin> {
    let (no, req) = (&refund.out_trade_no, &refund.out_request_no);
    // First the locks, always in this order; only then the facts.
    lock_decisions(tx, cx, no).await?;
    // Always, limit or not: an instance configured without the limit still queues behind the ones
    // with it (cheap: one more advisory lock).
    lock_day(tx, cx, &limits.day).await?;
    let reported_fen = reported(tx, cx, no, true).await?;
    // Locked too: a refund may name an order with no row to lock, and a writer that settles this
    // refund (the bill, a refund query) holds no advisory lock, only the refund's row.
    let prior = find_refund(tx, cx, no, req, true).await?;
    let facts = facts(tx, cx, no, req, reported_fen).await?;
    let used = day_used_besides(tx, cx, &limits.day, Some((no, req))).await?;
    let decision = refund::decide_begin(
        prior.as_ref().map(|p| PriorRefund {
            amount: p.refund_amount,
            state: p.state,
        }),
        refund.amount,
        &facts,
        used,
        &refund::RefundLimits {
            daily: limits.daily,
            paid: limits.paid,
        },
        refund.step,
    );
    // A refund offered for approval is recorded but not sent; anything else is being sent now.
    let new_state = if refund.step == ApprovalStep::Ask {
        RefundState::AwaitingApproval
    } else {
        RefundState::Pending
    };
    let (app, env, no_s, req_s) = (cx.app(), cx.env(), no.as_str(), req.as_str());
    let prior_record = || {
        prior.clone().ok_or_else(|| {
            fail(
                LedgerErrorKind::Corrupt,
                "a decision on a refund that is not there",
            )
        })
    };
    let begin = match decision {
        BeginDecision::Conflict => return Ok(RefundBegin::Conflict(prior_record()?)),
        BeginDecision::Replay => return Ok(RefundBegin::Replay(prior_record()?)),
        BeginDecision::Over(over) => return Ok(RefundBegin::Over(over)),
        BeginDecision::StillAwaiting => return Ok(RefundBegin::StillAwaiting(prior_record()?)),
        BeginDecision::Retry => {
            let prior = prior_record()?;
            execute(
                tx,
                concat!(
                    "UPDATE refunds SET owner = $5, updated_at = ",
                    beijing_now!(),
                    " WHERE app_id = $1 AND env = $2 AND out_trade_no = $3 AND out_request_no = $4"
                ),
                &[&app, &env, &no_s, &req_s, &refund.owner.as_str()],
            )
            .await?;
            RefundBegin::Retry(prior)
        }
        BeginDecision::Fresh if prior.is_some() => {
            execute(
                tx,
                concat!(
                    "UPDATE refunds SET state = $8, reason = $5, day = $6, updated_at = ",
                    beijing_now!(),
                    ", detail = NULL, owner = $7
                     WHERE app_id = $1 AND env = $2 AND out_trade_no = $3 AND out_request_no = $4"
                ),
                &[
                    &app,
                    &env,
                    &no_s,
                    &req_s,
                    &refund.reason,
                    &limits.day,
                    &refund.owner.as_str(),
                    &new_state.as_str(),
                ],
            )
            .await?;
            RefundBegin::Fresh
        }
        BeginDecision::Fresh => {
            // The primary key is the backstop: without the lock, a twin would fail here.
            execute(
                tx,
                concat!(
                    "INSERT INTO refunds (app_id, env, out_trade_no, out_request_no, amount_fen,
                         reason, state, day, created_at, updated_at, owner)
                     VALUES ($1, $2, $3, $4, $5, $6, $9, $7, ",
                    beijing_now!(),
                    ", ",
                    beijing_now!(),
                    ", $8)"
                ),
                &[
                    &app,
                    &env,
                    &no_s,
                    &req_s,
                    &refund.amount.fen(),
                    &refund.reason,
                    &limits.day,
                    &refund.owner.as_str(),
                    &new_state.as_str(),
                ],
            )
            .await?;
            RefundBegin::Fresh
        }
    };
    announce(tx, cx, no).await?;
    Ok(begin)
}

pub(super) async fn finish_refund(
    tx: &Tx<'_>,
    cx: &Cx,
    targets: &[TargetKind],
    no: &OutTradeNo,
    req: &OutRequestNo,
    outcome: &RefundOutcome,
    sender: Option<&str>,
) -> Res<(Option<RefundState>, Changed)> {
    // The order's row, then the refund's: as every writer of both takes them.
    reported(tx, cx, no, true).await?;
    let stored = find_refund(tx, cx, no, req, true).await?;
    let write = stored.as_ref().is_some_and(|r| {
        refund::may_record(
            r.state,
            r.owner.as_ref().map(|o| o.as_str()),
            outcome.state,
            sender,
        )
    });
    // Success confirmed again (a later query): fill in what was missing, keep the rest.
    let again = stored
        .as_ref()
        .is_some_and(|r| r.state == RefundState::Succeeded && outcome.state == r.state);
    if write && again {
        execute(
            tx,
            "UPDATE refunds SET trade_no = COALESCE(trade_no, $5),
                 total_refunded_fen = COALESCE(total_refunded_fen, $6)
             WHERE app_id = $1 AND env = $2 AND out_trade_no = $3 AND out_request_no = $4",
            &[
                &cx.app(),
                &cx.env(),
                &no.as_str(),
                &req.as_str(),
                &outcome.trade_no,
                &outcome.total_refunded.map(Money::fen),
            ],
        )
        .await?;
    } else if write {
        execute(
            tx,
            concat!(
                "UPDATE refunds SET state = $5, trade_no = COALESCE($6, trade_no),
                     total_refunded_fen = COALESCE($7, total_refunded_fen), detail = $8,
                     updated_at = ",
                beijing_now!(),
                " WHERE app_id = $1 AND env = $2 AND out_trade_no = $3 AND out_request_no = $4"
            ),
            &[
                &cx.app(),
                &cx.env(),
                &no.as_str(),
                &req.as_str(),
                &outcome.state.as_str(),
                &outcome.trade_no,
                &outcome.total_refunded.map(Money::fen),
                &outcome.detail,
            ],
        )
        .await?;
        if outcome.state == RefundState::Succeeded {
            mark_succeeded(tx, cx, no, req, outcome.succeeded_at.as_deref()).await?;
        }
    }
    let raised = match outcome.total_refunded {
        Some(total) => raise_refunded(tx, cx, no, total).await?,
        None => false,
    };
    if write && let Some(before) = stored.as_ref().map(|r| r.state) {
        emit_refund(tx, cx, targets, before, no, req).await?;
    }
    if write || raised {
        announce(tx, cx, no).await?;
    }
    let held = if write {
        Some(outcome.state)
    } else {
        stored.map(|r| r.state)
    };
    Ok((held, write || raised))
}

pub(super) async fn unsettled_refunds(tx: &impl GenericClient, cx: &Cx) -> Res<Vec<RefundRecord>> {
    // Everything not settled, so that a row whose state is no state is an error, not left out.
    all(
        tx,
        &format!(
            "SELECT {REFUND_COLUMNS} FROM refunds
             WHERE app_id = $1 AND env = $2 AND state NOT IN ('succeeded', 'failed')
             ORDER BY created_at, id"
        ),
        &[&cx.app(), &cx.env()],
        refund_row,
    )
    .await
}

pub(super) async fn refunded_besides(
    tx: &impl GenericClient,
    cx: &Cx,
    no: &OutTradeNo,
    except: &OutRequestNo,
) -> Res<Money> {
    let reported_fen = reported(tx, cx, no, false).await?;
    Ok(facts(tx, cx, no, except, reported_fen).await?.refunded())
}

pub(super) async fn refunds_succeeded_on(
    tx: &impl GenericClient,
    cx: &Cx,
    day: &str,
) -> Res<Vec<RefundRecord>> {
    all(
        tx,
        &format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE app_id = $1 AND env = $2
               AND state = 'succeeded'
               AND substr(COALESCE(succeeded_at, updated_at), 1, 10) = $3
             ORDER BY created_at, id"
        ),
        &[&cx.app(), &cx.env(), &day],
        refund_row,
    )
    .await
}
