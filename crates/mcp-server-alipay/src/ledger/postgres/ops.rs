//! Orders, their status, notifications, audit rows and approvals: each function runs inside the
//! caller's transaction (READ COMMITTED). The money decisions are `crate::domain`'s; these load the
//! facts and store what was decided, as `sqlite/ops.rs` does, with row locks where SQLite had its
//! single writer: a call that reads an order's state to decide what to write locks the order's row
//! first (`FOR UPDATE`). Every query names the handle's scope (`$1` app, `$2` environment).

use alipay_openapi::{Money, TradeStatus};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::Cx;
use super::outbox::emit;
use super::refunds::{emit_refund, find_refund, mark_succeeded, raise_refunded};
use super::rows::{
    APPROVAL_COLUMNS, NOTIFICATION_COLUMNS, ORDER_COLUMNS, Res, Tx, all, approval_row, at, execute,
    fail, first, notification_row, order_row,
};
use crate::domain::notify::{self, Incoming, NotifyVerdict, OrderFacts};
use crate::domain::order::progress;
use crate::domain::outbox::{EventKind, TargetKind};
use crate::domain::refund;
use crate::domain::{OutTradeNo, RefundState, StatusSource};
use crate::ledger::events::NewEvent;
use crate::ledger::{
    ApprovalRecord, ApprovalStatus, AuditRow, CreateOrder, LedgerErrorKind, NewOrder,
    NotificationRecord, NotifyApply, OrderFilter, OrderRecord, ReceivedNotification, StatusFilter,
    StatusUpdate,
};

/// Longest reason kept for a refused notification (a 1 MB forgery must not fill the disk).
pub(super) const MAX_REASON: usize = 500;
/// Longest notify id or order number kept for a refused notification.
const MAX_NAME: usize = 128;

/// Whether a committed call changed an order's state (so its subscribers must hear).
pub(super) type Changed = bool;

/// Tell every listener on the store, at commit, that the order changed (nothing if it rolls back).
pub(super) async fn announce(tx: &Tx<'_>, cx: &Cx, no: &OutTradeNo) -> Res<()> {
    execute(
        tx,
        "SELECT pg_notify($1, $2)",
        &[&cx.channel.as_str(), &no.as_str()],
    )
    .await?;
    Ok(())
}

pub(super) async fn find_order(
    tx: &impl GenericClient,
    cx: &Cx,
    no: &OutTradeNo,
) -> Res<Option<OrderRecord>> {
    first(
        tx,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE app_id = $1 AND env = $2 AND out_trade_no = $3"
        ),
        &[&cx.app(), &cx.env(), &no.as_str()],
        order_row,
    )
    .await
}

/// The order, its row locked until the transaction ends: writers deciding on it go one at a time.
pub(super) async fn lock_order(tx: &Tx<'_>, cx: &Cx, no: &OutTradeNo) -> Res<Option<OrderRecord>> {
    first(
        tx,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE app_id = $1 AND env = $2 AND out_trade_no = $3
             FOR UPDATE"
        ),
        &[&cx.app(), &cx.env(), &no.as_str()],
        order_row,
    )
    .await
}

