//! The ledger's calls as blocking functions over one connection, each one transaction. The money
//! decisions are `crate::domain`'s; these load the facts and store what was decided. Every query
//! names the handle's scope (`?1` app, `?2` environment).

use alipay_openapi::time::timestamp_now;
use alipay_openapi::{Money, TradeStatus};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::outbox::emit;
use super::rows::{
    Res, all, amount, approval_row, fail, first, money, notification_row, order_row, refund_row,
    state, sum,
};
use crate::domain::notify::{self, Incoming, NotifyVerdict, OrderFacts};
use crate::domain::outbox::{self as events, EventKind, TargetKind};
use crate::domain::refund::{self, ApprovalStep, BeginDecision, PriorRefund, RefundFacts};
use crate::domain::{AppScope, OutRequestNo, OutTradeNo, RefundState, StatusSource};
use crate::ledger::events::NewEvent;
use crate::ledger::{
    ApprovalRecord, ApprovalStatus, AuditRow, CreateOrder, LedgerErrorKind, NewOrder, NewRefund,
    NotificationRecord, NotifyApply, OrderFilter, OrderRecord, ReceivedNotification, RefundBegin,
    RefundLimits, RefundOutcome, RefundRecord, StatusFilter, StatusUpdate,
};

/// Longest reason kept for a refused notification (a 1 MB forgery must not fill the disk).
pub(super) const MAX_REASON: usize = 500;
/// Longest notify id or order number kept for a refused notification.
const MAX_NAME: usize = 128;

/// Whether a committed call changed an order's state (so its subscribers must hear).
pub(super) type Changed = bool;

pub(super) fn immediate(conn: &mut Connection) -> Res<Transaction<'_>> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

fn find_order(conn: &Connection, s: &AppScope, no: &OutTradeNo) -> Res<Option<OrderRecord>> {
    first(
        conn,
        "SELECT * FROM orders WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3",
        params![s.app_id, s.env.as_str(), no.as_str()],
        order_row,
    )
}

fn find_refund(
    conn: &Connection,
    s: &AppScope,
    no: &OutTradeNo,
    req: &OutRequestNo,
) -> Res<Option<RefundRecord>> {
    first(
        conn,
        "SELECT * FROM refunds
         WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3 AND out_request_no = ?4",
        params![s.app_id, s.env.as_str(), no.as_str(), req.as_str()],
        refund_row,
    )
}

fn refunds_of(conn: &Connection, s: &AppScope, no: &OutTradeNo) -> Res<Vec<RefundRecord>> {
    all(
        conn,
        "SELECT * FROM refunds WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3
         ORDER BY created_at, out_request_no",
        params![s.app_id, s.env.as_str(), no.as_str()],
        refund_row,
    )
}

