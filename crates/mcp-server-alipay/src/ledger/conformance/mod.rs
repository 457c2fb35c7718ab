//! What every ledger backend must do, as one suite. A backend provides a [`Backend`] (fresh, empty
//! stores) and runs every case with one line:
//!
//! ```ignore
//! crate::ledger::conformance::conformance_tests!(MyBackend);
//! ```
//!
//! which makes one `#[tokio::test]` per case. Stores are opened through [`Store::open`]; each call
//! is a new handle on the same store, as a second process would have.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use alipay_openapi::time::timestamp_now;
use alipay_openapi::{Amount, Money, TradeStatus};
use async_trait::async_trait;
use tokio::sync::broadcast::error::TryRecvError;

use super::*;
use crate::domain::Env;

mod outbox;
pub(crate) use outbox::*;

/// Makes fresh, empty stores.
#[async_trait]
pub(crate) trait Backend: Send + Sync {
    /// A new empty store; `test` names it (for files, databases, logs).
    async fn fresh(&self, test: &str) -> Box<dyn Store>;
}

/// One store: any number of handles on it.
#[async_trait]
pub(crate) trait Store: Send + Sync {
    /// A new handle on this store as `scope`, as a new process would open it.
    async fn open(&self, scope: &AppScope) -> Box<dyn Ledger>;
    /// As [`Store::open`], giving up a wait for an order's lock after `wait`.
    async fn open_waiting(&self, scope: &AppScope, wait: Duration) -> Box<dyn Ledger>;
    /// As [`Store::open`], delivering events to `targets`.
    async fn open_outbox(&self, scope: &AppScope, targets: &[TargetKind]) -> Box<dyn Ledger>;
    /// The audit rows of `scope`, oldest first, each `at | tool | decision | outcome | arguments`.
    async fn audit_rows(&self, scope: &AppScope) -> Vec<String>;
    /// Make a stored row unreadable, as a bad disk or a hand edit would.
    async fn corrupt(&self, scope: &AppScope, what: &Corruption);
}

/// A stored row made unreadable.
#[derive(Clone, Debug)]
pub(crate) enum Corruption {
    /// The order's kind becomes text that is no kind.
    OrderKind(OutTradeNo),
    /// The order's amount becomes zero fen (no amount).
    OrderAmount(OutTradeNo),
    /// The order's reported refund total becomes negative.
    OrderRefunded(OutTradeNo),
    /// The refund's state becomes text that is no state.
    RefundState(OutTradeNo, OutRequestNo),
    /// The refund's amount becomes text that is no number.
    RefundAmount(OutTradeNo, OutRequestNo),
}

/// One `#[tokio::test]` per case of the suite, for the backend `$backend` (an expression).
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::ledger::conformance::conformance_tests!(@cases $backend;
            orders_are_created_once,
            a_new_order_is_recorded_with_its_audit_row,
            refunds_replay_retry_conflict_and_respect_the_limits,
            two_refunds_cannot_together_exceed_what_was_paid,
            a_refund_notification_settles_its_refund,
            an_outcome_applies_only_while_its_sender_holds_the_refund,
            unsettled_refunds_carry_their_sender,
            notifications_dedupe_and_never_move_status_backwards,
            lists_filter_by_status_and_day,
            a_repeated_status_fills_in_only_what_is_missing,
            a_status_update_answers_with_the_order_as_it_stands,
            a_store_is_opened_many_times,
            racing_refunds_never_exceed_what_was_paid,
            racing_refunds_never_exceed_the_daily_budget,
            a_dead_sender_is_not_alive,
            the_order_lock_serialises_its_holders,
            a_wait_for_an_order_lock_gives_up,
            changes_are_heard,
            apps_sharing_a_store_never_meet,
            corrupt_rows_are_errors,
            an_approval_is_decided_once,
            events_are_recorded_once_with_their_change,
            deliveries_are_leased_retried_and_given_up,
            a_handle_delivers_only_to_its_targets,
            a_days_payments_and_refunds_are_found,
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::ledger::conformance::$case(&$backend).await;
            }
        )*
    };
}
pub(crate) use conformance_tests;

/// Longest reason a refused notification keeps (the trait says "a sane length").
const MAX_REASON: usize = 500;

pub(crate) const APP: &str = "2021000000000001";
pub(crate) const OTHER_APP: &str = "2021000000000002";

pub(crate) fn scope(app_id: &str) -> AppScope {
    AppScope {
        env: Env::Prod,
        app_id: app_id.into(),
    }
}

pub(crate) fn no(s: &str) -> OutTradeNo {
    OutTradeNo::parse(s).unwrap()
}

pub(crate) fn req(s: &str) -> OutRequestNo {
    OutRequestNo::parse(s).unwrap()
}

pub(crate) fn id(s: &str) -> InstanceId {
    InstanceId(s.into())
}

pub(crate) fn fen(fen: i64) -> Money {
    Money::from_fen(fen)
}

pub(crate) fn order(number: &str, amount_fen: i64) -> NewOrder {
    NewOrder {
        out_trade_no: no(number),
        kind: OrderKind::WebPage,
        amount: Amount::from_fen(amount_fen).unwrap(),
        title: "t".into(),
        link: "https://x".into(),
        expires_at: Some("2026-11-25 10:30:00".into()),
        audit: None,
    }
}

/// `number`'s order (100 fen) with its audit row, as the web-page create tool gives it.
pub(crate) fn audited_order(number: &str) -> NewOrder {
    NewOrder {
        audit: Some(AuditRow::of(&AuditEntry {
            tool: "create-web-page-alipay-payment",
            arguments: &serde_json::json!({ "outTradeNo": number }),
            decision: AuditDecision::Allowed,
            outcome: AuditOutcome::Succeeded,
        })),
        ..order(number, 100)
    }
}

/// Limits with no daily budget, on a day of the tests, for a trade that paid `paid_fen`.
pub(crate) fn no_daily_limit(paid_fen: i64) -> RefundLimits {
    RefundLimits {
        daily: None,
        day: "2026-11-25".into(),
        paid: fen(paid_fen),
    }
}

pub(crate) fn refund(number: &str, request: &str, amount_fen: i64) -> NewRefund {
    NewRefund {
        out_trade_no: no(number),
        out_request_no: req(request),
        amount: Amount::from_fen(amount_fen).unwrap(),
        reason: None,
        owner: id("test"),
        step: ApprovalStep::None,
    }
}

pub(crate) fn status(s: &str, refunded: Option<i64>, source: StatusSource) -> StatusUpdate {
    StatusUpdate {
        trade_status: TradeStatus::from(s),
        trade_no: None,
        refunded: refunded.map(fen),
        source,
        seen_at: None,
        paid_at: None,
    }
}

async fn begin(l: &dyn Ledger, r: &NewRefund, limits: &RefundLimits) -> RefundBegin {
    l.begin_refund(r, limits).await.unwrap()
}

async fn finish(
    l: &dyn Ledger,
    number: &str,
    request: &str,
    outcome: &RefundOutcome,
    sender: Option<&str>,
) -> Option<RefundState> {
    let sender = sender.map(id);
    l.finish_refund(&no(number), &req(request), outcome, sender.as_ref())
        .await
        .unwrap()
}

async fn trade_status(l: &dyn Ledger, number: &str) -> Option<TradeStatus> {
    l.order(&no(number)).await.unwrap().unwrap().trade_status
}

