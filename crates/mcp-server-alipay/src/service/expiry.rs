//! Orders that end unpaid with no word from Alipay. A link nobody opened has no trade at Alipay, so
//! its expiry sends no notification; a trade Alipay closed at its expiry may have been told to a
//! notify URL that was down. Every minute (while events are delivered anywhere) this asks Alipay
//! about orders past their expiry whose end no event has told yet: the query records a close or a
//! late payment the usual way (with its event), and an order Alipay has no trade for is recorded
//! as expired.

use std::time::Duration;

use alipay_openapi::time::format_timestamp;

use crate::service::Services;
use crate::service::orders::{self, Queried};

/// How often the sweep runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Alipay closes an expired trade at its own pace: the sweep asks only this long after expiry.
const GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// Orders older than this are not asked about any more.
const LOOK_BACK: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// Queries per sweep, the most recently expired first.
const PER_SWEEP: usize = 20;

/// One sweep; returns how many orders were recorded as expired.
pub async fn sweep(svc: &Services) -> usize {
    let now = svc.clock.now().await;
    let (since, by) = (
        format_timestamp(&(now - LOOK_BACK)),
        format_timestamp(&(now - GRACE)),
    );
    let orders = match svc.ledger.expired_untold(&since, &by, PER_SWEEP).await {
        Ok(orders) => orders,
        Err(e) => {
            tracing::warn!(error = %e, "expiry sweep: cannot read the ledger");
            return 0;
        }
    };
    let mut expired = 0;
    for order in orders {
        let no = &order.out_trade_no;
        if let Queried::NotOpenedYet { expired: true, .. } = orders::query(svc, no).await {
            match svc.ledger.note_expired(no).await {
                Ok(true) => expired += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(out_trade_no = %no, error = %e, "expiry sweep: cannot record")
                }
            }
        }
    }
    expired
}