/// The trade's refunds besides `except`, and Alipay's last reported total: every row read (a
/// corrupt one is an error, never left out of a sum).
fn facts(
    conn: &Connection,
    s: &AppScope,
    no: &OutTradeNo,
    except: &OutRequestNo,
) -> Res<RefundFacts> {
    let mut facts = RefundFacts::default();
    for r in refunds_of(conn, s, no)? {
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
    let reported: Option<i64> = first(
        conn,
        "SELECT refunded_fen FROM orders WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3",
        params![s.app_id, s.env.as_str(), no.as_str()],
        |r| Ok(r.get(0)?),
    )?;
    facts.reported = money(reported.unwrap_or(0), format_args!("order {no} refunded"))?;
    Ok(facts)
}

/// What the scope's refunds begun on `day` that may have moved money add up to.
pub(super) fn day_used(conn: &Connection, s: &AppScope, day: &str) -> Res<Money> {
    day_used_besides(conn, s, day, None)
}

/// As [`day_used`], leaving out the refund being decided (one awaiting approval already counts).
fn day_used_besides(
    conn: &Connection,
    s: &AppScope,
    day: &str,
    except: Option<(&OutTradeNo, &OutRequestNo)>,
) -> Res<Money> {
    let rows = all(
        conn,
        "SELECT out_trade_no, out_request_no, state, amount_fen FROM refunds
         WHERE app_id = ?1 AND env = ?2 AND day = ?3",
        params![s.app_id, s.env.as_str(), day],
        |r| {
            let (no, req) = (r.get::<_, String>(0)?, r.get::<_, String>(1)?);
            let what = format!("refund {req} of order {no}");
            let excepted = except.is_some_and(|(n, q)| n.as_str() == no && q.as_str() == req);
            Ok((
                state(&r.get::<_, String>(2)?, &what)?,
                amount(r.get(3)?, &what)?,
                excepted,
            ))
        },
    )?;
    rows.into_iter()
        .filter(|(st, _, excepted)| st.may_have_moved_money() && !excepted)
        .try_fold(Money::ZERO, |used, (_, a, _)| {
            sum(used, a.into(), format_args!("refunds of {day}"))
        })
}

/// Alipay's cumulative refund only grows: keep the largest reported. True when it grew.
fn raise_refunded(conn: &Connection, s: &AppScope, no: &OutTradeNo, refunded: Money) -> Res<bool> {
    let raised = conn
        .prepare_cached(
            "UPDATE orders SET refunded_fen = MAX(refunded_fen, ?4)
             WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3 AND refunded_fen < ?4",
        )?
        .execute(params![
            s.app_id,
            s.env.as_str(),
            no.as_str(),
            refunded.fen()
        ])?;
    Ok(raised > 0)
}

/// Apply a status inside the caller's transaction, with the event it is (if any): (status
/// changed, order changed at all).
fn apply_status(
    conn: &Connection,
    s: &AppScope,
    targets: &[TargetKind],
    no: &OutTradeNo,
    update: &StatusUpdate,
) -> Res<(bool, Changed)> {
    let before = find_order(conn, s, no)?.and_then(|o| o.trade_status);
    // The bill proves a payment; it never moves a trade the ledger knows further along back.
    if update.source == StatusSource::Bill
        && crate::domain::order::progress(before.as_ref())
            >= crate::domain::order::progress(Some(&update.trade_status))
    {
        return Ok((false, false));
    }
    let now = timestamp_now();
    let (status, source) = (update.trade_status.as_str(), update.source.as_str());
    let changed =
        conn.prepare_cached(
            "UPDATE orders SET trade_status = ?4, trade_no = COALESCE(?5, trade_no),
                 status_source = ?6, status_at = ?7
             WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3
               AND (trade_status IS NOT ?4 OR (trade_no IS NULL AND ?5 IS NOT NULL))",
        )?
        .execute(params![
            s.app_id,
            s.env.as_str(),
            no.as_str(),
            status,
            update.trade_no,
            source,
            now
        ])? > 0;
    let raised = match update.refunded {
        Some(refunded) => raise_refunded(conn, s, no, refunded)?,
        None => false,
    };
    let paid_now = matches!(
        update.trade_status,
        TradeStatus::TradeSuccess | TradeStatus::TradeFinished
    );
    let becomes_paid = changed && crate::domain::order::progress(before.as_ref()) < 2;
    if paid_now && (update.paid_at.is_some() || becomes_paid) {
        // The first word of the payment's time is kept; later sources do not move it, and a
        // status repeated later (a partial refund's) is no payment time.
        conn.prepare_cached(
            "UPDATE orders SET paid_at = COALESCE(paid_at, ?4)
             WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3",
        )?
        .execute(params![
            s.app_id,
            s.env.as_str(),
            no.as_str(),
            update.paid_at.as_deref().unwrap_or(&now)
        ])?;
    }
    if changed {
        conn.prepare_cached(
            "INSERT INTO status_events (app_id, env, out_trade_no, trade_status, source, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            s.app_id,
            s.env.as_str(),
            no.as_str(),
            status,
            source,
            now
        ])?;
        if let Some(order) = find_order(conn, s, no)?
            && let Some(event) = NewEvent::of_status(before.as_ref(), &order, update)
        {
            emit(conn, s, targets, &event)?;
        }
    }
    Ok((changed, changed || raised))
}

