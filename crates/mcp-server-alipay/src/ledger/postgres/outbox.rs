//! The outbox's rows, as `sqlite/outbox.rs` keeps them: events written inside the transaction that
//! records what they tell, once per order, kind and subject (the unique key), one delivery per
//! configured target, leases for the sender (`FOR UPDATE SKIP LOCKED`, so two senders never take
//! one delivery), and every attempt.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::Cx;
use super::ops::lock_order;
use super::rows::{ORDER_COLUMNS, Res, Tx, all, at, corrupt, execute, first, get, order_row};
use crate::domain::OutTradeNo;
use crate::domain::outbox::{DeliveryState, EventKind, Next, TargetKind};
use crate::ledger::events::{NewEvent, new_event_id, now_ms};
use crate::ledger::{
    AttemptResult, DeliveryRecord, DueDelivery, EventRecord, OrderRecord, RawForm, TargetHealth,
};

/// Longest error detail kept per attempt.
const MAX_DETAIL: usize = 300;

/// The configured targets' names, for `target = ANY($n)`.
fn names(targets: &[TargetKind]) -> Vec<&'static str> {
    targets.iter().map(|t| t.as_str()).collect()
}

/// Record `event` and its deliveries inside the caller's transaction, once per order, kind and
/// subject; nothing when no configured target receives it. True when it was new.
pub(super) async fn emit(
    tx: &Tx<'_>,
    cx: &Cx,
    targets: &[TargetKind],
    event: &NewEvent<'_>,
) -> Res<bool> {
    let receivers = event.receivers(targets);
    if receivers.is_empty() {
        return Ok(false);
    }
    let (order, subject, raw) = (event.order, event.subject(), event.raw());
    // The store's clock, as every other time it records.
    let occurred_at: String = first(tx, concat!("SELECT ", beijing_now!()), &[], |r| at(r, 0))
        .await?
        .ok_or_else(|| corrupt("the database has no time"))?;
    let data = event.data(&cx.scope, occurred_at);
    let (id, now) = (new_event_id(), now_ms());
    let inserted = execute(
        tx,
        "INSERT INTO events (id, app_id, env, out_trade_no, kind, subject, data, raw_type,
             raw_body, created_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (app_id, env, out_trade_no, kind, subject) DO NOTHING",
        &[
            &id,
            &cx.app(),
            &cx.env(),
            &order.out_trade_no.as_str(),
            &event.kind.as_str(),
            &subject,
            &data,
            &raw.map(|r| r.content_type.as_str()),
            &raw.map(|r| r.body.as_slice()),
            &now,
        ],
    )
    .await?
        > 0;
    if inserted {
        for target in receivers {
            execute(
                tx,
                "INSERT INTO deliveries (event_id, target, app_id, env, state, next_ms)
                 VALUES ($1, $2, $3, $4, 'pending', $5)",
                &[&id, &target.as_str(), &cx.app(), &cx.env(), &now],
            )
            .await?;
        }
    }
    Ok(inserted)
}

fn target(text: &str) -> Res<TargetKind> {
    TargetKind::parse(text).ok_or_else(|| corrupt(format!("{text:?} is no delivery target")))
}

fn event_kind(text: &str) -> Res<EventKind> {
    EventKind::parse(text).ok_or_else(|| corrupt(format!("{text:?} is no event kind")))
}

fn delivery_state(text: &str) -> Res<DeliveryState> {
    DeliveryState::parse(text).ok_or_else(|| corrupt(format!("{text:?} is no delivery state")))
}

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

fn event_row(r: &Row) -> Res<EventRecord> {
    let no: &str = get(r, "out_trade_no")?;
    let raw = match (
        get::<Option<String>>(r, "raw_type")?,
        get::<Option<Vec<u8>>>(r, "raw_body")?,
    ) {
        (Some(content_type), Some(body)) => Some(RawForm { content_type, body }),
        _ => None,
    };
    Ok(EventRecord {
        id: get(r, "id")?,
        kind: event_kind(get(r, "kind")?)?,
        out_trade_no: OutTradeNo::parse(no)
            .ok_or_else(|| corrupt(format!("event for {no:?}, which is no order number")))?,
        data: get(r, "data")?,
        created_ms: get(r, "created_ms")?,
        raw,
    })
}

