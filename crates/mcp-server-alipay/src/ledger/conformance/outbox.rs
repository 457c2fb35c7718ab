//! The outbox cases of the suite: an event is recorded with its change, once, one delivery per
//! target that receives it; a delivery is leased to one sender, retried, given up, and never
//! undone once delivered.

use alipay_openapi::TradeStatus;

use super::*;
use crate::domain::outbox::{DeliveryState, EventData, EventKind, Next, TargetKind};

const ALL_TARGETS: [TargetKind; 3] = [
    TargetKind::Forward,
    TargetKind::Webhook,
    TargetKind::DingTalk,
];
const LEASE: i64 = 30_000;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every delivery due now, leased (and so not due again until recorded or the lease ends), by
/// event kind and target.
async fn claim_all(l: &dyn Ledger) -> Vec<DueDelivery> {
    let mut due = l.claim_deliveries(now() + 1, LEASE, 100).await.unwrap();
    due.sort_by_key(|d| (d.event.kind.as_str(), d.target.as_str()));
    due
}

fn kinds(due: &[DueDelivery]) -> Vec<(EventKind, TargetKind)> {
    let mut k: Vec<_> = due.iter().map(|d| (d.event.kind, d.target)).collect();
    k.sort_by_key(|(e, t)| (e.as_str(), t.as_str()));
    k
}

fn notification(id: &str, status: TradeStatus, body: &[u8]) -> ReceivedNotification {
    ReceivedNotification {
        notify_id: id.into(),
        out_trade_no: no("A"),
        trade_status: status,
        trade_no: Some("T1".into()),
        refunded: None,
        refund_request_no: None,
        content: format!("c-{id}"),
        seen_at: None,
        paid_at: None,
        raw: RawForm {
            content_type: "application/x-www-form-urlencoded; charset=utf-8".into(),
            body: body.to_vec(),
        },
    }
}

async fn delivered(l: &dyn Ledger, d: &DueDelivery) {
    let ok = AttemptResult {
        next: None,
        http_status: Some(200),
        detail: "ok".into(),
    };
    l.record_attempt(&d.event.id, d.target, &ok).await.unwrap();
}