/// Record a refund's event (if its settlement is one) inside the caller's transaction.
fn emit_refund(
    conn: &Connection,
    s: &AppScope,
    targets: &[TargetKind],
    before: RefundState,
    no: &OutTradeNo,
    req: &OutRequestNo,
) -> Res<()> {
    let (Some(order), Some(refund)) = (find_order(conn, s, no)?, find_refund(conn, s, no, req)?)
    else {
        return Ok(());
    };
    if let Some(kind) = events::refund_event(before, refund.state) {
        let event = NewEvent {
            kind,
            order: &order,
            refund: Some(&refund),
            notification: None,
        };
        emit(conn, s, targets, &event)?;
    }
    Ok(())
}

/// When a refund succeeded: the first word is kept (the bill's time, else now).
fn mark_succeeded(
    conn: &Connection,
    s: &AppScope,
    no: &OutTradeNo,
    req: &OutRequestNo,
    at: Option<&str>,
) -> Res<()> {
    conn.prepare_cached(
        "UPDATE refunds SET succeeded_at = COALESCE(succeeded_at, ?5)
         WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3 AND out_request_no = ?4",
    )?
    .execute(params![
        s.app_id,
        s.env.as_str(),
        no.as_str(),
        req.as_str(),
        at.map_or_else(timestamp_now, str::to_string)
    ])?;
    Ok(())
}

pub(super) fn create_order(
    conn: &mut Connection,
    s: &AppScope,
    order: &NewOrder,
) -> Res<CreateOrder> {
    let tx = immediate(conn)?;
    if let Some(existing) = find_order(&tx, s, &order.out_trade_no)? {
        return Ok(CreateOrder::Existing(existing));
    }
    let now = timestamp_now();
    tx.execute(
        "INSERT INTO orders (app_id, env, out_trade_no, kind, amount_fen, title, link, created_at,
             expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            s.app_id,
            s.env.as_str(),
            order.out_trade_no.as_str(),
            order.kind.as_str(),
            order.amount.fen(),
            order.title,
            order.link,
            now,
            order.expires_at
        ],
    )?;
    if let Some(row) = &order.audit {
        audit_at(&tx, s, &now, row)?;
    }
    tx.commit()?;
    Ok(CreateOrder::Created(OrderRecord {
        out_trade_no: order.out_trade_no.clone(),
        kind: order.kind,
        total_amount: order.amount,
        title: order.title.clone(),
        link: order.link.clone(),
        created_at: now,
        trade_status: None,
        trade_no: None,
        status_source: None,
        status_at: None,
        expires_at: order.expires_at.clone(),
        refunded_amount: Money::ZERO,
        paid_at: None,
    }))
}

pub(super) fn order(conn: &Connection, s: &AppScope, no: &OutTradeNo) -> Res<Option<OrderRecord>> {
    find_order(conn, s, no)
}

pub(super) fn update_status(
    conn: &mut Connection,
    s: &AppScope,
    targets: &[TargetKind],
    no: &OutTradeNo,
    update: &StatusUpdate,
) -> Res<(bool, Changed)> {
    // Most updates repeat what is known: a read answers them, without taking the write lock.
    if update.changes_nothing_in(find_order(conn, s, no)?.as_ref()) {
        return Ok((false, false));
    }
    let tx = immediate(conn)?;
    let changed = apply_status(&tx, s, targets, no, update)?;
    tx.commit()?;
    Ok(changed)
}

pub(super) fn list_orders(
    conn: &Connection,
    s: &AppScope,
    filter: &OrderFilter,
) -> Res<Vec<OrderRecord>> {
    let limit = filter.limit.clamp(1, 500) as i64;
    let (mode, status) = match &filter.status {
        None => (0, None),
        Some(StatusFilter::NotCreated) => (1, None),
        Some(StatusFilter::Is(status)) => (2, Some(status.as_str())),
    };
    // A prefix match on the day: LIKE's own wildcards in it match only themselves.
    let day = filter.day.as_ref().map(|d| {
        let escaped = d
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("{escaped}%")
    });
    all(
        conn,
        "SELECT * FROM orders WHERE app_id = ?1 AND env = ?2
           AND (?3 = 0 OR (?3 = 1 AND trade_status IS NULL) OR (?3 = 2 AND trade_status = ?4))
           AND (?5 IS NULL OR created_at LIKE ?5 ESCAPE '\\')
         ORDER BY created_at DESC, rowid DESC LIMIT ?6",
        params![s.app_id, s.env.as_str(), mode, status, day, limit],
        order_row,
    )
}