pub(super) async fn claim(
    tx: &Tx<'_>,
    cx: &Cx,
    targets: &[TargetKind],
    owner: &str,
    now: i64,
    lease_ms: i64,
    limit: usize,
) -> Res<Vec<DueDelivery>> {
    // Locked as they are read, skipping any another sender is leasing this moment: after its
    // commit they carry its lease, and are not due.
    let due = all(
        tx,
        "SELECT e.id, e.kind, e.out_trade_no, e.data, e.raw_type, e.raw_body, e.created_ms,
             d.target, d.attempts
         FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.app_id = $1 AND d.env = $2 AND d.state = 'pending' AND d.next_ms <= $3
           AND (d.lease_until IS NULL OR d.lease_until <= $3)
           AND d.target = ANY($5)
         ORDER BY d.next_ms, e.created_ms, e.id, d.target LIMIT $4
         FOR UPDATE OF d SKIP LOCKED",
        &[
            &cx.app(),
            &cx.env(),
            &now,
            &i64::try_from(limit).unwrap_or(i64::MAX),
            &names(targets),
        ],
        |r| {
            Ok(DueDelivery {
                event: event_row(r)?,
                target: target(get(r, "target")?)?,
                attempts: count(i64::from(get::<i32>(r, "attempts")?)),
            })
        },
    )
    .await?;
    for d in &due {
        execute(
            tx,
            "UPDATE deliveries SET lease_until = $3, lease_owner = $4
             WHERE event_id = $1 AND target = $2",
            &[
                &d.event.id,
                &d.target.as_str(),
                &now.saturating_add(lease_ms),
                &owner,
            ],
        )
        .await?;
    }
    Ok(due)
}

