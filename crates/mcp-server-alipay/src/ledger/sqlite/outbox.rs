//! The outbox's rows: events written inside the transaction that records what they tell (so a
//! change is never recorded without its event, nor an event without its change), one delivery per
//! configured target, leases for the sender, and every attempt.

use alipay_openapi::time::timestamp_now;
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::rows::{Res, all, corrupt, first, order_row};
use crate::domain::outbox::{DeliveryState, EventKind, Next, TargetKind};
use crate::domain::{AppScope, OutTradeNo};
use crate::ledger::events::{NewEvent, new_event_id, now_ms};
use crate::ledger::{
    AttemptResult, DeliveryRecord, DueDelivery, EventRecord, OrderRecord, RawForm, TargetHealth,
};

/// Longest error detail kept per attempt.
const MAX_DETAIL: usize = 300;

/// Record `event` and its deliveries inside the caller's transaction, once per order, kind and
/// subject; nothing when no configured target receives it. True when it was new.
pub(super) fn emit(
    conn: &Connection,
    s: &AppScope,
    targets: &[TargetKind],
    event: &NewEvent<'_>,
) -> Res<bool> {
    let receivers = event.receivers(targets);
    if receivers.is_empty() {
        return Ok(false);
    }
    let (order, subject, raw) = (event.order, event.subject(), event.raw());
    let data = event.data(s, timestamp_now());
    let (id, now) = (new_event_id(), now_ms());
    let inserted =
        conn.prepare_cached(
            "INSERT INTO events (id, app_id, env, out_trade_no, kind, subject, data, raw_type,
                 raw_body, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (app_id, env, out_trade_no, kind, subject) DO NOTHING",
        )?
        .execute(params![
            id,
            s.app_id,
            s.env.as_str(),
            order.out_trade_no.as_str(),
            event.kind.as_str(),
            subject,
            data,
            raw.map(|r| r.content_type.as_str()),
            raw.map(|r| r.body.as_slice()),
            now
        ])? > 0;
    if inserted {
        for target in receivers {
            conn.prepare_cached(
                "INSERT INTO deliveries (event_id, target, app_id, env, state, next_ms)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            )?
            .execute(params![id, target.as_str(), s.app_id, s.env.as_str(), now])?;
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
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn event_row(r: &Row<'_>) -> Res<EventRecord> {
    let no: String = r.get("out_trade_no")?;
    let raw = match (
        r.get::<_, Option<String>>("raw_type")?,
        r.get::<_, Option<Vec<u8>>>("raw_body")?,
    ) {
        (Some(content_type), Some(body)) => Some(RawForm { content_type, body }),
        _ => None,
    };
    Ok(EventRecord {
        id: r.get("id")?,
        kind: event_kind(&r.get::<_, String>("kind")?)?,
        out_trade_no: OutTradeNo::parse(&no)
            .ok_or_else(|| corrupt(format!("event for {no:?}, which is no order number")))?,
        data: r.get("data")?,
        created_ms: r.get("created_ms")?,
        raw,
    })
}

/// `,forward,webhook,`: the configured targets, for `instr` (only theirs are claimed; a
/// target no longer configured keeps its deliveries pending for when it is again).
fn target_list(targets: &[TargetKind]) -> String {
    let mut list = String::from(",");
    for t in targets {
        list.push_str(t.as_str());
        list.push(',');
    }
    list
}

pub(super) fn claim(
    conn: &mut Connection,
    s: &AppScope,
    targets: &[TargetKind],
    owner: &str,
    now: i64,
    lease_ms: i64,
    limit: usize,
) -> Res<Vec<DueDelivery>> {
    let tx = super::ops::immediate(conn)?;
    let due = all(
        &tx,
        "SELECT e.*, d.target, d.attempts FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.app_id = ?1 AND d.env = ?2 AND d.state = 'pending' AND d.next_ms <= ?3
           AND (d.lease_until IS NULL OR d.lease_until <= ?3)
           AND instr(?5, ',' || d.target || ',') > 0
         ORDER BY d.next_ms, e.created_ms LIMIT ?4",
        params![
            s.app_id,
            s.env.as_str(),
            now,
            limit as i64,
            target_list(targets)
        ],
        |r| {
            Ok(DueDelivery {
                event: event_row(r)?,
                target: target(&r.get::<_, String>("target")?)?,
                attempts: count(r.get("attempts")?),
            })
        },
    )?;
    for d in &due {
        tx.prepare_cached(
            "UPDATE deliveries SET lease_until = ?3, lease_owner = ?4
             WHERE event_id = ?1 AND target = ?2",
        )?
        .execute(params![
            d.event.id,
            d.target.as_str(),
            now.saturating_add(lease_ms),
            owner
        ])?;
    }
    tx.commit()?;
    Ok(due)
}

pub(super) fn record_attempt(
    conn: &mut Connection,
    owner: &str,
    event_id: &str,
    target: TargetKind,
    result: &AttemptResult,
) -> Res<()> {
    let tx = super::ops::immediate(conn)?;
    let detail: String = result.detail.chars().take(MAX_DETAIL).collect();
    let now = timestamp_now();
    tx.prepare_cached(
        "INSERT INTO delivery_attempts (event_id, target, at, ok, http_status, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        event_id,
        target.as_str(),
        now,
        result.next.is_none(),
        result.http_status,
        detail
    ])?;
    let (state, next_ms, error, delivered_at) = match result.next {
        None => ("delivered", None, None, Some(now.as_str())),
        Some(Next::RetryAt(at)) => ("pending", Some(at), Some(detail.as_str()), None),
        Some(Next::GiveUp) => ("failed", None, Some(detail.as_str()), None),
    };
    // Delivered is final, and wins over a give-up: a late failure of a sender whose lease ran
    // out neither undoes it nor disturbs the sender that holds the lease now.
    tx.prepare_cached(
        "UPDATE deliveries SET state = ?3, attempts = attempts + 1,
             next_ms = COALESCE(?4, next_ms), last_error = COALESCE(?5, last_error),
             delivered_at = COALESCE(?6, delivered_at), lease_until = NULL, lease_owner = NULL
         WHERE event_id = ?1 AND target = ?2
           AND (CASE WHEN ?3 = 'delivered' THEN state IN ('pending', 'failed')
                ELSE state = 'pending' AND (lease_owner IS NULL OR lease_owner = ?7) END)",
    )?
    .execute(params![
        event_id,
        target.as_str(),
        state,
        next_ms,
        error,
        delivered_at,
        owner
    ])?;
    tx.commit()?;
    Ok(())
}

pub(super) fn next_due(
    conn: &Connection,
    s: &AppScope,
    targets: &[TargetKind],
) -> Res<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT MIN(MAX(next_ms, COALESCE(lease_until, 0))) FROM deliveries
             WHERE app_id = ?1 AND env = ?2 AND state = 'pending'
               AND instr(?3, ',' || target || ',') > 0",
        )?
        .query_row(
            params![s.app_id, s.env.as_str(), target_list(targets)],
            |r| r.get::<_, Option<i64>>(0),
        )
        .optional()?
        .flatten())
}