pub(super) fn begin_refund(
    conn: &mut Connection,
    s: &AppScope,
    refund: &NewRefund,
    limits: &RefundLimits,
) -> Res<(RefundBegin, Changed)> {
    // IMMEDIATE: the write lock is taken before the facts are read, so no other writer (in this
    // process or another) can change them before the decision is recorded.
    let tx = immediate(conn)?;
    let (no, req) = (&refund.out_trade_no, &refund.out_request_no);
    let prior = find_refund(&tx, s, no, req)?;
    let facts = facts(&tx, s, no, req)?;
    let used = day_used_besides(&tx, s, &limits.day, Some((no, req)))?;
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
    let state = if refund.step == ApprovalStep::Ask {
        RefundState::AwaitingApproval
    } else {
        RefundState::Pending
    };
    let now = timestamp_now();
    let (app, env, no_s, req_s) = (&s.app_id, s.env.as_str(), no.as_str(), req.as_str());
    let prior_record = || {
        prior.clone().ok_or_else(|| {
            fail(
                LedgerErrorKind::Corrupt,
                "a decision on a refund that is not there",
            )
        })
    };
    let begin = match decision {
        BeginDecision::Conflict => return Ok((RefundBegin::Conflict(prior_record()?), false)),
        BeginDecision::Replay => return Ok((RefundBegin::Replay(prior_record()?), false)),
        BeginDecision::Over(over) => return Ok((RefundBegin::Over(over), false)),
        BeginDecision::StillAwaiting => {
            return Ok((RefundBegin::StillAwaiting(prior_record()?), false));
        }
        BeginDecision::Retry => {
            let prior = prior_record()?;
            tx.execute(
                "UPDATE refunds SET owner = ?5, updated_at = ?6
                 WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3 AND out_request_no = ?4",
                params![app, env, no_s, req_s, refund.owner.as_str(), now],
            )?;
            RefundBegin::Retry(prior)
        }
        BeginDecision::Fresh if prior.is_some() => {
            tx.execute(
                "UPDATE refunds SET state = ?9, reason = ?5, day = ?6, updated_at = ?7,
                     detail = NULL, owner = ?8
                 WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3 AND out_request_no = ?4",
                params![
                    app,
                    env,
                    no_s,
                    req_s,
                    refund.reason,
                    limits.day,
                    now,
                    refund.owner.as_str(),
                    state.as_str()
                ],
            )?;
            RefundBegin::Fresh
        }
        BeginDecision::Fresh => {
            tx.execute(
                "INSERT INTO refunds (app_id, env, out_trade_no, out_request_no, amount_fen, reason,
                     state, day, created_at, updated_at, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?10, ?7, ?8, ?8, ?9)",
                params![
                    app,
                    env,
                    no_s,
                    req_s,
                    refund.amount.fen(),
                    refund.reason,
                    limits.day,
                    now,
                    refund.owner.as_str(),
                    state.as_str()
                ],
            )?;
            RefundBegin::Fresh
        }
    };
    tx.commit()?;
    Ok((begin, true))
}

