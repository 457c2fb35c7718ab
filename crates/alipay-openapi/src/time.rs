//! Alipay's clock: `yyyy-MM-dd HH:mm:ss` in Beijing time (UTC+8, no daylight saving), whatever the
//! host's zone. SDKs that use host local time send wrong timestamps from UTC servers.

use chrono::{
    DateTime, Datelike as _, FixedOffset, NaiveDate, TimeDelta, TimeZone as _, Timelike as _, Utc,
};

/// The layout of every Alipay timestamp (as a chrono format; [`format_timestamp`] and
/// [`parse_timestamp`] write and read it directly, as they run several times a call).
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The longest expiry Alipay accepts (`time_expire` / `timeout_express`): 15 days, in minutes.
pub const MAX_EXPIRY_MINUTES: u32 = 15 * 24 * 60;

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
    let t = at.with_timezone(&beijing());
    // chrono's `format` parses the format string on every call; this is the same layout, written
    // directly. A year outside 0..=9999 gets its sign and every digit, as chrono writes it.
    let (year, month, day) = (t.year(), t.month(), t.day());
    let (hour, minute, second) = (t.hour(), t.minute(), t.second());
    if (0..=9999).contains(&year) {
        format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
    } else {
        format!("{year:+05}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
    }
}

/// The current timestamp as Alipay wants it.
pub fn timestamp_now() -> String {
    format_timestamp(&Utc::now())
}

/// The timestamp `minutes` after `at`, in Beijing time: a `time_expire` value.
///
/// The fraction of a second is dropped, so the result is never later than `at + minutes`: an
/// order sent with [`MAX_EXPIRY_MINUTES`] stays within Alipay's 15 days. The range (1 minute to
/// 15 days) is the caller's to enforce; this only does the arithmetic, saturating at chrono's
/// last representable instant instead of panicking.
pub fn timestamp_after<Tz: chrono::TimeZone>(at: &DateTime<Tz>, minutes: u32) -> String {
    let later = at
        .to_utc()
        .checked_add_signed(TimeDelta::minutes(i64::from(minutes)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    format_timestamp(&later)
}

/// The timestamp `minutes` from now, in Beijing time: the `time_expire` of an order that should
/// stop being payable then.
pub fn timestamp_in_minutes(minutes: u32) -> String {
    timestamp_after(&Utc::now(), minutes)
}

/// Read an Alipay timestamp (Beijing time). `None` unless exactly `yyyy-MM-dd HH:mm:ss`.
pub fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    // The shape is checked byte by byte first: `yyyy-MM-dd HH:mm:ss`, ASCII digits only (chrono's
    // parser would take one-digit fields and a space for any run of whitespace); then the fields
    // are read directly and chrono checks that they name a real date and time.
    let shape_ok = text.len() == 19
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let b = text.as_bytes();
    let number = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let year = i32::try_from(number(0, 4)).ok()?;
    let naive = NaiveDate::from_ymd_opt(year, number(5, 7), number(8, 10))?.and_hms_opt(
        number(11, 13),
        number(14, 16),
        number(17, 19),
    )?;
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
            "2026-02-29 10:20:30",
            "2026-11-31 10:20:30",
            "2026-11-25 24:00:00",
            "2026-11-25 10:60:30",
            "2026-11-25 10:20:60",
            "",
            "2026-11-25 10:20:30 ",
            // 19 characters that chrono's lenient parser would take (one-digit fields, a space
            // matching any run of whitespace, a sign).
            "2026-11-5  10:20:30",
            "2026-1-25  10:20:30",
            "2026-11-25 1:2:3   ",
            "+2026-11-2 10:20:30",
            "２026-11-25 10:20:3",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn expiry_timestamps_are_minutes_later_in_beijing_time() {
        let utc = Utc.with_ymd_and_hms(2026, 11, 25, 15, 59, 30).unwrap();
        assert_eq!(timestamp_after(&utc, 1), "2026-11-26 00:00:30");
        assert_eq!(timestamp_after(&utc, 0), "2026-11-25 23:59:30");
        assert_eq!(
            timestamp_after(&utc, MAX_EXPIRY_MINUTES),
            "2026-12-10 23:59:30"
        );
        // The fraction is dropped, never rounded up past the limit.
        let with_fraction = utc + TimeDelta::milliseconds(999);
        assert_eq!(timestamp_after(&with_fraction, 30), "2026-11-26 00:29:30");
        let last = DateTime::<Utc>::MAX_UTC;
        assert_eq!(
            timestamp_after(&last, u32::MAX),
            last.with_timezone(&beijing())
                .format(TIMESTAMP_FORMAT)
                .to_string()
        );

        let before = beijing_now();
        let expiry = parse_timestamp(&timestamp_in_minutes(30)).unwrap();
        let minutes = (expiry - before).num_seconds();
        assert!((29 * 60..=30 * 60).contains(&minutes), "{minutes}");
    }

    /// The direct writer and reader agree with chrono's own formatting and parsing of the layout,
    /// over instants spread across four centuries (leap years, month ends, midnight).
    #[test]
    fn direct_format_and_parse_match_chrono() {
        let mut at = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        let step = TimeDelta::seconds(86_400 * 13 + 3_607);
        let mut checked = 0;
        while at.year() < 2400 {
            let text = format_timestamp(&at);
            let chrono_text = at
                .with_timezone(&beijing())
                .format(TIMESTAMP_FORMAT)
                .to_string();
            assert_eq!(text, chrono_text);
            let parsed = parse_timestamp(&text).unwrap();
            let chrono_parsed = chrono::NaiveDateTime::parse_from_str(&text, TIMESTAMP_FORMAT)
                .unwrap()
                .and_local_timezone(beijing())
                .unwrap();
            assert_eq!(parsed, chrono_parsed);
            assert_eq!(parsed, at);
            at += step;
            checked += 1;
        }
        assert!(checked > 10_000, "{checked}");
        let leap = parse_timestamp("2024-02-29 23:59:59").unwrap();
        assert_eq!(leap.to_rfc3339(), "2024-02-29T23:59:59+08:00");
    }

    #[test]
    fn now_has_the_layout() {
        let now = timestamp_now();
        assert_eq!(now.len(), 19);
        assert!(parse_timestamp(&now).is_some());
    }
}