pub(crate) async fn orders_are_created_once(b: &dyn Backend) {
    let store = b.fresh("orders_are_created_once").await;
    let l = store.open(&scope(APP)).await;
    let created = match l.create_order(&order("A", 100)).await.unwrap() {
        CreateOrder::Created(o) => o,
        other => panic!("{other:?}"),
    };
    assert_eq!(l.order(&no("A")).await.unwrap().as_ref(), Some(&created));
    assert_eq!(created.total_amount.fen(), 100);
    assert_eq!(created.trade_status, None);
    assert_eq!(created.refunded_amount, Money::ZERO);
    assert_eq!(created.expires_at.as_deref(), Some("2026-11-25 10:30:00"));
    match l.create_order(&order("A", 200)).await.unwrap() {
        CreateOrder::Existing(o) => {
            assert_eq!(o.total_amount.fen(), 100, "the first order is kept");
            assert_eq!(o, created);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(l.order(&no("B")).await.unwrap(), None);
}

/// A new order's audit row is written with it, in its commit (stamped with the order's creation
/// time); a number already taken writes none, since its caller audits what it made of that.
pub(crate) async fn a_new_order_is_recorded_with_its_audit_row(b: &dyn Backend) {
    let store = b.fresh("a_new_order_is_recorded_with_its_audit_row").await;
    let l = store.open(&scope(APP)).await;
    let CreateOrder::Created(created) = l.create_order(&audited_order("A")).await.unwrap() else {
        panic!("a new number is created");
    };
    let row = |at: &str, number: &str| {
        let decision = AuditDecision::Allowed.to_string();
        let outcome = AuditOutcome::Succeeded.as_str();
        format!(
            r#"{at} | create-web-page-alipay-payment | {decision} | {outcome} | {{"outTradeNo":"{number}"}}"#
        )
    };
    let first = vec![row(&created.created_at, "A")];
    assert_eq!(store.audit_rows(&scope(APP)).await, first);
    // Again, from another handle: the order as it was, and no second row.
    let other = store.open(&scope(APP)).await;
    assert_eq!(
        other.create_order(&audited_order("A")).await.unwrap(),
        CreateOrder::Existing(created)
    );
    assert_eq!(store.audit_rows(&scope(APP)).await, first);
    // An order given no row writes none; another app's rows are its own.
    l.create_order(&order("B", 100)).await.unwrap();
    let elsewhere = store.open(&scope(OTHER_APP)).await;
    elsewhere.create_order(&audited_order("C")).await.unwrap();
    assert_eq!(store.audit_rows(&scope(APP)).await, first);
    assert_eq!(store.audit_rows(&scope(OTHER_APP)).await.len(), 1);
}

pub(crate) async fn refunds_replay_retry_conflict_and_respect_the_limits(b: &dyn Backend) {
    let store = b.fresh("refunds_replay_retry_conflict").await;
    let l = &*store.open(&scope(APP)).await;
    l.create_order(&order("A", 10_000)).await.unwrap();
    let limits = |day: &str| RefundLimits {
        daily: Some(fen(1_500)),
        day: day.into(),
        paid: fen(10_000),
    };
    let today = limits("2026-11-25");
    let r = |request: &str, amount: i64| refund("A", request, amount);
    assert_eq!(begin(l, &r("R1", 1_000), &today).await, RefundBegin::Fresh);
    assert!(matches!(
        begin(l, &r("R1", 1_000), &today).await,
        RefundBegin::Retry(_)
    ));
    assert!(matches!(
        begin(l, &r("R1", 999), &today).await,
        RefundBegin::Conflict(_)
    ));
    // Pending refunds count against the limit: 1000 + 501 > 1500.
    assert_eq!(
        begin(l, &r("R2", 501), &today).await,
        RefundBegin::Over(OverLimit::Daily {
            used: fen(1_000),
            limit: fen(1_500)
        })
    );
    assert_eq!(begin(l, &r("R2", 500), &today).await, RefundBegin::Fresh);
    let confirmed = RefundOutcome {
        state: RefundState::Succeeded,
        trade_no: Some("T".into()),
        total_refunded: Some(fen(1_000)),
        detail: None,
        succeeded_at: None,
    };
    finish(l, "A", "R1", &confirmed, None).await;
    assert!(matches!(
        begin(l, &r("R1", 1_000), &today).await,
        RefundBegin::Replay(_)
    ));
    // A confirmed refund is never downgraded by a later, less certain answer.
    finish(
        l,
        "A",
        "R1",
        &RefundOutcome::state(RefundState::Unknown),
        None,
    )
    .await;
    finish(
        l,
        "A",
        "R1",
        &RefundOutcome::state(RefundState::Failed),
        None,
    )
    .await;
    match begin(l, &r("R1", 1_000), &today).await {
        RefundBegin::Replay(record) => {
            assert_eq!(record.state, RefundState::Succeeded);
            assert_eq!(record.trade_no.as_deref(), Some("T"));
            assert_eq!(record.total_refunded, Some(fen(1_000)));
        }
        other => panic!("{other:?}"),
    }
    let refused = RefundOutcome {
        state: RefundState::Failed,
        trade_no: None,
        total_refunded: None,
        detail: Some("ACQ.X".into()),
        succeeded_at: None,
    };
    finish(l, "A", "R2", &refused, None).await;
    assert_eq!(
        l.refund(&no("A"), &req("R2"))
            .await
            .unwrap()
            .unwrap()
            .detail
            .as_deref(),
        Some("ACQ.X")
    );
    assert_eq!(
        l.refunded_on_day("2026-11-25").await.unwrap(),
        fen(1_000),
        "failed refunds do not count"
    );
    assert_eq!(l.refunded_on_day("2026-11-26").await.unwrap(), Money::ZERO);
    assert_eq!(
        l.order(&no("A")).await.unwrap().unwrap().refunded_amount,
        fen(1_000)
    );
    // A failed refund retried is a new refund for every limit, counted on the day it is retried.
    let tomorrow = limits("2026-11-26");
    assert_eq!(begin(l, &r("R2", 500), &tomorrow).await, RefundBegin::Fresh);
    let retried = l.refund(&no("A"), &req("R2")).await.unwrap().unwrap();
    assert_eq!(
        (retried.state, retried.day.as_str(), retried.detail),
        (RefundState::Pending, "2026-11-26", None)
    );
    assert_eq!(l.refunded_on_day("2026-11-26").await.unwrap(), fen(500));
    assert_eq!(l.refunded_on_day("2026-11-25").await.unwrap(), fen(1_000));
    finish(
        l,
        "A",
        "R2",
        &RefundOutcome::state(RefundState::Failed),
        None,
    )
    .await;
    assert_eq!(
        begin(
            l,
            &r("R2", 500),
            &RefundLimits {
                daily: Some(fen(400)),
                ..tomorrow
            }
        )
        .await,
        RefundBegin::Over(OverLimit::Daily {
            used: Money::ZERO,
            limit: fen(400)
        })
    );
}

pub(crate) async fn two_refunds_cannot_together_exceed_what_was_paid(b: &dyn Backend) {
    let store = b.fresh("two_refunds_cannot_together_exceed").await;
    let l = &*store.open(&scope(APP)).await;
    l.create_order(&order("A", 10_000)).await.unwrap();
    let lim = no_daily_limit(10_000);
    assert_eq!(
        begin(l, &refund("A", "R1", 6_000), &lim).await,
        RefundBegin::Fresh
    );
    // R1 is pending (it may have moved money): R2 may take only the rest.
    assert_eq!(
        begin(l, &refund("A", "R2", 4_001), &lim).await,
        RefundBegin::Over(OverLimit::Remaining {
            paid: fen(10_000),
            refunded: fen(6_000)
        })
    );
    assert_eq!(
        begin(l, &refund("A", "R2", 4_000), &lim).await,
        RefundBegin::Fresh
    );
    // Alipay's own reported total counts too (refunds made elsewhere).
    l.create_order(&order("B", 10_000)).await.unwrap();
    let reported = status("TRADE_SUCCESS", Some(9_000), StatusSource::Notify);
    l.update_status(&no("B"), &reported).await.unwrap();
    assert!(matches!(
        begin(l, &refund("B", "R1", 1_001), &lim).await,
        RefundBegin::Over(OverLimit::Remaining { .. })
    ));
    // Alipay reports 6000 (made elsewhere); our 3000 is still in flight, so it may not be in that
    // figure yet: both count, and only 1000 remains.
    l.create_order(&order("C", 10_000)).await.unwrap();
    let reported = status("TRADE_SUCCESS", Some(6_000), StatusSource::Query);
    l.update_status(&no("C"), &reported).await.unwrap();
    assert_eq!(
        begin(l, &refund("C", "R1", 3_000), &lim).await,
        RefundBegin::Fresh
    );
    assert_eq!(
        begin(l, &refund("C", "R2", 1_001), &lim).await,
        RefundBegin::Over(OverLimit::Remaining {
            paid: fen(10_000),
            refunded: fen(9_000)
        })
    );
    assert_eq!(
        l.refunded_besides(&no("C"), &req("R9")).await.unwrap(),
        fen(9_000)
    );
    assert_eq!(
        l.refunded_besides(&no("C"), &req("R1")).await.unwrap(),
        fen(6_000),
        "the request being decided is not counted"
    );
}

pub(crate) async fn a_refund_notification_settles_its_refund(b: &dyn Backend) {
    let store = b.fresh("a_refund_notification_settles").await;
    let l = &*store.open(&scope(APP)).await;
    l.create_order(&order("A", 10_000)).await.unwrap();
    let paid = status("TRADE_SUCCESS", None, StatusSource::Query);
    l.update_status(&no("A"), &paid).await.unwrap();
    let lim = no_daily_limit(10_000);
    begin(l, &refund("A", "R1", 6_000), &lim).await;
    // Alipay's notification of R1 arrives before R1's own answer.
    let n = ReceivedNotification {
        notify_id: "N1".into(),
        out_trade_no: no("A"),
        trade_status: TradeStatus::TradeSuccess,
        trade_no: None,
        refunded: Some(fen(6_000)),
        refund_request_no: Some(req("R1")),
        content: "c".into(),
        seen_at: None,
        paid_at: None,
        raw: RawForm {
            content_type: "application/x-www-form-urlencoded".into(),
            body: b"notify".to_vec(),
        },
    };
    assert_eq!(
        l.apply_notification(&n).await.unwrap(),
        NotifyApply::Applied
    );
    let refunds = l.refunds(&no("A")).await.unwrap();
    assert_eq!(refunds[0].state, RefundState::Succeeded);
    assert_eq!(refunds[0].total_refunded, Some(fen(6_000)));
    assert_eq!(
        refunds[0].detail.as_deref(),
        Some("confirmed by notification")
    );
    assert_eq!(
        l.order(&no("A")).await.unwrap().unwrap().refunded_amount,
        fen(6_000)
    );
    // Counted once: 6000 refunded, 4000 remains.
    assert_eq!(
        l.refunded_besides(&no("A"), &req("R2")).await.unwrap(),
        fen(6_000)
    );
    assert_eq!(
        begin(l, &refund("A", "R2", 4_000), &lim).await,
        RefundBegin::Fresh
    );
    assert!(
        l.unsettled_refunds()
            .await
            .unwrap()
            .iter()
            .all(|r| r.out_request_no != req("R1"))
    );
}

pub(crate) async fn an_outcome_applies_only_while_its_sender_holds_the_refund(b: &dyn Backend) {
    let store = b.fresh("an_outcome_applies_only_for_its_sender").await;
    let l = &*store.open(&scope(APP)).await;
    l.create_order(&order("A", 10_000)).await.unwrap();
    let lim = no_daily_limit(10_000);
    begin(l, &refund("A", "R1", 100), &lim).await;
    // Another process resends it: the first sender's late "failed" no longer applies.
    let other = NewRefund {
        owner: id("other"),
        ..refund("A", "R1", 100)
    };
    assert!(matches!(
        begin(l, &other, &lim).await,
        RefundBegin::Retry(_)
    ));
    let failed = RefundOutcome::state(RefundState::Failed);
    assert_eq!(
        finish(l, "A", "R1", &failed, Some("test")).await,
        Some(RefundState::Pending)
    );
    let unknown = RefundOutcome::state(RefundState::Unknown);
    assert_eq!(
        finish(l, "A", "R1", &unknown, Some("other")).await,
        Some(RefundState::Unknown)
    );
    // Settled once: a reconciliation's stale view changes nothing.
    assert_eq!(
        finish(l, "A", "R1", &failed, Some("other")).await,
        Some(RefundState::Failed)
    );
    assert_eq!(
        finish(l, "A", "R1", &unknown, Some("other")).await,
        Some(RefundState::Failed),
        "failed is settled; only success can follow it"
    );
    // Alipay's verified success applies whoever sent it.
    let succeeded = RefundOutcome::state(RefundState::Succeeded);
    assert_eq!(
        finish(l, "A", "R1", &succeeded, Some("test")).await,
        Some(RefundState::Succeeded)
    );
    assert_eq!(
        l.refund(&no("A"), &req("R1")).await.unwrap().unwrap().state,
        RefundState::Succeeded
    );
    assert_eq!(finish(l, "A", "R9", &failed, None).await, None);
}

pub(crate) async fn unsettled_refunds_carry_their_sender(b: &dyn Backend) {
    let store = b.fresh("unsettled_refunds_carry_their_sender").await;
    let l = &*store.open(&scope(APP)).await;
    l.create_order(&order("A", 10_000)).await.unwrap();
    let lim = no_daily_limit(10_000);
    begin(l, &refund("A", "R1", 100), &lim).await;
    let unsettled = l.unsettled_refunds().await.unwrap();
    assert_eq!(unsettled.len(), 1);
    assert_eq!(unsettled[0].owner, Some(id("test")));
    // A resend by another process takes the refund over.
    let other = NewRefund {
        owner: id("other"),
        ..refund("A", "R1", 100)
    };
    begin(l, &other, &lim).await;
    assert_eq!(
        l.unsettled_refunds().await.unwrap()[0].owner,
        Some(id("other"))
    );
    let succeeded = RefundOutcome::state(RefundState::Succeeded);
    finish(l, "A", "R1", &succeeded, None).await;
    assert!(l.unsettled_refunds().await.unwrap().is_empty());
}

pub(crate) async fn notifications_dedupe_and_never_move_status_backwards(b: &dyn Backend) {
    let store = b.fresh("notifications_dedupe").await;
    let l = &*store.open(&scope(APP)).await;
    l.create_order(&order("A", 100)).await.unwrap();
    let n = |id: &str, status: &str, content: &str, refunded: Option<i64>| ReceivedNotification {
        notify_id: id.into(),
        out_trade_no: no("A"),
        trade_status: TradeStatus::from(status),
        trade_no: Some("T".into()),
        refunded: refunded.map(fen),
        refund_request_no: None,
        content: content.into(),
        seen_at: None,
        paid_at: None,
        raw: RawForm {
            content_type: "application/x-www-form-urlencoded".into(),
            body: b"notify".to_vec(),
        },
    };
    let apply = |n: ReceivedNotification| async move { l.apply_notification(&n).await.unwrap() };
    assert_eq!(
        apply(n("N1", "TRADE_SUCCESS", "c1", None)).await,
        NotifyApply::Applied
    );
    let paid = l.order(&no("A")).await.unwrap().unwrap();
    assert_eq!(paid.trade_status, Some(TradeStatus::TradeSuccess));
    assert_eq!(paid.trade_no.as_deref(), Some("T"));
    assert_eq!(paid.status_source, Some(StatusSource::Notify));
    assert_eq!(
        apply(n("N1", "TRADE_SUCCESS", "c1", None)).await,
        NotifyApply::Duplicate
    );
    assert_eq!(
        apply(n("N1", "TRADE_SUCCESS", "other", None)).await,
        NotifyApply::ReusedId
    );
    assert_eq!(
        apply(n("N2", "TRADE_CLOSED", "c2", Some(100))).await,
        NotifyApply::Applied
    );
    assert_eq!(trade_status(l, "A").await, Some(TradeStatus::TradeClosed));
    assert_eq!(
        l.order(&no("A")).await.unwrap().unwrap().refunded_amount,
        fen(100)
    );
    assert_eq!(
        apply(n("N3", "TRADE_SUCCESS", "c3", None)).await,
        NotifyApply::Stale {
            incoming: TradeStatus::TradeSuccess,
            known: Some(TradeStatus::TradeClosed)
        }
    );
    assert_eq!(trade_status(l, "A").await, Some(TradeStatus::TradeClosed));
    // An older partial-refund notice arriving late is acknowledged, and changes nothing.
    assert_eq!(
        apply(n("N4", "TRADE_SUCCESS", "c4", Some(50))).await,
        NotifyApply::Applied
    );
    let after = l.order(&no("A")).await.unwrap().unwrap();
    assert_eq!(after.trade_status, Some(TradeStatus::TradeClosed));
    assert_eq!(after.refunded_amount, fen(100));
    l.reject_notification(Some("N5"), Some("A"), &"x".repeat(10_000))
        .await
        .unwrap();
    let long = "y".repeat(1_000);
    l.reject_notification(Some(&long), Some(&long), "forged")
        .await
        .unwrap();
    let all = l.notifications(&no("A")).await.unwrap();
    let accepted = all
        .iter()
        .filter(|n| n.verdict == NotificationVerdict::Accepted);
    assert_eq!(accepted.count(), 3);
    let last = all.last().unwrap();
    assert_eq!(last.verdict, NotificationVerdict::Rejected);
    assert_eq!(last.notify_id.as_deref(), Some("N5"));
    assert!(last.reason.as_ref().unwrap().len() <= MAX_REASON);
    let detail = l.order_detail(&no("A")).await.unwrap().unwrap();
    assert_eq!(detail.notifications, all);
    assert_eq!(all.len(), 4, "three accepted, one refused");
}

pub(crate) async fn lists_filter_by_status_and_day(b: &dyn Backend) {
    let store = b.fresh("lists_filter_by_status_and_day").await;
    let l = &*store.open(&scope(APP)).await;
    for (i, number) in ["A", "B", "C"].iter().enumerate() {
        l.create_order(&order(number, 100 + i as i64))
            .await
            .unwrap();
    }
    let paid = StatusUpdate {
        trade_no: Some("T".into()),
        ..status("TRADE_SUCCESS", None, StatusSource::Query)
    };
    assert!(l.update_status(&no("B"), &paid).await.unwrap());
    let list = |status: Option<StatusFilter>, day: Option<&str>, limit: usize| {
        let filter = OrderFilter {
            status,
            day: day.map(str::to_string),
            limit,
        };
        async move {
            l.list_orders(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.out_trade_no.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(None, None, 10).await, ["C", "B", "A"], "newest first");
    assert_eq!(
        list(Some(StatusFilter::Is(TradeStatus::TradeSuccess)), None, 10).await,
        ["B"]
    );
    assert_eq!(
        list(Some(StatusFilter::NotCreated), None, 10).await,
        ["C", "A"]
    );
    let today = &timestamp_now()[..10];
    assert_eq!(list(None, Some(today), 10).await.len(), 3);
    assert!(list(None, Some("2000-01-01"), 10).await.is_empty());
    assert!(
        list(None, Some("20__-%"), 10).await.is_empty(),
        "a day is not a pattern"
    );
    assert_eq!(list(None, None, 0).await, ["C"], "the limit is at least 1");
    assert_eq!(list(None, None, 2).await, ["C", "B"]);
    assert!(
        !l.update_status(&no("B"), &paid).await.unwrap(),
        "unchanged status is not rewritten"
    );
    let source = l.order(&no("B")).await.unwrap().unwrap().status_source;
    assert_eq!(source, Some(StatusSource::Query));
}

/// `update_status_then_order` changes what `update_status` would and answers with what `order`
/// reads after it: for a new status (the write), one already known (the read alone), one that
/// fills in a missing trade number, and an order the ledger does not have.
pub(crate) async fn a_status_update_answers_with_the_order_as_it_stands(b: &dyn Backend) {
    let store = b
        .fresh("a_status_update_answers_with_the_order_as_it_stands")
        .await;
    let l = &*store.open(&scope(APP)).await;
    l.create_order(&order("A", 1_000)).await.unwrap();
    let paid = status("TRADE_SUCCESS", None, StatusSource::Query);
    let with_trade_no = StatusUpdate {
        trade_no: Some("T1".into()),
        ..paid.clone()
    };
    for (update, changes_status) in [(&paid, true), (&paid, false), (&with_trade_no, true)] {
        let (changed, answered) = l.update_status_then_order(&no("A"), update).await.unwrap();
        assert_eq!(changed, changes_status, "{update:?}");
        let read = l.order(&no("A")).await.unwrap();
        assert_eq!(answered, read);
        assert_eq!(read.unwrap().trade_status, Some(TradeStatus::TradeSuccess));
    }
    assert_eq!(
        l.order(&no("A"))
            .await
            .unwrap()
            .unwrap()
            .trade_no
            .as_deref(),
        Some("T1")
    );
    let (changed, none) = l
        .update_status_then_order(&no("NONE"), &paid)
        .await
        .unwrap();
    assert!(!changed);
    assert_eq!(none, None);
}

/// A status the ledger has already, repeated with a trade number, a payment time or a larger
/// refund it lacks, records those (and only those); repeated bare it changes nothing, and a status
/// for an order the store does not hold records nothing.
pub(crate) async fn a_repeated_status_fills_in_only_what_is_missing(b: &dyn Backend) {
    let store = b
        .fresh("a_repeated_status_fills_in_only_what_is_missing")
        .await;
    let l = &*store.open(&scope(APP)).await;
    l.create_order(&order("A", 1_000)).await.unwrap();
    let paid = status("TRADE_SUCCESS", None, StatusSource::Notify);
    assert!(l.update_status(&no("A"), &paid).await.unwrap());
    let learned = l.order(&no("A")).await.unwrap().unwrap();
    assert_eq!(learned.trade_no, None);
    assert!(learned.paid_at.is_some(), "the time it was learned");

    let again =
        |trade_no: Option<&str>, refunded: Option<i64>, paid_at: Option<&str>| StatusUpdate {
            trade_no: trade_no.map(str::to_string),
            paid_at: paid_at.map(str::to_string),
            ..status("TRADE_SUCCESS", refunded, StatusSource::Query)
        };
    l.update_status(&no("A"), &again(Some("T1"), None, None))
        .await
        .unwrap();
    let order = l.order(&no("A")).await.unwrap().unwrap();
    assert_eq!(
        order.trade_no.as_deref(),
        Some("T1"),
        "the trade number it lacked"
    );
    assert_eq!(order.status_source, Some(StatusSource::Query));
    // A trade number it has is not replaced; a time it has is not moved.
    l.update_status(
        &no("A"),
        &again(Some("T2"), None, Some("2000-01-01 00:00:00")),
    )
    .await
    .unwrap();
    let order = l.order(&no("A")).await.unwrap().unwrap();
    assert_eq!(order.trade_no.as_deref(), Some("T1"));
    assert_eq!(order.paid_at, learned.paid_at);

    l.update_status(&no("A"), &again(None, Some(300), None))
        .await
        .unwrap();
    assert_eq!(
        l.order(&no("A")).await.unwrap().unwrap().refunded_amount,
        fen(300)
    );
    l.update_status(&no("A"), &again(None, Some(100), None))
        .await
        .unwrap();
    assert_eq!(
        l.order(&no("A")).await.unwrap().unwrap().refunded_amount,
        fen(300),
        "a refund total is never lowered"
    );

    let before = l.order(&no("A")).await.unwrap().unwrap();
    assert!(
        !l.update_status(&no("A"), &again(None, None, None))
            .await
            .unwrap()
    );
    assert_eq!(
        l.order(&no("A")).await.unwrap().unwrap(),
        before,
        "nothing changed"
    );
    assert!(!l.update_status(&no("NONE"), &paid).await.unwrap());
    assert_eq!(l.order(&no("NONE")).await.unwrap(), None);
}

/// A store opened again (as a restarted or second process would) holds what was committed.
pub(crate) async fn a_store_is_opened_many_times(b: &dyn Backend) {
    let store = b.fresh("a_store_is_opened_many_times").await;
    let first = store.open(&scope(APP)).await;
    first.create_order(&order("A", 100)).await.unwrap();
    let second = store.open(&scope(APP)).await;
    assert_eq!(
        second.order(&no("A")).await.unwrap(),
        first.order(&no("A")).await.unwrap()
    );
    drop(first);
    let third = store.open(&scope(APP)).await;
    assert!(third.order(&no("A")).await.unwrap().is_some());
    let entry = AuditEntry {
        tool: "refund",
        arguments: &serde_json::json!({"outTradeNo": "A"}),
        decision: AuditDecision::Refused("daily limit".into()),
        outcome: AuditOutcome::NotSent,
    };
    third.audit(&entry).await.unwrap();
    second.audit(&entry).await.unwrap();
}

/// Begin one refund through `ledger`, from a task of its own.
fn spawn_begin(
    ledger: &Arc<dyn Ledger>,
    r: NewRefund,
    limits: &RefundLimits,
) -> tokio::task::JoinHandle<(NewRefund, RefundBegin)> {
    let (ledger, limits) = (ledger.clone(), limits.clone());
    tokio::spawn(async move {
        let r = NewRefund {
            owner: ledger.instance().clone(),
            ..r
        };
        let begin = ledger.begin_refund(&r, &limits).await.unwrap();
        (r, begin)
    })
}

pub(crate) async fn racing_refunds_never_exceed_what_was_paid(b: &dyn Backend) {
    let store = b.fresh("racing_refunds_never_exceed_what_was_paid").await;
    let handles: [Arc<dyn Ledger>; 2] = [
        store.open(&scope(APP)).await.into(),
        store.open(&scope(APP)).await.into(),
    ];
    let lim = no_daily_limit(10_000);
    for i in 0..60 {
        let number = format!("RACE{i}");
        handles[0]
            .create_order(&order(&number, 10_000))
            .await
            .unwrap();
        // Eight tasks, two per request number (one through each handle), 3000 each: any order of
        // decisions gives three refunds that fit, three resends and two refusals.
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let r = refund(&number, &format!("R{}", t / 2), 3_000);
                spawn_begin(&handles[t % 2], r, &lim)
            })
            .collect();
        let mut fresh: HashMap<OutRequestNo, usize> = HashMap::new();
        let (mut fresh_fen, mut retries, mut over) = (0, 0, 0);
        for task in tasks {
            let (r, begin) = task.await.unwrap();
            match begin {
                RefundBegin::Fresh => {
                    *fresh.entry(r.out_request_no).or_default() += 1;
                    fresh_fen += r.amount.fen();
                }
                RefundBegin::Retry(_) => retries += 1,
                RefundBegin::Over(OverLimit::Remaining { .. }) => over += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(
            fresh_fen <= 10_000,
            "{number}: {fresh_fen} fen refunded of 10000"
        );
        assert!(fresh.values().all(|&n| n == 1), "{number}: {fresh:?}");
        assert_eq!((fresh.len(), retries, over), (3, 3, 2), "{number}");
        for h in &handles {
            let besides = h
                .refunded_besides(&no(&number), &req("NONE"))
                .await
                .unwrap();
            assert_eq!(besides, fen(9_000));
        }
    }
}

pub(crate) async fn racing_refunds_never_exceed_the_daily_budget(b: &dyn Backend) {
    let store = b
        .fresh("racing_refunds_never_exceed_the_daily_budget")
        .await;
    let handles: [Arc<dyn Ledger>; 2] = [
        store.open(&scope(APP)).await.into(),
        store.open(&scope(APP)).await.into(),
    ];
    for i in 0..30 {
        // Eight orders, one refund of 1000 each, on a day whose budget is 5000.
        let limits = RefundLimits {
            daily: Some(fen(5_000)),
            day: format!("2026-{:02}-{:02}", i / 28 + 1, i % 28 + 1),
            paid: fen(10_000),
        };
        let numbers: Vec<String> = (0..8).map(|t| format!("DAY{i}X{t}")).collect();
        for number in &numbers {
            handles[0]
                .create_order(&order(number, 10_000))
                .await
                .unwrap();
        }
        let tasks: Vec<_> = numbers
            .iter()
            .enumerate()
            .map(|(t, number)| spawn_begin(&handles[t % 2], refund(number, "R1", 1_000), &limits))
            .collect();
        let mut fresh = 0;
        for task in tasks {
            match task.await.unwrap().1 {
                RefundBegin::Fresh => fresh += 1,
                RefundBegin::Over(OverLimit::Daily { used, .. }) => assert_eq!(used, fen(5_000)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(fresh, 5, "{}", limits.day);
        assert_eq!(
            handles[1].refunded_on_day(&limits.day).await.unwrap(),
            fen(5_000)
        );
    }
}

pub(crate) async fn a_dead_sender_is_not_alive(b: &dyn Backend) {
    let store = b.fresh("a_dead_sender_is_not_alive").await;
    let one = store.open(&scope(APP)).await;
    let two = store.open(&scope(APP)).await;
    let first = one.instance().clone();
    assert_ne!(&first, two.instance(), "each handle is its own process");
    assert!(one.is_alive(&first).await.unwrap());
    assert!(two.is_alive(&first).await.unwrap());
    assert!(two.is_alive(two.instance()).await.unwrap());
    one.create_order(&order("A", 10_000)).await.unwrap();
    let sent = NewRefund {
        owner: first.clone(),
        ..refund("A", "R1", 100)
    };
    begin(&*one, &sent, &no_daily_limit(10_000)).await;
    drop(one);
    assert!(!two.is_alive(&first).await.unwrap(), "its sender died");
    assert!(!two.is_alive(&first).await.unwrap(), "and stays dead");
    assert!(two.is_alive(two.instance()).await.unwrap());
    let unsettled = two.unsettled_refunds().await.unwrap();
    assert_eq!(unsettled.len(), 1);
    assert_eq!(unsettled[0].owner.as_ref(), Some(&first));
    for stranger in ["", "../../etc/passwd", "deadbeef", "test"] {
        assert!(!two.is_alive(&id(stranger)).await.unwrap(), "{stranger:?}");
    }
}

pub(crate) async fn the_order_lock_serialises_its_holders(b: &dyn Backend) {
    let store = b.fresh("the_order_lock_serialises_its_holders").await;
    let l: Arc<dyn Ledger> = store.open(&scope(APP)).await.into();
    let held = l.lock_order(&no("A")).await.unwrap();
    let taken = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (l, taken) = (l.clone(), taken.clone());
        tokio::spawn(async move {
            let guard = l.lock_order(&no("A")).await.unwrap();
            taken.store(true, Ordering::SeqCst);
            drop(guard);
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!taken.load(Ordering::SeqCst), "a second holder waits");
    let other = tokio::time::timeout(Duration::from_secs(5), l.lock_order(&no("B"))).await;
    drop(other.expect("another order's lock is free").unwrap());
    drop(held);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("released on drop")
        .unwrap();
    assert!(taken.load(Ordering::SeqCst));
    // Across processes: a second handle on the same store waits for the first's holder.
    let second: Arc<dyn Ledger> = store.open(&scope(APP)).await.into();
    let a = no("A");
    let held = l.lock_order(&a).await.unwrap();
    let elsewhere = tokio::time::timeout(Duration::from_millis(300), second.lock_order(&a)).await;
    assert!(elsewhere.is_err(), "another process's holder waits too");
    drop(held);
    let elsewhere = tokio::time::timeout(Duration::from_secs(5), second.lock_order(&a)).await;
    drop(elsewhere.expect("released across processes").unwrap());
    // Many holders: each one's read-then-write of a shared count is never interleaved.
    let (count, inside) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (l, count, inside) = (l.clone(), count.clone(), inside.clone());
            tokio::spawn(async move {
                let _guard = l.lock_order(&no("A")).await.unwrap();
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "one holder at a time"
                );
                let seen = count.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                count.store(seen + 1, Ordering::SeqCst);
                inside.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(count.load(Ordering::SeqCst), 20);
}

pub(crate) async fn a_wait_for_an_order_lock_gives_up(b: &dyn Backend) {
    let store = b.fresh("a_wait_for_an_order_lock_gives_up").await;
    let wait = Duration::from_millis(300);
    let one: Arc<dyn Ledger> = store.open(&scope(APP)).await.into();
    let two: Arc<dyn Ledger> = store.open_waiting(&scope(APP), wait).await.into();
    let gave_up = |r: Result<OrderLock, LedgerError>, what: &str| {
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{what}: taken while held"));
        assert_eq!(e.kind, LedgerErrorKind::Unavailable, "{what}: {e}");
        assert!(
            e.message.contains("order A") && e.message.contains("nothing was done"),
            "{what}: {e}"
        );
    };
    // Held by another process: the waiter gives up after its wait, not at once, not never.
    let held = one.lock_order(&no("A")).await.unwrap();
    let asked = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), two.lock_order(&no("A")))
        .await
        .expect("a wait for an order lock ends");
    assert!(
        asked.elapsed() >= wait,
        "gave up after {:?}",
        asked.elapsed()
    );
    gave_up(r, "held elsewhere");
    // Held in the same process: the same.
    drop(held);
    let mine = two.lock_order(&no("A")).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), two.lock_order(&no("A")))
        .await
        .expect("a wait for an order lock ends");
    gave_up(r, "held here");
    // A wait that gave up leaves nothing behind: once the holder lets go, the lock is free to all.
    drop(mine);
    let again = tokio::time::timeout(Duration::from_secs(5), one.lock_order(&no("A"))).await;
    drop(again.expect("free after the holder let go").unwrap());
    let again = tokio::time::timeout(Duration::from_secs(5), two.lock_order(&no("A"))).await;
    drop(again.expect("free after the holder let go").unwrap());
}

pub(crate) async fn changes_are_heard(b: &dyn Backend) {
    let store = b.fresh("changes_are_heard").await;
    let l = &*store.open(&scope(APP)).await;
    let mut rx = l.changes();
    l.create_order(&order("A", 10_000)).await.unwrap();
    l.create_order(&order("B", 10_000)).await.unwrap();
    // Drain whatever creating announced (a backend may or may not).
    while rx.try_recv().is_ok() {}
    let mut heard = async |what: &str| {
        let changed = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing heard after {what}"))
            .unwrap();
        assert_eq!(changed.out_trade_no, no("A"), "{what}");
    };
    let paid = status("TRADE_SUCCESS", None, StatusSource::Query);
    assert!(l.update_status(&no("A"), &paid).await.unwrap());
    heard("a status change").await;
    begin(l, &refund("A", "R1", 100), &no_daily_limit(10_000)).await;
    heard("a refund begun").await;
    let settled = RefundOutcome::state(RefundState::Succeeded);
    finish(l, "A", "R1", &settled, None).await;
    heard("a refund settled").await;
    let n = ReceivedNotification {
        notify_id: "N1".into(),
        out_trade_no: no("A"),
        trade_status: TradeStatus::TradeClosed,
        trade_no: None,
        refunded: None,
        refund_request_no: None,
        content: "c".into(),
        seen_at: None,
        paid_at: None,
        raw: RawForm {
            content_type: "application/x-www-form-urlencoded".into(),
            body: b"notify".to_vec(),
        },
    };
    assert_eq!(
        l.apply_notification(&n).await.unwrap(),
        NotifyApply::Applied
    );
    heard("a notification applied").await;
    // What changed nothing is not announced.
    assert_eq!(
        l.apply_notification(&n).await.unwrap(),
        NotifyApply::Duplicate
    );
    let closed = status("TRADE_CLOSED", None, StatusSource::Query);
    assert!(!l.update_status(&no("A"), &closed).await.unwrap());
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    // A subscriber that came later hears what follows.
    let mut late = l.changes();
    let refunded = status("TRADE_CLOSED", Some(100), StatusSource::Query);
    l.update_status(&no("B"), &refunded).await.unwrap();
    let changed = tokio::time::timeout(Duration::from_secs(5), late.recv()).await;
    assert_eq!(changed.unwrap().unwrap().out_trade_no, no("B"));
}

pub(crate) async fn apps_sharing_a_store_never_meet(b: &dyn Backend) {
    let store = b.fresh("apps_sharing_a_store_never_meet").await;
    let (one, two) = (
        &*store.open(&scope(APP)).await,
        &*store.open(&scope(OTHER_APP)).await,
    );
    assert_eq!(one.scope(), &scope(APP));
    assert_eq!(two.scope(), &scope(OTHER_APP));
    // The same number in each app: two orders.
    assert!(matches!(
        one.create_order(&order("A", 10_000)).await.unwrap(),
        CreateOrder::Created(_)
    ));
    assert!(matches!(
        two.create_order(&order("A", 500)).await.unwrap(),
        CreateOrder::Created(_)
    ));
    one.create_order(&order("ONLY1", 100)).await.unwrap();
    assert_eq!(two.order(&no("ONLY1")).await.unwrap(), None);
    assert_eq!(
        one.order(&no("A"))
            .await
            .unwrap()
            .unwrap()
            .total_amount
            .fen(),
        10_000
    );
    assert_eq!(
        two.order(&no("A"))
            .await
            .unwrap()
            .unwrap()
            .total_amount
            .fen(),
        500
    );
    // Refunds, and the remaining amount, are each app's.
    let lim = RefundLimits {
        daily: Some(fen(6_000)),
        ..no_daily_limit(10_000)
    };
    assert_eq!(
        begin(one, &refund("A", "R1", 6_000), &lim).await,
        RefundBegin::Fresh
    );
    assert_eq!(two.refund(&no("A"), &req("R1")).await.unwrap(), None);
    assert!(two.refunds(&no("A")).await.unwrap().is_empty());
    assert!(two.unsettled_refunds().await.unwrap().is_empty());
    assert_eq!(
        two.refunded_besides(&no("A"), &req("R2")).await.unwrap(),
        Money::ZERO
    );
    // The daily budget too: one's 6000 leave two's day untouched.
    assert_eq!(two.refunded_on_day(&lim.day).await.unwrap(), Money::ZERO);
    assert_eq!(
        begin(
            two,
            &refund("A", "R1", 400),
            &RefundLimits {
                paid: fen(500),
                ..lim.clone()
            }
        )
        .await,
        RefundBegin::Fresh,
        "the same request number in another app is another refund"
    );
    assert_eq!(one.refunded_on_day(&lim.day).await.unwrap(), fen(6_000));
    assert_eq!(two.refunded_on_day(&lim.day).await.unwrap(), fen(400));
    // One's outcome, named by number, never lands on two's refund.
    let failed = RefundOutcome::state(RefundState::Failed);
    assert_eq!(
        one.finish_refund(&no("A"), &req("R1"), &failed, None)
            .await
            .unwrap(),
        Some(RefundState::Failed)
    );
    let theirs = two.refund(&no("A"), &req("R1")).await.unwrap().unwrap();
    assert_eq!(
        (theirs.state, theirs.refund_amount.fen()),
        (RefundState::Pending, 400)
    );
    assert_eq!(
        two.finish_refund(&no("ONLY1"), &req("R1"), &failed, None)
            .await
            .unwrap(),
        None
    );
    // Status and notifications too.
    let paid = status("TRADE_SUCCESS", Some(6_000), StatusSource::Query);
    assert!(one.update_status(&no("A"), &paid).await.unwrap());
    let theirs = two.order(&no("A")).await.unwrap().unwrap();
    assert_eq!(
        (theirs.trade_status, theirs.refunded_amount),
        (None, Money::ZERO)
    );
    assert!(!two.update_status(&no("ONLY1"), &paid).await.unwrap());
    let n = ReceivedNotification {
        notify_id: "N1".into(),
        out_trade_no: no("A"),
        trade_status: TradeStatus::TradeSuccess,
        trade_no: None,
        refunded: None,
        refund_request_no: None,
        content: "one".into(),
        seen_at: None,
        paid_at: None,
        raw: RawForm {
            content_type: "application/x-www-form-urlencoded".into(),
            body: b"notify".to_vec(),
        },
    };
    assert_eq!(
        one.apply_notification(&n).await.unwrap(),
        NotifyApply::Applied
    );
    let theirs = ReceivedNotification {
        content: "two".into(),
        ..n.clone()
    };
    assert_eq!(
        two.apply_notification(&theirs).await.unwrap(),
        NotifyApply::Applied
    );
    assert_eq!(one.notifications(&no("A")).await.unwrap().len(), 1);
    assert_eq!(two.notifications(&no("A")).await.unwrap().len(), 1);
    // Lists.
    let all = OrderFilter {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(one.list_orders(&all).await.unwrap().len(), 2);
    let theirs = two.list_orders(&all).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].total_amount.fen(), 500);
}

fn assert_corrupt<T: fmt::Debug>(what: &str, r: Result<T, LedgerError>) {
    match r {
        Err(e) => assert_eq!(e.kind, LedgerErrorKind::Corrupt, "{what}: {e}"),
        Ok(v) => panic!("{what}: read as {v:?}"),
    }
}

pub(crate) async fn corrupt_rows_are_errors(b: &dyn Backend) {
    let store = b.fresh("corrupt_rows_are_errors").await;
    let s = scope(APP);
    let l = &*store.open(&s).await;
    for number in ["KIND", "AMOUNT", "REFUNDED", "STATE", "REFUND_AMOUNT"] {
        l.create_order(&order(number, 10_000)).await.unwrap();
    }
    let lim = no_daily_limit(10_000);
    begin(l, &refund("STATE", "R1", 100), &lim).await;
    begin(l, &refund("REFUND_AMOUNT", "R1", 100), &lim).await;
    let all = OrderFilter {
        limit: 10,
        ..Default::default()
    };

    store.corrupt(&s, &Corruption::OrderKind(no("KIND"))).await;
    assert_corrupt("an order's kind", l.order(&no("KIND")).await);
    assert_corrupt("a list with it", l.list_orders(&all).await);
    assert_corrupt(
        "creating it again",
        l.create_order(&order("KIND", 10_000)).await,
    );
    store
        .corrupt(&s, &Corruption::OrderAmount(no("AMOUNT")))
        .await;
    assert_corrupt("an order's amount", l.order(&no("AMOUNT")).await);
    store
        .corrupt(&s, &Corruption::OrderRefunded(no("REFUNDED")))
        .await;
    assert_corrupt("an order's refunded", l.order(&no("REFUNDED")).await);
    assert_corrupt(
        "a refund on it",
        l.begin_refund(&refund("REFUNDED", "R1", 100), &lim).await,
    );

    store
        .corrupt(&s, &Corruption::RefundState(no("STATE"), req("R1")))
        .await;
    assert_corrupt("a refund's state", l.refund(&no("STATE"), &req("R1")).await);
    assert_corrupt("its order's refunds", l.refunds(&no("STATE")).await);
    assert_corrupt("the unsettled refunds", l.unsettled_refunds().await);
    assert_corrupt("the day's refunds", l.refunded_on_day(&lim.day).await);
    assert_corrupt(
        "what else was refunded",
        l.refunded_besides(&no("STATE"), &req("R2")).await,
    );
    assert_corrupt(
        "another refund on its order",
        l.begin_refund(&refund("STATE", "R2", 100), &lim).await,
    );
    let succeeded = RefundOutcome::state(RefundState::Succeeded);
    assert_corrupt(
        "its outcome",
        l.finish_refund(&no("STATE"), &req("R1"), &succeeded, None)
            .await,
    );

    store
        .corrupt(
            &s,
            &Corruption::RefundAmount(no("REFUND_AMOUNT"), req("R1")),
        )
        .await;
    assert_corrupt(
        "a refund's amount",
        l.refund(&no("REFUND_AMOUNT"), &req("R1")).await,
    );
    assert_corrupt(
        "another refund on its order",
        l.begin_refund(&refund("REFUND_AMOUNT", "R2", 100), &lim)
            .await,
    );
    // Another app's rows are not touched by the corrupt ones.
    let other = store.open(&scope(OTHER_APP)).await;
    assert!(
        other.list_orders(&all).await.unwrap().is_empty(),
        "another app's rows are sound"
    );
}

pub(crate) async fn an_approval_is_decided_once(b: &dyn Backend) {
    let store = b.fresh("an_approval_is_decided_once").await;
    let l = store.open(&scope(APP)).await;
    l.create_order(&order("A", 10_000)).await.unwrap();
    let asked = NewRefund {
        step: ApprovalStep::Ask,
        ..refund("A", "R1", 2_000)
    };
    assert_eq!(
        l.begin_refund(&asked, &no_daily_limit(10_000))
            .await
            .unwrap(),
        RefundBegin::Fresh
    );
    let r = l.refund(&no("A"), &req("R1")).await.unwrap().unwrap();
    assert_eq!(r.state, RefundState::AwaitingApproval);
    // Awaiting approval counts against what remains, and asking again finds it waiting.
    assert_eq!(
        l.refunded_besides(&no("A"), &req("R2")).await.unwrap(),
        fen(2_000)
    );
    assert!(matches!(
        l.begin_refund(&asked, &no_daily_limit(10_000))
            .await
            .unwrap(),
        RefundBegin::StillAwaiting(_)
    ));
    let approval = |hash: &str| ApprovalRecord {
        token_hash: hash.into(),
        out_trade_no: no("A"),
        out_request_no: req("R1"),
        csrf: "c".into(),
        paid: fen(10_000),
        refunded: Money::ZERO,
        expires_at: "2026-11-25 10:15:00".into(),
        status: ApprovalStatus::Open,
        created_at: String::new(),
        decided_at: None,
    };
    l.put_approval(&approval("h1")).await.unwrap();
    // A new link for the same refund replaces the open one.
    l.put_approval(&approval("h2")).await.unwrap();
    assert_eq!(
        l.approval("h1").await.unwrap().unwrap().status,
        ApprovalStatus::Replaced
    );
    let open = l.open_approvals().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].token_hash, "h2");
    assert_eq!(open[0].paid, fen(10_000));
    // Decided once: of two decisions only the first wins.
    assert!(
        l.close_approval("h2", ApprovalStatus::Approved)
            .await
            .unwrap()
    );
    assert!(
        !l.close_approval("h2", ApprovalStatus::Denied)
            .await
            .unwrap()
    );
    assert_eq!(
        l.approval("h2").await.unwrap().unwrap().status,
        ApprovalStatus::Approved
    );
    assert!(l.open_approvals().await.unwrap().is_empty());
    assert_eq!(l.approval("nope").await.unwrap(), None);
    // Another app sees none of it.
    let other = store.open(&scope(OTHER_APP)).await;
    assert_eq!(other.approval("h2").await.unwrap(), None);
    // Approved: sent now, under every limit again, the refund itself counted once for the day
    // (20.00 awaiting under a 30.00 budget fits; counted twice it would not).
    let approved = NewRefund {
        step: ApprovalStep::Approved,
        ..refund("A", "R1", 2_000)
    };
    let budget = RefundLimits {
        daily: Some(fen(3_000)),
        ..no_daily_limit(10_000)
    };
    assert_eq!(l.refunded_on_day("2026-11-25").await.unwrap(), fen(2_000));
    assert_eq!(
        l.begin_refund(&approved, &budget).await.unwrap(),
        RefundBegin::Fresh
    );
    assert_eq!(
        l.refund(&no("A"), &req("R1")).await.unwrap().unwrap().state,
        RefundState::Pending
    );
}

pub(crate) async fn a_days_payments_and_refunds_are_found(b: &dyn Backend) {
    let store = b.fresh("a_days_payments_and_refunds_are_found").await;
    let l = store.open(&scope(APP)).await;
    let l = l.as_ref();
    for number in ["A", "B", "C"] {
        l.create_order(&order(number, 1_000)).await.unwrap();
    }
    // A: paid at the time Alipay gave; B: paid, no time given (the time it was learned counts);
    // C: never paid.
    let a = StatusUpdate {
        paid_at: Some("2026-11-30 23:59:59".into()),
        ..status("TRADE_SUCCESS", None, StatusSource::Notify)
    };
    l.update_status(&no("A"), &a).await.unwrap();
    // A later source does not move the payment's time.
    let later = StatusUpdate {
        paid_at: Some("2026-12-01 00:00:05".into()),
        ..status("TRADE_FINISHED", None, StatusSource::Query)
    };
    l.update_status(&no("A"), &later).await.unwrap();
    l.update_status(
        &no("B"),
        &status("TRADE_SUCCESS", None, StatusSource::Query),
    )
    .await
    .unwrap();
    let a = l.order(&no("A")).await.unwrap().unwrap();
    assert_eq!(a.paid_at.as_deref(), Some("2026-11-30 23:59:59"));
    assert_eq!(l.order(&no("C")).await.unwrap().unwrap().paid_at, None);
    let paid_on = |day: &'static str| async move {
        l.paid_on(day)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.out_trade_no.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(paid_on("2026-11-30").await, ["A"]);
    let today = &timestamp_now()[..10];
    let b = l.order(&no("B")).await.unwrap().unwrap();
    assert_eq!(b.paid_at.as_deref().map(|t| &t[..10]), Some(today));
    let listed: Vec<String> = l
        .paid_on(today)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.out_trade_no.to_string())
        .collect();
    assert_eq!(listed, ["B"]);
    // Refunds: only succeeded ones count, on the day they were recorded as such.
    let limits = no_daily_limit(1_000);
    for (request, state) in [("R1", RefundState::Succeeded), ("R2", RefundState::Failed)] {
        begin(l, &refund("B", request, 100), &limits).await;
        finish(l, "B", request, &RefundOutcome::state(state), Some("test")).await;
    }
    begin(l, &refund("B", "R3", 100), &limits).await;
    let succeeded: Vec<String> = l
        .refunds_succeeded_on(today)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.out_request_no.to_string())
        .collect();
    assert_eq!(succeeded, ["R1"]);
    assert!(
        l.refunds_succeeded_on("2026-11-30")
            .await
            .unwrap()
            .is_empty()
    );
    // Settled by a bill with its time: that day's, and a later confirmation does not move it.
    begin(l, &refund("B", "R4", 100), &limits).await;
    let by_bill = RefundOutcome {
        succeeded_at: Some("2026-11-30 23:59:00".into()),
        detail: Some("confirmed by the bill of 2026-11-30".into()),
        ..RefundOutcome::state(RefundState::Succeeded)
    };
    finish(l, "B", "R4", &by_bill, None).await;
    finish(
        l,
        "B",
        "R4",
        &RefundOutcome::state(RefundState::Succeeded),
        Some("test"),
    )
    .await;
    let on_day: Vec<String> = l
        .refunds_succeeded_on("2026-11-30")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.out_request_no.to_string())
        .collect();
    assert_eq!(on_day, ["R4"]);
    let r4 = l.refund(&no("B"), &req("R4")).await.unwrap().unwrap();
    assert_eq!(
        r4.detail.as_deref(),
        Some("confirmed by the bill of 2026-11-30"),
        "a later confirmation keeps what was recorded"
    );
    // The bill proves a payment, and never moves a trade further along back.
    l.update_status(&no("C"), &status("TRADE_CLOSED", None, StatusSource::Close))
        .await
        .unwrap();
    let from_bill = StatusUpdate {
        paid_at: Some("2026-11-30 10:00:00".into()),
        ..status("TRADE_SUCCESS", None, StatusSource::Bill)
    };
    assert!(!l.update_status(&no("C"), &from_bill).await.unwrap());
    assert_eq!(trade_status(l, "C").await, Some(TradeStatus::TradeClosed));
    // A status repeated later (a partial refund's TRADE_SUCCESS) is no payment time.
    l.create_order(&order("D", 1_000)).await.unwrap();
    l.update_status(
        &no("D"),
        &status("TRADE_SUCCESS", None, StatusSource::Query),
    )
    .await
    .unwrap();
    let first = l.order(&no("D")).await.unwrap().unwrap().paid_at;
    l.update_status(
        &no("D"),
        &status("TRADE_SUCCESS", Some(100), StatusSource::Refund),
    )
    .await
    .unwrap();
    assert_eq!(l.order(&no("D")).await.unwrap().unwrap().paid_at, first);
}