pub(super) fn finish_refund(
    conn: &mut Connection,
    s: &AppScope,
    targets: &[TargetKind],
    no: &OutTradeNo,
    req: &OutRequestNo,
    outcome: &RefundOutcome,
    sender: Option<&str>,
) -> Res<(Option<RefundState>, Changed)> {
    let tx = immediate(conn)?;
    let stored = find_refund(&tx, s, no, req)?;
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
        tx.execute(
            "UPDATE refunds SET trade_no = COALESCE(trade_no, ?5),
                 total_refunded_fen = COALESCE(total_refunded_fen, ?6)
             WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3 AND out_request_no = ?4",
            params![
                s.app_id,
                s.env.as_str(),
                no.as_str(),
                req.as_str(),
                outcome.trade_no,
                outcome.total_refunded.map(Money::fen)
            ],
        )?;
    } else if write {
        tx.execute(
            "UPDATE refunds SET state = ?5, trade_no = COALESCE(?6, trade_no),
                 total_refunded_fen = COALESCE(?7, total_refunded_fen), detail = ?8, updated_at = ?9
             WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3 AND out_request_no = ?4",
            params![
                s.app_id,
                s.env.as_str(),
                no.as_str(),
                req.as_str(),
                outcome.state.as_str(),
                outcome.trade_no,
                outcome.total_refunded.map(Money::fen),
                outcome.detail,
                timestamp_now()
            ],
        )?;
        if outcome.state == RefundState::Succeeded {
            mark_succeeded(&tx, s, no, req, outcome.succeeded_at.as_deref())?;
        }
    }
    let raised = match outcome.total_refunded {
        Some(total) => raise_refunded(&tx, s, no, total)?,
        None => false,
    };
    if write && let Some(before) = stored.as_ref().map(|r| r.state) {
        emit_refund(&tx, s, targets, before, no, req)?;
    }
    tx.commit()?;
    let held = if write {
        Some(outcome.state)
    } else {
        stored.map(|r| r.state)
    };
    Ok((held, write || raised))
}

pub(super) fn refund(
    conn: &Connection,
    s: &AppScope,
    no: &OutTradeNo,
    req: &OutRequestNo,
) -> Res<Option<RefundRecord>> {
    find_refund(conn, s, no, req)
}

pub(super) fn refunds(conn: &Connection, s: &AppScope, no: &OutTradeNo) -> Res<Vec<RefundRecord>> {
    refunds_of(conn, s, no)
}

pub(super) fn unsettled_refunds(conn: &Connection, s: &AppScope) -> Res<Vec<RefundRecord>> {
    // Everything not settled, so that a row whose state is no state is an error, not left out.
    all(
        conn,
        "SELECT * FROM refunds WHERE app_id = ?1 AND env = ?2 AND state NOT IN ('succeeded', 'failed')
         ORDER BY created_at, rowid",
        params![s.app_id, s.env.as_str()],
        refund_row,
    )
}

pub(super) fn refunded_besides(
    conn: &Connection,
    s: &AppScope,
    no: &OutTradeNo,
    except: &OutRequestNo,
) -> Res<Money> {
    Ok(facts(conn, s, no, except)?.refunded())
}

pub(super) fn paid_on(conn: &Connection, s: &AppScope, day: &str) -> Res<Vec<OrderRecord>> {
    all(
        conn,
        "SELECT * FROM orders WHERE app_id = ?1 AND env = ?2
           AND substr(COALESCE(paid_at, CASE WHEN trade_status IN ('TRADE_SUCCESS', 'TRADE_FINISHED')
               THEN status_at END), 1, 10) = ?3
         ORDER BY created_at, rowid",
        params![s.app_id, s.env.as_str(), day],
        order_row,
    )
}

pub(super) fn refunds_succeeded_on(
    conn: &Connection,
    s: &AppScope,
    day: &str,
) -> Res<Vec<RefundRecord>> {
    all(
        conn,
        "SELECT * FROM refunds WHERE app_id = ?1 AND env = ?2 AND state = 'succeeded'
           AND substr(COALESCE(succeeded_at, updated_at), 1, 10) = ?3
         ORDER BY created_at, rowid",
        params![s.app_id, s.env.as_str(), day],
        refund_row,
    )
}

