//! Orders that end unpaid with no word from Alipay. A link nobody opened has no trade at Alipay, so
//! its expiry sends no notification; a trade Alipay closed at its expiry may have been told to a
//! notify URL that was down. Every minute (while some target hears of expiries) this asks Alipay
//! about orders past their expiry whose end no event has told yet: the query records a close or a
//! late payment the usual way (with its event), and an order Alipay has no trade for is recorded
//! as expired. An order Alipay keeps answering "still waiting" for is asked again less and less
//! often, so a few stuck orders neither spend Alipay's rate limit nor crowd out the others.

use std::collections::HashMap;
use std::time::Duration;

use alipay_openapi::time::format_timestamp;
use tokio::time::Instant;

use crate::domain::OutTradeNo;
use crate::service::Services;
use crate::service::orders::{self, Queried};

/// How often the sweep runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Alipay closes an expired trade at its own pace: the sweep asks only this long after expiry.
const GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// Orders older than this are not asked about any more.
const LOOK_BACK: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// Queries per sweep, the most recently expired first, of this many candidates.
const PER_SWEEP: usize = 20;
const CANDIDATES: usize = 200;
/// The longest wait before an order still unsettled is asked about again.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The sweep, with when each order may be asked about again.
#[derive(Default)]
pub struct Sweeper {
    asked: HashMap<OutTradeNo, (u32, Instant)>,
}

impl Sweeper {
    /// One sweep; returns how many orders were recorded as expired.
    pub async fn sweep(&mut self, svc: &Services) -> usize {
        let now = svc.clock.now().await;
        let (since, by) = (
            format_timestamp(&(now - LOOK_BACK)),
            format_timestamp(&(now - GRACE)),
        );
        let candidates = match svc.ledger.expired_untold(&since, &by, CANDIDATES).await {
            Ok(orders) => orders,
            Err(e) => {
                tracing::warn!(error = %e, "expiry sweep: cannot read the ledger");
                return 0;
            }
        };
        // Forget orders that are no longer candidates (told, or too old).
        self.asked
            .retain(|no, _| candidates.iter().any(|o| &o.out_trade_no == no));
        let due: Vec<OutTradeNo> = candidates
            .into_iter()
            .map(|o| o.out_trade_no)
            .filter(|no| {
                self.asked
                    .get(no)
                    .is_none_or(|(_, next)| *next <= Instant::now())
            })
            .take(PER_SWEEP)
            .collect();
        let mut expired = 0;
        for no in due {
            if let Queried::NotOpenedYet { expired: true, .. } = orders::query(svc, &no).await {
                match svc.ledger.note_expired(&no).await {
                    Ok(true) => expired += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(out_trade_no = %no, error = %e, "expiry sweep: cannot record")
                    }
                }
            }
            // Asked: 1 min, 2, 4, … up to an hour before the next time, if it is still untold.
            let asks = self.asked.get(&no).map_or(0, |(n, _)| *n) + 1;
            let wait = SWEEP_EVERY
                .saturating_mul(1 << asks.min(6).saturating_sub(1))
                .min(MAX_BACKOFF);
            self.asked.insert(no, (asks, Instant::now() + wait));
        }
        expired
    }
}

/// One sweep with no memory of earlier ones (tests, one-off runs).
pub async fn sweep(svc: &Services) -> usize {
    Sweeper::default().sweep(svc).await
}