fn beijing_of_ms(ms: i64) -> Option<String> {
    let at = chrono::DateTime::from_timestamp_millis(ms)?;
    Some(alipay_openapi::time::format_timestamp(
        &at.with_timezone(&alipay_openapi::time::beijing()),
    ))
}

pub(super) fn deliveries(
    conn: &Connection,
    s: &AppScope,
    no: &OutTradeNo,
) -> Res<Vec<DeliveryRecord>> {
    all(
        conn,
        "SELECT d.*, e.kind FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE e.app_id = ?1 AND e.env = ?2 AND e.out_trade_no = ?3
         ORDER BY e.created_ms, d.target",
        params![s.app_id, s.env.as_str(), no.as_str()],
        |r| {
            let state = delivery_state(&r.get::<_, String>("state")?)?;
            Ok(DeliveryRecord {
                event_id: r.get("event_id")?,
                kind: event_kind(&r.get::<_, String>("kind")?)?,
                target: target(&r.get::<_, String>("target")?)?,
                state,
                attempts: count(r.get("attempts")?),
                last_error: r.get("last_error")?,
                next_attempt_at: (state == DeliveryState::Pending)
                    .then(|| r.get::<_, i64>("next_ms"))
                    .transpose()?
                    .and_then(beijing_of_ms),
                delivered_at: r.get("delivered_at")?,
            })
        },
    )
}

