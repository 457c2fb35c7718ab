//! Identifiers shaped like Alipay's: trade numbers, buyer ids, masked logon ids, notify ids,
//! cashier tokens, bill link tokens, trace ids.

use chrono::{DateTime, FixedOffset};
use rand::RngExt as _;

/// `yyyyMMdd` + `22001` + 15 digits (28 characters, like `2025041622001400000000000001`). The
/// sequence number keeps them unique; the random part keeps two emulators from agreeing.
pub(crate) fn trade_no(now: &DateTime<FixedOffset>, seq: u64) -> String {
    let random: u32 = rand::rng().random_range(0..10_000);
    format!(
        "{}22001{random:04}{:011}",
        now.format("%Y%m%d"),
        seq % 100_000_000_000
    )
}

/// A buyer's Alipay user id: `2088` + 12 digits.
pub(crate) fn buyer_id() -> String {
    let n: u64 = rand::rng().random_range(0..1_000_000_000_000);
    format!("2088{n:012}")
}

/// A masked logon id as Alipay shows it (`abc***@sandbox.com`).
pub(crate) fn buyer_logon_id() -> String {
    let mut rng = rand::rng();
    let name: String = (0..3)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    format!("{name}***@sandbox.com")
}

/// `yyyyMMdd` + `00222` + 21 digits (34 characters, as in real notifications).
pub(crate) fn notify_id(now: &DateTime<FixedOffset>) -> String {
    let mut rng = rand::rng();
    let digits: String = (0..21)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect();
    format!("{}00222{digits}", now.format("%Y%m%d"))
}

/// An unguessable cashier token (`bax0…`, like the path of Alipay's `qr.alipay.com` codes).
pub(crate) fn cashier_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("bax0{tail}")
}

/// A bill download link's token: 128 random bits, 32 lowercase hex digits (the link is its own
/// capability, like Alipay's pre-signed URLs).
pub(crate) fn bill_token() -> String {
    let bits: u128 = rand::rng().random();
    format!("{bits:032x}")
}

/// The `trace_id` header of a gateway answer: 32 lowercase hex digits.
pub(crate) fn trace_id() -> String {
    let mut rng = rand::rng();
    let a: u128 = rng.random();
    format!("{a:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_alipay() {
        let now = alipay_openapi::time::beijing_now();
        let t = trade_no(&now, 7);
        assert_eq!(t.len(), 28, "{t}");
        assert_eq!(&t[8..13], "22001");
        assert!(t.bytes().all(|b| b.is_ascii_digit()));
        assert!(crate::config::is_alipay_user_id(&buyer_id()));
        assert!(buyer_logon_id().contains("***@"));
        let n = notify_id(&now);
        assert_eq!(n.len(), 34);
        assert_eq!(cashier_token().len(), 24);
        assert_eq!(trace_id().len(), 32);
        assert_eq!(bill_token().len(), 32);
        assert_ne!(bill_token(), bill_token());
    }
}