pub(super) fn apply_notification(
    conn: &mut Connection,
    s: &AppScope,
    targets: &[TargetKind],
    n: &ReceivedNotification,
) -> Res<(NotifyApply, Changed)> {
    let tx = immediate(conn)?;
    let no = &n.out_trade_no;
    let previous: Option<String> = first(
        &tx,
        "SELECT content FROM notifications
         WHERE app_id = ?1 AND env = ?2 AND notify_id = ?3 AND verdict = 'accepted' ORDER BY id LIMIT 1",
        params![s.app_id, s.env.as_str(), n.notify_id],
        |r| Ok(r.get(0)?),
    )?;
    let order = find_order(&tx, s, no)?.ok_or_else(|| {
        fail(
            LedgerErrorKind::Conflict,
            format!("a notification for order {no}, which is no order of {s}"),
        )
    })?;
    let verdict = notify::verdict(
        previous.as_deref(),
        OrderFacts {
            status: order.trade_status.as_ref(),
            refunded: order.refunded_amount,
        },
        Incoming {
            content: &n.content,
            status: &n.trade_status,
            refunded: n.refunded,
        },
    );
    let apply_status_too = match verdict {
        NotifyVerdict::Duplicate => return Ok((NotifyApply::Duplicate, false)),
        NotifyVerdict::ReusedId => return Ok((NotifyApply::ReusedId, false)),
        NotifyVerdict::Stale { incoming, known } => {
            return Ok((NotifyApply::Stale { incoming, known }, false));
        }
        NotifyVerdict::Apply { apply_status } => apply_status,
    };
    if apply_status_too {
        let update = StatusUpdate {
            trade_status: n.trade_status.clone(),
            trade_no: n.trade_no.clone(),
            refunded: n.refunded,
            source: StatusSource::Notify,
            seen_at: n.seen_at.clone(),
            paid_at: n.paid_at.clone(),
        };
        apply_status(&tx, s, targets, no, &update)?;
    }
    // A refund's notification settles that refund, so it is not counted twice (once in Alipay's
    // reported total, once as still in flight). One already confirmed keeps its record.
    if let Some(req) = &n.refund_request_no
        && let Some(r) = find_refund(&tx, s, no, req)?
        && r.state != RefundState::Succeeded
        && refund::may_record(
            r.state,
            r.owner.as_ref().map(|o| o.as_str()),
            RefundState::Succeeded,
            None,
        )
    {
        tx.execute(
            "UPDATE refunds SET state = 'succeeded',
                 total_refunded_fen = COALESCE(total_refunded_fen, ?5),
                 detail = 'confirmed by notification', updated_at = ?6
             WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3 AND out_request_no = ?4",
            params![
                s.app_id,
                s.env.as_str(),
                no.as_str(),
                req.as_str(),
                n.refunded.map(Money::fen),
                timestamp_now()
            ],
        )?;
        mark_succeeded(&tx, s, no, req, None)?;
        emit_refund(&tx, s, targets, r.state, no, req)?;
    }
    if let Some(order) = find_order(&tx, s, no)? {
        let event = NewEvent {
            kind: EventKind::AlipayNotification,
            order: &order,
            refund: None,
            notification: Some((&n.notify_id, &n.raw)),
        };
        emit(&tx, s, targets, &event)?;
    }
    tx.execute(
        "INSERT INTO notifications (app_id, env, notify_id, out_trade_no, trade_status, verdict,
             content, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'accepted', ?6, ?7)",
        params![
            s.app_id,
            s.env.as_str(),
            n.notify_id,
            no.as_str(),
            n.trade_status.as_str(),
            n.content,
            timestamp_now()
        ],
    )?;
    tx.commit()?;
    Ok((NotifyApply::Applied, true))
}

pub(super) fn reject_notification(
    conn: &Connection,
    s: &AppScope,
    notify_id: Option<&str>,
    out_trade_no: Option<&str>,
    reason: &str,
) -> Res<()> {
    let reason: String = reason.chars().take(MAX_REASON).collect();
    let clip = |t: Option<&str>| t.map(|t| t.chars().take(MAX_NAME).collect::<String>());
    conn.prepare_cached(
        "INSERT INTO notifications (app_id, env, notify_id, out_trade_no, verdict, reason, received_at)
         VALUES (?1, ?2, ?3, ?4, 'rejected', ?5, ?6)",
    )?
    .execute(params![
        s.app_id,
        s.env.as_str(),
        clip(notify_id),
        clip(out_trade_no),
        reason,
        timestamp_now()
    ])?;
    Ok(())
}