pub(crate) async fn events_are_recorded_once_with_their_change(b: &dyn Backend) {
    let store = b.fresh("events_are_recorded_once_with_their_change").await;
    let l = store.open_outbox(&scope(APP), &ALL_TARGETS).await;
    let l = l.as_ref();
    l.create_order(&order("A", 1_000)).await.unwrap();
    assert!(claim_all(l).await.is_empty(), "a new order is no event");

    // A payment learned by a query: one event, to each target that hears our events.
    let paid = StatusUpdate {
        trade_no: Some("T1".into()),
        ..status("TRADE_SUCCESS", None, StatusSource::Query)
    };
    assert!(l.update_status(&no("A"), &paid).await.unwrap());
    let due = claim_all(l).await;
    assert_eq!(
        kinds(&due),
        [
            (EventKind::PaymentSucceeded, TargetKind::DingTalk),
            (EventKind::PaymentSucceeded, TargetKind::Webhook)
        ]
    );
    assert_eq!(
        due[0].event.id, due[1].event.id,
        "one event, two deliveries"
    );
    assert!(due[0].event.id.starts_with("evt_") && due[0].event.id.len() == 36);
    let data: EventData = serde_json::from_str(&due[0].event.data).unwrap();
    assert_eq!(
        (
            data.total_amount.as_str(),
            data.trade_no.as_deref(),
            data.app_id.as_str()
        ),
        ("10.00", Some("T1"), APP)
    );
    for d in &due {
        delivered(l, d).await;
    }
    // The same payment again, then finished: still one payment.
    l.update_status(&no("A"), &paid).await.unwrap();
    l.update_status(
        &no("A"),
        &status("TRADE_FINISHED", None, StatusSource::Query),
    )
    .await
    .unwrap();
    assert!(claim_all(l).await.is_empty());

    // A verified notification is kept byte for byte, for the forward target only, once.
    let body = b"notify_id=N1&sign=a%2Bb%3D&trade_status=TRADE_FINISHED";
    let n = notification("N1", TradeStatus::TradeFinished, body);
    assert_eq!(
        l.apply_notification(&n).await.unwrap(),
        NotifyApply::Applied
    );
    assert_eq!(
        l.apply_notification(&n).await.unwrap(),
        NotifyApply::Duplicate
    );
    let due = claim_all(l).await;
    assert_eq!(
        kinds(&due),
        [(EventKind::AlipayNotification, TargetKind::Forward)]
    );
    let raw = due[0].event.raw.as_ref().unwrap();
    assert_eq!(raw.body, body);
    assert_eq!(raw.content_type, n.raw.content_type);
    delivered(l, &due[0]).await;

    // A refund that succeeds is an event once; one sent and refused is one too.
    l.create_order(&order("R", 1_000)).await.unwrap();
    l.update_status(
        &no("R"),
        &status("TRADE_SUCCESS", None, StatusSource::Query),
    )
    .await
    .unwrap();
    for d in claim_all(l).await {
        delivered(l, &d).await;
    }
    let limits = no_daily_limit(1_000);
    for (request, state) in [("R1", RefundState::Succeeded), ("R2", RefundState::Failed)] {
        begin(l, &refund("R", request, 100), &limits).await;
        let outcome = RefundOutcome::state(state);
        finish(l, "R", request, &outcome, Some("test")).await;
        finish(l, "R", request, &outcome, Some("test")).await;
    }
    let due = claim_all(l).await;
    assert_eq!(
        kinds(&due),
        [
            (EventKind::RefundFailed, TargetKind::DingTalk),
            (EventKind::RefundFailed, TargetKind::Webhook),
            (EventKind::RefundSucceeded, TargetKind::DingTalk),
            (EventKind::RefundSucceeded, TargetKind::Webhook),
        ]
    );
    let data: EventData = serde_json::from_str(&due[2].event.data).unwrap();
    let refund_data = data.refund.unwrap();
    assert_eq!(
        (
            refund_data.out_request_no.as_str(),
            refund_data.refund_amount.as_str()
        ),
        ("R1", "1.00")
    );

    // An unpaid end: closed by us, or by Alipay at the expiry (on the gateway's clock).
    for (number, source, seen_at, kind) in [
        (
            "C",
            StatusSource::Close,
            "2026-11-25 10:00:00",
            EventKind::OrderClosed,
        ),
        (
            "E",
            StatusSource::Query,
            "2026-11-25 10:30:00",
            EventKind::OrderExpired,
        ),
        (
            "F",
            StatusSource::Notify,
            "2026-11-25 10:29:59",
            EventKind::OrderClosed,
        ),
    ] {
        l.create_order(&order(number, 500)).await.unwrap();
        let closed = StatusUpdate {
            seen_at: Some(seen_at.into()),
            ..status("TRADE_CLOSED", None, source)
        };
        l.update_status(&no(number), &closed).await.unwrap();
        let due = claim_all(l).await;
        assert_eq!(due.len(), 2, "{number}");
        assert!(
            due.iter().all(|d| d.event.kind == kind),
            "{number}: {due:?}"
        );
    }

    // A link nobody opened: the sweep finds it past its expiry, and its expiry is told once.
    l.create_order(&order("G", 500)).await.unwrap();
    let untold = |by: &'static str| async move {
        l.expired_untold("2026-11-18 00:00:00", by, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.out_trade_no.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(untold("2026-11-25 10:29:59").await, Vec::<String>::new());
    // C, E and F ended with their events; G has no trade and no event.
    assert_eq!(untold("2026-11-25 10:30:00").await, ["G"]);
    assert!(l.note_expired(&no("G")).await.unwrap());
    assert!(!l.note_expired(&no("G")).await.unwrap(), "told once");
    assert!(!l.note_expired(&no("A")).await.unwrap(), "A has a trade");
    assert_eq!(untold("2026-11-25 10:30:00").await, Vec::<String>::new());
    let due = claim_all(l).await;
    assert_eq!(
        kinds(&due),
        [
            (EventKind::OrderExpired, TargetKind::DingTalk),
            (EventKind::OrderExpired, TargetKind::Webhook)
        ]
    );
    assert!(due.iter().all(|d| d.event.out_trade_no == no("G")));
}

pub(crate) async fn deliveries_are_leased_retried_and_given_up(b: &dyn Backend) {
    let store = b.fresh("deliveries_are_leased_retried_and_given_up").await;
    let one = store.open_outbox(&scope(APP), &[TargetKind::Webhook]).await;
    let two = store.open_outbox(&scope(APP), &[TargetKind::Webhook]).await;
    let (one, two) = (one.as_ref(), two.as_ref());
    one.create_order(&order("A", 1_000)).await.unwrap();
    one.update_status(
        &no("A"),
        &status("TRADE_SUCCESS", None, StatusSource::Query),
    )
    .await
    .unwrap();
    let t0 = now() + 1;
    let due = one.claim_deliveries(t0, LEASE, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].attempts, 0);
    let id = due[0].event.id.clone();
    // Leased: no other sender (in this process or another) takes it meanwhile.
    assert!(
        two.claim_deliveries(t0, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(one.next_delivery_at().await.unwrap(), Some(t0 + LEASE));
    // A sender that died holding it: taken again, same event, once the lease ran out.
    let again = two.claim_deliveries(t0 + LEASE, LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event.id, id);

    // A failed attempt: retried at its time, with the same event id and the attempt counted.
    let failed = AttemptResult {
        next: Some(Next::RetryAt(t0 + 5_000)),
        http_status: Some(500),
        detail: "HTTP 500".into(),
    };
    two.record_attempt(&id, TargetKind::Webhook, &failed)
        .await
        .unwrap();
    assert_eq!(one.next_delivery_at().await.unwrap(), Some(t0 + 5_000));
    assert!(
        one.claim_deliveries(t0 + 4_999, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retry = one.claim_deliveries(t0 + 5_000, LEASE, 10).await.unwrap();
    assert_eq!(
        (retry[0].event.id.as_str(), retry[0].attempts),
        (id.as_str(), 1)
    );
    let shown = one.deliveries(&no("A")).await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(
        (
            shown[0].state,
            shown[0].attempts,
            shown[0].last_error.as_deref()
        ),
        (DeliveryState::Pending, 1, Some("HTTP 500"))
    );
    assert!(shown[0].next_attempt_at.is_some());

    // Delivered is final: a late failure from the sender whose lease ran out changes nothing.
    delivered(one, &retry[0]).await;
    two.record_attempt(&id, TargetKind::Webhook, &failed)
        .await
        .unwrap();
    let shown = one.deliveries(&no("A")).await.unwrap();
    assert_eq!(
        (shown[0].state, shown[0].attempts),
        (DeliveryState::Delivered, 2)
    );
    assert!(shown[0].delivered_at.is_some() && shown[0].next_attempt_at.is_none());
    assert_eq!(one.next_delivery_at().await.unwrap(), None);
    assert!(
        one.claim_deliveries(t0 + 10 * LEASE, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Given up: failed, never claimed again, and the health says so.
    one.create_order(&order("B", 1_000)).await.unwrap();
    one.update_status(
        &no("B"),
        &status("TRADE_SUCCESS", None, StatusSource::Query),
    )
    .await
    .unwrap();
    let due = claim_all(one).await;
    let give_up = AttemptResult {
        next: Some(Next::GiveUp),
        http_status: None,
        detail: "no answer: connection refused".into(),
    };
    one.record_attempt(&due[0].event.id, TargetKind::Webhook, &give_up)
        .await
        .unwrap();
    assert!(
        one.claim_deliveries(t0 + 10 * LEASE, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A sender whose lease ran out cannot give up a delivery another sender now holds; and a
    // success wins over a give-up.
    one.create_order(&order("C", 1_000)).await.unwrap();
    one.update_status(
        &no("C"),
        &status("TRADE_SUCCESS", None, StatusSource::Query),
    )
    .await
    .unwrap();
    let first = one
        .claim_deliveries(t0 + 20 * LEASE, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let taken = two
        .claim_deliveries(t0 + 21 * LEASE, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    one.record_attempt(&first[0].event.id, TargetKind::Webhook, &give_up)
        .await
        .unwrap();
    let c = one.deliveries(&no("C")).await.unwrap();
    assert_eq!(c[0].state, DeliveryState::Pending, "still the new holder's");
    two.record_attempt(&taken[0].event.id, TargetKind::Webhook, &give_up)
        .await
        .unwrap();
    delivered(one, &first[0]).await;
    let c = one.deliveries(&no("C")).await.unwrap();
    assert_eq!(
        c[0].state,
        DeliveryState::Delivered,
        "the target answered after all"
    );
    let health = two.delivery_health().await.unwrap();
    assert_eq!(health.len(), 1);
    let h = &health[0];
    assert_eq!(
        (h.target, h.pending, h.delivered, h.failed),
        (TargetKind::Webhook, 0, 2, 1)
    );
    assert_eq!(
        h.last_error.as_deref(),
        Some("no answer: connection refused")
    );
    assert!(h.last_error_at.is_some() && h.last_delivered_at.is_some());
}

pub(crate) async fn a_handle_delivers_only_to_its_targets(b: &dyn Backend) {
    let store = b.fresh("a_handle_delivers_only_to_its_targets").await;
    let plain = store.open(&scope(APP)).await;
    let webhook = store.open_outbox(&scope(APP), &[TargetKind::Webhook]).await;
    let every = store.open_outbox(&scope(APP), &ALL_TARGETS).await;
    let other_app = store.open_outbox(&scope(OTHER_APP), &ALL_TARGETS).await;
    // No target, no event.
    plain.create_order(&order("A", 100)).await.unwrap();
    plain
        .update_status(
            &no("A"),
            &status("TRADE_SUCCESS", None, StatusSource::Query),
        )
        .await
        .unwrap();
    assert!(claim_all(every.as_ref()).await.is_empty());
    assert!(plain.deliveries(&no("A")).await.unwrap().is_empty());
    // Recorded for every target by one handle; each handle claims only its own targets'.
    every.create_order(&order("B", 100)).await.unwrap();
    every
        .update_status(
            &no("B"),
            &status("TRADE_SUCCESS", None, StatusSource::Query),
        )
        .await
        .unwrap();
    assert!(
        claim_all(other_app.as_ref()).await.is_empty(),
        "another app's"
    );
    assert_eq!(
        kinds(&claim_all(webhook.as_ref()).await),
        [(EventKind::PaymentSucceeded, TargetKind::Webhook)]
    );
    assert_eq!(
        kinds(&claim_all(every.as_ref()).await),
        [(EventKind::PaymentSucceeded, TargetKind::DingTalk)]
    );
    assert_eq!(plain.deliveries(&no("B")).await.unwrap().len(), 2);
}