pub(super) async fn record_attempt(
    tx: &Tx<'_>,
    cx: &Cx,
    owner: &str,
    event_id: &str,
    target: TargetKind,
    result: &AttemptResult,
) -> Res<()> {
    let detail: String = result
        .detail
        .chars()
        .take(MAX_DETAIL)
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect();
    execute(
        tx,
        concat!(
            "INSERT INTO delivery_attempts (app_id, env, event_id, target, at, ok, http_status,
                 detail)
             VALUES ($1, $2, $3, $4, ",
            beijing_now!(),
            ", $5, $6, $7)"
        ),
        &[
            &cx.app(),
            &cx.env(),
            &event_id,
            &target.as_str(),
            &result.next.is_none(),
            &result.http_status.map(i32::from),
            &detail,
        ],
    )
    .await?;
    let (state, next_ms, error) = match result.next {
        None => ("delivered", None, None),
        Some(Next::RetryAt(at)) => ("pending", Some(at), Some(detail.as_str())),
        Some(Next::GiveUp) => ("failed", None, Some(detail.as_str())),
    };
    // Delivered is final, and wins over a give-up: a late failure of a sender whose lease ran
    // out neither undoes it nor disturbs the sender that holds the lease now.
    execute(
        tx,
        concat!(
            "UPDATE deliveries SET state = $5, attempts = attempts + 1,
                 next_ms = COALESCE($6, next_ms), last_error = COALESCE($7, last_error),
                 delivered_at = CASE WHEN $5 = 'delivered' THEN ",
            beijing_now!(),
            " ELSE delivered_at END, lease_until = NULL, lease_owner = NULL
             WHERE app_id = $1 AND env = $2 AND event_id = $3 AND target = $4
               AND (CASE WHEN $5 = 'delivered' THEN state IN ('pending', 'failed')
                    ELSE state = 'pending' AND (lease_owner IS NULL OR lease_owner = $8) END)"
        ),
        &[
            &cx.app(),
            &cx.env(),
            &event_id,
            &target.as_str(),
            &state,
            &next_ms,
            &error,
            &owner,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn next_due(
    tx: &impl GenericClient,
    cx: &Cx,
    targets: &[TargetKind],
) -> Res<Option<i64>> {
    Ok(first(
        tx,
        "SELECT MIN(GREATEST(next_ms, COALESCE(lease_until, 0))) FROM deliveries
         WHERE app_id = $1 AND env = $2 AND state = 'pending' AND target = ANY($3)",
        &[&cx.app(), &cx.env(), &names(targets)],
        |r| at::<Option<i64>>(r, 0),
    )
    .await?
    .flatten())
}

fn beijing_of_ms(ms: i64) -> Option<String> {
    let at = chrono::DateTime::from_timestamp_millis(ms)?;
    Some(alipay_openapi::time::format_timestamp(
        &at.with_timezone(&alipay_openapi::time::beijing()),
    ))
}

pub(super) async fn deliveries(
    tx: &impl GenericClient,
    cx: &Cx,
    no: &OutTradeNo,
) -> Res<Vec<DeliveryRecord>> {
    all(
        tx,
        "SELECT d.event_id, d.target, d.state, d.attempts, d.last_error, d.next_ms,
             d.delivered_at, e.kind
         FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE e.app_id = $1 AND e.env = $2 AND e.out_trade_no = $3
         ORDER BY e.created_ms, e.id, d.target",
        &[&cx.app(), &cx.env(), &no.as_str()],
        |r| {
            let state = delivery_state(get(r, "state")?)?;
            Ok(DeliveryRecord {
                event_id: get(r, "event_id")?,
                kind: event_kind(get(r, "kind")?)?,
                target: target(get(r, "target")?)?,
                state,
                attempts: count(i64::from(get::<i32>(r, "attempts")?)),
                last_error: get(r, "last_error")?,
                next_attempt_at: (state == DeliveryState::Pending)
                    .then(|| get::<i64>(r, "next_ms"))
                    .transpose()?
                    .and_then(beijing_of_ms),
                delivered_at: get(r, "delivered_at")?,
            })
        },
    )
    .await
}

pub(super) async fn health(tx: &impl GenericClient, cx: &Cx) -> Res<Vec<TargetHealth>> {
    let mut out = all(
        tx,
        "SELECT target,
             COUNT(*) FILTER (WHERE state = 'pending'),
             COUNT(*) FILTER (WHERE state = 'delivered'),
             COUNT(*) FILTER (WHERE state = 'failed'),
             MAX(delivered_at)
         FROM deliveries WHERE app_id = $1 AND env = $2 GROUP BY target ORDER BY target",
        &[&cx.app(), &cx.env()],
        |r| {
            Ok(TargetHealth {
                target: target(at(r, 0)?)?,
                pending: at::<i64>(r, 1)?.max(0) as u64,
                delivered: at::<i64>(r, 2)?.max(0) as u64,
                failed: at::<i64>(r, 3)?.max(0) as u64,
                last_error: None,
                last_error_at: None,
                last_delivered_at: at(r, 4)?,
            })
        },
    )
    .await?;
    for h in &mut out {
        let last = first(
            tx,
            "SELECT a.detail, a.at FROM delivery_attempts a JOIN events e ON e.id = a.event_id
             WHERE e.app_id = $1 AND e.env = $2 AND a.target = $3 AND NOT a.ok
             ORDER BY a.id DESC LIMIT 1",
            &[&cx.app(), &cx.env(), &h.target.as_str()],
            |r| Ok((at::<String>(r, 0)?, at::<String>(r, 1)?)),
        )
        .await?;
        if let Some((detail, at)) = last {
            h.last_error = Some(detail);
            h.last_error_at = Some(at);
        }
    }
    Ok(out)
}

/// Unpaid (or never opened) orders past their expiry whose end no event has told yet.
pub(super) async fn expired_untold(
    tx: &impl GenericClient,
    cx: &Cx,
    since: &str,
    expired_by: &str,
    limit: usize,
) -> Res<Vec<OrderRecord>> {
    let columns = ORDER_COLUMNS
        .split(',')
        .map(|c| format!("o.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    all(
        tx,
        &format!(
            "SELECT {columns} FROM orders o
             WHERE o.app_id = $1 AND o.env = $2 AND o.expires_at IS NOT NULL
               AND o.expires_at > $3 AND o.expires_at <= $4
               AND (o.trade_status IS NULL OR o.trade_status = 'WAIT_BUYER_PAY')
               AND NOT EXISTS (SELECT 1 FROM events e WHERE e.app_id = o.app_id AND e.env = o.env
                   AND e.out_trade_no = o.out_trade_no
                   AND e.kind IN ('order.expired', 'order.closed'))
             ORDER BY o.expires_at DESC, o.id DESC LIMIT $5"
        ),
        &[
            &cx.app(),
            &cx.env(),
            &since,
            &expired_by,
            &i64::try_from(limit).unwrap_or(i64::MAX),
        ],
        order_row,
    )
    .await
}

pub(super) async fn note_expired(
    tx: &Tx<'_>,
    cx: &Cx,
    targets: &[TargetKind],
    no: &OutTradeNo,
) -> Res<bool> {
    let Some(order) = lock_order(tx, cx, no).await? else {
        return Ok(false);
    };
    if order.trade_status.is_some() {
        return Ok(false);
    }
    let new = emit(
        tx,
        cx,
        targets,
        &NewEvent {
            kind: EventKind::OrderExpired,
            order: &order,
            refund: None,
            notification: None,
        },
    )
    .await?;
    if new {
        // As SQLite's handle does: the order's subscribers and waiters hear of its end.
        super::ops::announce(tx, cx, no).await?;
    }
    Ok(new)
}