/// Apply a status inside the caller's transaction, with the event it is (if any): (status
/// changed, order changed at all).
pub(super) async fn apply_status(
    tx: &Tx<'_>,
    cx: &Cx,
    targets: &[TargetKind],
    no: &OutTradeNo,
    update: &StatusUpdate,
) -> Res<(bool, Changed)> {
    let before = lock_order(tx, cx, no).await?.and_then(|o| o.trade_status);
    // The bill proves a payment; it never moves a trade the ledger knows further along back.
    if update.source == StatusSource::Bill
        && progress(before.as_ref()) >= progress(Some(&update.trade_status))
    {
        return Ok((false, false));
    }
    let (status, source) = (update.trade_status.as_str(), update.source.as_str());
    let changed = execute(
        tx,
        concat!(
            "UPDATE orders SET trade_status = $4, trade_no = COALESCE($5, trade_no),
                 status_source = $6, status_at = ",
            beijing_now!(),
            " WHERE app_id = $1 AND env = $2 AND out_trade_no = $3
               AND (trade_status IS DISTINCT FROM $4
                    OR (trade_no IS NULL AND $5::text IS NOT NULL))"
        ),
        &[
            &cx.app(),
            &cx.env(),
            &no.as_str(),
            &status,
            &update.trade_no,
            &source,
        ],
    )
    .await?
        > 0;
    let raised = match update.refunded {
        Some(refunded) => raise_refunded(tx, cx, no, refunded).await?,
        None => false,
    };
    let paid_now = matches!(
        update.trade_status,
        TradeStatus::TradeSuccess | TradeStatus::TradeFinished
    );
    let becomes_paid = changed && progress(before.as_ref()) < 2;
    if paid_now && (update.paid_at.is_some() || becomes_paid) {
        // The first word of the payment's time is kept; later sources do not move it, and a
        // status repeated later (a partial refund's) is no payment time.
        execute(
            tx,
            concat!(
                "UPDATE orders SET paid_at = COALESCE(paid_at, $4::text, ",
                beijing_now!(),
                ") WHERE app_id = $1 AND env = $2 AND out_trade_no = $3"
            ),
            &[&cx.app(), &cx.env(), &no.as_str(), &update.paid_at],
        )
        .await?;
    }
    if changed {
        execute(
            tx,
            concat!(
                "INSERT INTO status_events (app_id, env, out_trade_no, trade_status, source, at)
                 VALUES ($1, $2, $3, $4, $5, ",
                beijing_now!(),
                ")"
            ),
            &[&cx.app(), &cx.env(), &no.as_str(), &status, &source],
        )
        .await?;
        if let Some(order) = find_order(tx, cx, no).await?
            && let Some(event) = NewEvent::of_status(before.as_ref(), &order, update)
        {
            emit(tx, cx, targets, &event).await?;
        }
    }
    if changed || raised {
        announce(tx, cx, no).await?;
    }
    Ok((changed, changed || raised))
}

pub(super) async fn create_order(
    tx: &impl GenericClient,
    cx: &Cx,
    order: &NewOrder,
) -> Res<CreateOrder> {
    // One statement writes (the order, and its audit row when given), so it needs no
    // transaction around it. A racing twin's insert makes this one wait for its commit, then do
    // nothing (and the audit insert, which reads the rows `created` returned, writes none); the
    // select after it (a new statement) sees the winner's row.
    let insert = format!(
        "INSERT INTO orders (app_id, env, out_trade_no, kind, amount_fen, title, link,
             created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, {}, $8)
         ON CONFLICT (app_id, out_trade_no) DO NOTHING
         RETURNING {ORDER_COLUMNS}",
        beijing_now!()
    );
    let base: [&(dyn ToSql + Sync); 8] = [
        &cx.app(),
        &cx.env(),
        &order.out_trade_no.as_str(),
        &order.kind.as_str(),
        &order.amount.fen(),
        &order.title,
        &order.link,
        &order.expires_at,
    ];
    let created = match &order.audit {
        None => first(tx, &insert, &base, order_row).await?,
        Some(row) => {
            let sql = format!(
                "WITH created AS ({insert}),
                 audited AS (
                     INSERT INTO audit (app_id, env, at, tool, arguments, decision, outcome)
                     SELECT $1, $2, created_at, $9, $10, $11, $12 FROM created)
                 SELECT {ORDER_COLUMNS} FROM created"
            );
            let mut params = base.to_vec();
            params.extend_from_slice(&[
                &row.tool as &(dyn ToSql + Sync),
                &row.arguments,
                &row.decision,
                &row.outcome,
            ]);
            first(tx, &sql, &params, order_row).await?
        }
    };
    match created {
        Some(created) => Ok(CreateOrder::Created(created)),
        None => taken(tx, cx, &order.out_trade_no).await,
    }
}

/// A number an insert found taken: the order that holds it, or, when the order is another
/// environment's (the number is the key of the whole store), a conflict.
pub(super) async fn taken(tx: &impl GenericClient, cx: &Cx, no: &OutTradeNo) -> Res<CreateOrder> {
    match find_order(tx, cx, no).await? {
        Some(existing) => Ok(CreateOrder::Existing(existing)),
        None => Err(fail(
            LedgerErrorKind::Conflict,
            format!("order number {no} is taken in this store by another environment"),
        )),
    }
}

pub(super) async fn update_status(
    tx: &Tx<'_>,
    cx: &Cx,
    targets: &[TargetKind],
    no: &OutTradeNo,
    update: &StatusUpdate,
) -> Res<(bool, Changed)> {
    apply_status(tx, cx, targets, no, update).await
}

pub(super) async fn list_orders(
    tx: &impl GenericClient,
    cx: &Cx,
    filter: &OrderFilter,
) -> Res<Vec<OrderRecord>> {
    let limit = filter.limit.clamp(1, 500) as i64;
    let (mode, status): (i32, Option<&str>) = match &filter.status {
        None => (0, None),
        Some(StatusFilter::NotCreated) => (1, None),
        Some(StatusFilter::Is(status)) => (2, Some(status.as_str())),
    };
    all(
        tx,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE app_id = $1 AND env = $2
               AND ($3 = 0 OR ($3 = 1 AND trade_status IS NULL) OR ($3 = 2 AND trade_status = $4))
               AND ($5::text IS NULL OR starts_with(created_at, $5::text))
             ORDER BY created_at DESC, id DESC LIMIT $6"
        ),
        &[&cx.app(), &cx.env(), &mode, &status, &filter.day, &limit],
        order_row,
    )
    .await
}