pub(super) fn health(conn: &Connection, s: &AppScope) -> Res<Vec<TargetHealth>> {
    let mut out = all(
        conn,
        "SELECT target,
             SUM(state = 'pending'), SUM(state = 'delivered'), SUM(state = 'failed'),
             MAX(delivered_at)
         FROM deliveries WHERE app_id = ?1 AND env = ?2 GROUP BY target ORDER BY target",
        params![s.app_id, s.env.as_str()],
        |r| {
            Ok(TargetHealth {
                target: target(&r.get::<_, String>(0)?)?,
                pending: r.get::<_, i64>(1)?.max(0) as u64,
                delivered: r.get::<_, i64>(2)?.max(0) as u64,
                failed: r.get::<_, i64>(3)?.max(0) as u64,
                last_error: None,
                last_error_at: None,
                last_delivered_at: r.get(4)?,
            })
        },
    )?;
    for h in &mut out {
        let last = first(
            conn,
            "SELECT a.detail, a.at FROM delivery_attempts a JOIN events e ON e.id = a.event_id
             WHERE e.app_id = ?1 AND e.env = ?2 AND a.target = ?3 AND a.ok = 0
             ORDER BY a.id DESC LIMIT 1",
            params![s.app_id, s.env.as_str(), h.target.as_str()],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )?;
        if let Some((detail, at)) = last {
            h.last_error = Some(detail);
            h.last_error_at = Some(at);
        }
    }
    Ok(out)
}

/// Unpaid (or never opened) orders past their expiry whose end no event has told yet.
pub(super) fn expired_untold(
    conn: &Connection,
    s: &AppScope,
    since: &str,
    expired_by: &str,
    limit: usize,
) -> Res<Vec<OrderRecord>> {
    all(
        conn,
        "SELECT o.* FROM orders o
         WHERE o.app_id = ?1 AND o.env = ?2 AND o.expires_at IS NOT NULL
           AND o.expires_at > ?3 AND o.expires_at <= ?4
           AND (o.trade_status IS NULL OR o.trade_status = 'WAIT_BUYER_PAY')
           AND NOT EXISTS (SELECT 1 FROM events e WHERE e.app_id = o.app_id AND e.env = o.env
               AND e.out_trade_no = o.out_trade_no AND e.kind IN ('order.expired', 'order.closed'))
         ORDER BY o.expires_at DESC LIMIT ?5",
        params![s.app_id, s.env.as_str(), since, expired_by, limit as i64],
        order_row,
    )
}

pub(super) fn note_expired(
    conn: &mut Connection,
    s: &AppScope,
    targets: &[TargetKind],
    no: &OutTradeNo,
) -> Res<bool> {
    let tx = super::ops::immediate(conn)?;
    let Some(order) = super::ops::order(&tx, s, no)? else {
        return Ok(false);
    };
    if order.trade_status.is_some() {
        return Ok(false);
    }
    let new = emit(
        &tx,
        s,
        targets,
        &NewEvent {
            kind: EventKind::OrderExpired,
            order: &order,
            refund: None,
            notification: None,
        },
    )?;
    tx.commit()?;
    Ok(new)
}
