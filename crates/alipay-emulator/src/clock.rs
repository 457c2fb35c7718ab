//! The emulator's clock: real Beijing time plus an offset that tests move forward
//! (`POST /__emulator/clock`), so expiries and notification retries can be reached without
//! waiting. Every time the emulator reads or writes (trade timestamps, `notify_time`, the retry
//! schedule, `time_expire`) comes from here; only the request `timestamp` tolerance is checked
//! against the real clock, because the merchant's clock did not move.
//!
//! The clock only moves forward, so nothing already recorded is ever "in the future" of a later
//! reading. The offset is kept in the state file with the trades it dated.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, FixedOffset, TimeDelta};

/// The furthest the clock may be moved ahead in total: 100 years, far beyond any refund window
/// and safely inside chrono's range.
pub(crate) const MAX_OFFSET_SECONDS: i64 = 100 * 366 * 24 * 3600;

/// Real time plus an offset in whole seconds.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_seconds: AtomicI64,
}

/// Why the clock cannot move as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the clock is already {current} s ahead; moving it {requested} s more would pass the limit of {MAX_OFFSET_SECONDS} s (100 years)"
)]
pub(crate) struct TooFar {
    current: i64,
    requested: u64,
}

impl Clock {
    /// A clock `offset_seconds` ahead of real time (the value saved in the state file; a
    /// negative or oversized value from a hand-edited file is clamped into range).
    pub(crate) fn new(offset_seconds: i64) -> Self {
        Self {
            offset_seconds: AtomicI64::new(offset_seconds.clamp(0, MAX_OFFSET_SECONDS)),
        }
    }

    pub(crate) fn offset_seconds(&self) -> i64 {
        self.offset_seconds.load(Ordering::SeqCst)
    }

    /// The emulator's now, Beijing time.
    pub(crate) fn now(&self) -> DateTime<FixedOffset> {
        self.at(alipay_openapi::time::beijing_now())
    }

    /// The emulator's reading of a real instant.
    pub(crate) fn at(&self, real: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        // In range by construction: the offset is at most 100 years.
        real + TimeDelta::seconds(self.offset_seconds())
    }

    /// The emulator's now in Unix milliseconds (the notification schedule's unit).
    pub(crate) fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Move the clock `seconds` forward; returns the new offset.
    pub(crate) fn advance(&self, seconds: u64) -> Result<i64, TooFar> {
        self.offset_seconds
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |current| {
                i64::try_from(seconds)
                    .ok()
                    .and_then(|s| current.checked_add(s))
                    .filter(|next| *next <= MAX_OFFSET_SECONDS)
            })
            .map(|previous| previous + seconds as i64)
            .map_err(|current| TooFar {
                current,
                requested: seconds,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_within_its_limit() {
        let clock = Clock::new(0);
        let before = alipay_openapi::time::beijing_now();
        assert_eq!(clock.advance(3600), Ok(3600));
        assert_eq!(clock.advance(0), Ok(3600));
        let ahead = (clock.now() - before).num_seconds();
        assert!((3600..3610).contains(&ahead), "{ahead}");
        let err = clock.advance(MAX_OFFSET_SECONDS as u64).unwrap_err();
        assert!(err.to_string().contains("100 years"), "{err}");
        assert_eq!(
            clock.offset_seconds(),
            3600,
            "a refused move changes nothing"
        );
        assert!(clock.advance(u64::MAX).is_err());
        assert_eq!(Clock::new(-5).offset_seconds(), 0);
        assert_eq!(Clock::new(i64::MAX).offset_seconds(), MAX_OFFSET_SECONDS);
    }
}