pub(super) async fn paid_on(tx: &impl GenericClient, cx: &Cx, day: &str) -> Res<Vec<OrderRecord>> {
    all(
        tx,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE app_id = $1 AND env = $2
               AND substr(COALESCE(paid_at, CASE WHEN trade_status IN ('TRADE_SUCCESS', 'TRADE_FINISHED')
                   THEN status_at END), 1, 10) = $3
             ORDER BY created_at, id"
        ),
        &[&cx.app(), &cx.env(), &day],
        order_row,
    )
    .await
}

/// Why a notification was not recorded: decided (Duplicate, ReusedId, Stale), or lost to another
/// writer recording the same id for another order between the look-up and the insert (the caller
/// rolls back and decides again, and then finds it).
pub(super) enum Notified {
    Decided(NotifyApply),
    Raced,
}

pub(super) async fn apply_notification(
    tx: &Tx<'_>,
    cx: &Cx,
    targets: &[TargetKind],
    n: &ReceivedNotification,
) -> Res<Notified> {
    let no = &n.out_trade_no;
    // The order's row first: two deliveries of one notification, or of two about one order, go
    // one at a time, so the rank check below is never a lost update.
    let order = lock_order(tx, cx, no).await?.ok_or_else(|| {
        fail(
            LedgerErrorKind::Conflict,
            format!(
                "a notification for order {no}, which is no order of {}",
                cx.scope
            ),
        )
    })?;
    let previous: Option<String> = first(
        tx,
        "SELECT content FROM notifications
         WHERE app_id = $1 AND env = $2 AND notify_id = $3 AND verdict = 'accepted'
         ORDER BY id LIMIT 1",
        &[&cx.app(), &cx.env(), &n.notify_id],
        |r| at(r, 0),
    )
    .await?;
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
        NotifyVerdict::Duplicate => return Ok(Notified::Decided(NotifyApply::Duplicate)),
        NotifyVerdict::ReusedId => return Ok(Notified::Decided(NotifyApply::ReusedId)),
        NotifyVerdict::Stale { incoming, known } => {
            return Ok(Notified::Decided(NotifyApply::Stale { incoming, known }));
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
        apply_status(tx, cx, targets, no, &update).await?;
    }
    // A refund's notification settles that refund, so it is not counted twice (once in Alipay's
    // reported total, once as still in flight). One already confirmed keeps its record.
    if let Some(req) = &n.refund_request_no
        && let Some(r) = find_refund(tx, cx, no, req, true).await?
        && r.state != RefundState::Succeeded
        && refund::may_record(
            r.state,
            r.owner.as_ref().map(|o| o.as_str()),
            RefundState::Succeeded,
            None,
        )
    {
        execute(
            tx,
            concat!(
                "UPDATE refunds SET state = 'succeeded',
                     total_refunded_fen = COALESCE(total_refunded_fen, $5),
                     detail = 'confirmed by notification', updated_at = ",
                beijing_now!(),
                " WHERE app_id = $1 AND env = $2 AND out_trade_no = $3 AND out_request_no = $4"
            ),
            &[
                &cx.app(),
                &cx.env(),
                &no.as_str(),
                &req.as_str(),
                &n.refunded.map(Money::fen),
            ],
        )
        .await?;
        mark_succeeded(tx, cx, no, req, None).await?;
        emit_refund(tx, cx, targets, r.state, no, req).await?;
    }
    if let Some(order) = find_order(tx, cx, no).await? {
        let event = NewEvent {
            kind: EventKind::AlipayNotification,
            order: &order,
            refund: None,
            notification: Some((&n.notify_id, &n.raw)),
        };
        emit(tx, cx, targets, &event).await?;
    }
    let inserted = first(
        tx,
        concat!(
            "INSERT INTO notifications (app_id, env, notify_id, out_trade_no, trade_status,
                 verdict, content, received_at)
             VALUES ($1, $2, $3, $4, $5, 'accepted', $6, ",
            beijing_now!(),
            ")
             ON CONFLICT (app_id, env, notify_id) WHERE verdict = 'accepted' DO NOTHING
             RETURNING id"
        ),
        &[
            &cx.app(),
            &cx.env(),
            &n.notify_id,
            &no.as_str(),
            &n.trade_status.as_str(),
            &n.content,
        ],
        |_| Ok(()),
    )
    .await?;
    if inserted.is_none() {
        return Ok(Notified::Raced);
    }
    announce(tx, cx, no).await?;
    Ok(Notified::Decided(NotifyApply::Applied))
}

