//! Alipay's clock: `yyyy-MM-dd HH:mm:ss` in Beijing time (UTC+8, no daylight saving), whatever the
//! host's zone. SDKs that use host local time send wrong timestamps from UTC servers.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone as _, Utc};

/// The layout of every Alipay timestamp.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// UTC+8.
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// Now, in Beijing time.
pub fn beijing_now() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&beijing())
}

/// `yyyy-MM-dd HH:mm:ss` of an instant, in Beijing time.
pub fn format_timestamp<Tz: chrono::TimeZone>(at: &DateTime<Tz>) -> String {
    at.with_timezone(&beijing())
        .format(TIMESTAMP_FORMAT)
        .to_string()
}

/// The current timestamp as Alipay wants it.
pub fn timestamp_now() -> String {
    format_timestamp(&Utc::now())
}

/// Read an Alipay timestamp (Beijing time). `None` unless exactly `yyyy-MM-dd HH:mm:ss`.
pub fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    if text.len() != 19 {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(text, TIMESTAMP_FORMAT).ok()?;
    beijing().from_local_datetime(&naive).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_utc_plus_8_regardless_of_input_zone() {
        let utc = Utc.with_ymd_and_hms(2026, 11, 25, 16, 30, 5).unwrap();
        assert_eq!(format_timestamp(&utc), "2026-11-26 00:30:05");
        let la = FixedOffset::west_opt(8 * 3600).unwrap();
        assert_eq!(
            format_timestamp(&utc.with_timezone(&la)),
            "2026-11-26 00:30:05"
        );
    }

    #[test]
    fn parses_only_the_exact_layout() {
        let t = parse_timestamp("2026-11-25 10:20:30").unwrap();
        assert_eq!(
            t.with_timezone(&Utc).to_rfc3339(),
            "2026-11-25T02:20:30+00:00"
        );
        for bad in [
            "2026-11-25T10:20:30",
            "2026-11-25 10:20",
            "2026/11/25 10:20:30",
            "2026-13-25 10:20:30",
            "",
            "2026-11-25 10:20:30 ",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn now_has_the_layout() {
        let now = timestamp_now();
        assert_eq!(now.len(), 19);
        assert!(parse_timestamp(&now).is_some());
    }
}