pub(super) fn notifications(
    conn: &Connection,
    s: &AppScope,
    no: &OutTradeNo,
) -> Res<Vec<NotificationRecord>> {
    all(
        conn,
        "SELECT notify_id, out_trade_no, trade_status, verdict, reason, received_at
         FROM notifications WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3 ORDER BY id",
        params![s.app_id, s.env.as_str(), no.as_str()],
        notification_row,
    )
}

pub(super) fn audit(conn: &Connection, s: &AppScope, row: &AuditRow) -> Res<()> {
    audit_at(conn, s, &timestamp_now(), row)
}

/// An audit row stamped `at` (a new order's, with its creation time).
fn audit_at(conn: &Connection, s: &AppScope, at: &str, row: &AuditRow) -> Res<()> {
    conn.prepare_cached(
        "INSERT INTO audit (app_id, env, at, tool, arguments, decision, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        s.app_id,
        s.env.as_str(),
        at,
        row.tool,
        row.arguments,
        row.decision,
        row.outcome
    ])?;
    Ok(())
}

const APPROVAL_COLUMNS: &str =
    "token_hash, out_trade_no, out_request_no, csrf, paid_fen, refunded_fen,
     expires_at, status, created_at, decided_at";

pub(super) fn put_approval(conn: &mut Connection, s: &AppScope, a: &ApprovalRecord) -> Res<()> {
    let tx = immediate(conn)?;
    let now = timestamp_now();
    tx.execute(
        "UPDATE approvals SET status = 'replaced', decided_at = ?5
         WHERE app_id = ?1 AND env = ?2 AND out_trade_no = ?3 AND out_request_no = ?4
           AND status = 'open'",
        params![
            s.app_id,
            s.env.as_str(),
            a.out_trade_no.as_str(),
            a.out_request_no.as_str(),
            now
        ],
    )?;
    tx.execute(
        "INSERT INTO approvals (app_id, env, token_hash, out_trade_no, out_request_no, csrf,
             paid_fen, refunded_fen, expires_at, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'open', ?10)",
        params![
            s.app_id,
            s.env.as_str(),
            a.token_hash,
            a.out_trade_no.as_str(),
            a.out_request_no.as_str(),
            a.csrf,
            a.paid.fen(),
            a.refunded.fen(),
            a.expires_at,
            now
        ],
    )?;
    tx.commit()?;
    Ok(())
}

pub(super) fn approval(
    conn: &Connection,
    s: &AppScope,
    token_hash: &str,
) -> Res<Option<ApprovalRecord>> {
    first(
        conn,
        &format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE app_id = ?1 AND env = ?2 AND token_hash = ?3"
        ),
        params![s.app_id, s.env.as_str(), token_hash],
        approval_row,
    )
}

pub(super) fn close_approval(
    conn: &mut Connection,
    s: &AppScope,
    token_hash: &str,
    status: ApprovalStatus,
) -> Res<bool> {
    let tx = immediate(conn)?;
    let changed = tx.execute(
        "UPDATE approvals SET status = ?4, decided_at = ?5
         WHERE app_id = ?1 AND env = ?2 AND token_hash = ?3 AND status = 'open'",
        params![
            s.app_id,
            s.env.as_str(),
            token_hash,
            status.as_str(),
            timestamp_now()
        ],
    )?;
    tx.commit()?;
    Ok(changed > 0)
}

pub(super) fn open_approvals(conn: &Connection, s: &AppScope) -> Res<Vec<ApprovalRecord>> {
    all(
        conn,
        &format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE app_id = ?1 AND env = ?2 AND status = 'open'
             ORDER BY created_at, rowid"
        ),
        params![s.app_id, s.env.as_str()],
        approval_row,
    )
}