/// At most `max` characters, and no NUL (which PostgreSQL's text cannot hold): what a forged
/// notification names is kept readable, never refused for its bytes.
fn clip(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect()
}

pub(super) async fn reject_notification(
    tx: &Tx<'_>,
    cx: &Cx,
    notify_id: Option<&str>,
    out_trade_no: Option<&str>,
    reason: &str,
) -> Res<()> {
    execute(
        tx,
        concat!(
            "INSERT INTO notifications (app_id, env, notify_id, out_trade_no, verdict, reason,
                 received_at)
             VALUES ($1, $2, $3, $4, 'rejected', $5, ",
            beijing_now!(),
            ")"
        ),
        &[
            &cx.app(),
            &cx.env(),
            &notify_id.map(|t| clip(t, MAX_NAME)),
            &out_trade_no.map(|t| clip(t, MAX_NAME)),
            &clip(reason, MAX_REASON),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn notifications(
    tx: &impl GenericClient,
    cx: &Cx,
    no: &OutTradeNo,
) -> Res<Vec<NotificationRecord>> {
    all(
        tx,
        &format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE app_id = $1 AND env = $2 AND out_trade_no = $3 ORDER BY id"
        ),
        &[&cx.app(), &cx.env(), &no.as_str()],
        notification_row,
    )
    .await
}

pub(super) async fn audit(tx: &impl GenericClient, cx: &Cx, row: &AuditRow) -> Res<()> {
    execute(
        tx,
        concat!(
            "INSERT INTO audit (app_id, env, at, tool, arguments, decision, outcome)
             VALUES ($1, $2, ",
            beijing_now!(),
            ", $3, $4, $5, $6)"
        ),
        &[
            &cx.app(),
            &cx.env(),
            &row.tool,
            &row.arguments,
            &row.decision,
            &row.outcome,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn put_approval(tx: &Tx<'_>, cx: &Cx, a: &ApprovalRecord) -> Res<()> {
    // One link per refund at a time: the order's refund-decision lock, as `begin_refund` takes.
    super::refunds::lock_decisions(tx, cx, &a.out_trade_no).await?;
    execute(
        tx,
        concat!(
            "UPDATE approvals SET status = 'replaced', decided_at = ",
            beijing_now!(),
            " WHERE app_id = $1 AND env = $2 AND out_trade_no = $3 AND out_request_no = $4
               AND status = 'open'"
        ),
        &[
            &cx.app(),
            &cx.env(),
            &a.out_trade_no.as_str(),
            &a.out_request_no.as_str(),
        ],
    )
    .await?;
    execute(
        tx,
        concat!(
            "INSERT INTO approvals (app_id, env, token_hash, out_trade_no, out_request_no, csrf,
                 paid_fen, refunded_fen, expires_at, status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', ",
            beijing_now!(),
            ")"
        ),
        &[
            &cx.app(),
            &cx.env(),
            &a.token_hash,
            &a.out_trade_no.as_str(),
            &a.out_request_no.as_str(),
            &a.csrf,
            &a.paid.fen(),
            &a.refunded.fen(),
            &a.expires_at,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn approval(
    tx: &impl GenericClient,
    cx: &Cx,
    token_hash: &str,
) -> Res<Option<ApprovalRecord>> {
    first(
        tx,
        &format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals
             WHERE app_id = $1 AND env = $2 AND token_hash = $3"
        ),
        &[&cx.app(), &cx.env(), &token_hash],
        approval_row,
    )
    .await
}

pub(super) async fn close_approval(
    tx: &Tx<'_>,
    cx: &Cx,
    token_hash: &str,
    status: ApprovalStatus,
) -> Res<bool> {
    // One conditional update: of two decisions at once, the second finds it no longer open.
    let changed = execute(
        tx,
        concat!(
            "UPDATE approvals SET status = $4, decided_at = ",
            beijing_now!(),
            " WHERE app_id = $1 AND env = $2 AND token_hash = $3 AND status = 'open'"
        ),
        &[&cx.app(), &cx.env(), &token_hash, &status.as_str()],
    )
    .await?;
    Ok(changed > 0)
}

pub(super) async fn open_approvals(tx: &impl GenericClient, cx: &Cx) -> Res<Vec<ApprovalRecord>> {
    all(
        tx,
        &format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE app_id = $1 AND env = $2 AND status = 'open'
             ORDER BY created_at, id"
        ),
        &[&cx.app(), &cx.env()],
        approval_row,
    )
    .await
}
