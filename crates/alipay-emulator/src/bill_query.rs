//! What `alipay.data.dataservice.bill.downloadurl.query` asks for: the bill's type and its
//! period, read from `biz_content` with Alipay's checks, and whether that bill exists yet.
//!
//! Bills are T+1: a day's bill exists from the next Beijing day on, a month's from the first day
//! of the next month; the earliest are 2016-01-01 and 2016-01. A bad `bill_type` or `bill_date`
//! is `isv.invalid-arguments`; a bill that does not exist yet is `isp.bill_not_exist`.

use chrono::{DateTime, Datelike as _, FixedOffset, Months, NaiveDate};
use serde_json::{Map, Value};

use crate::codes::Failure;

/// `bill_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BillKind {
    /// `trade`: 收单业务账单, payments and refunds (业务明细 and its 汇总).
    Trade,
    /// `signcustomer`: 账务账单, the balance's income and expenses (账务明细).
    SignCustomer,
}

/// A bill's period: one Beijing day or one month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BillPeriod {
    Day(NaiveDate),
    /// Its first day.
    Month(NaiveDate),
}

/// A checked request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BillQuery {
    pub kind: BillKind,
    pub period: BillPeriod,
}

/// The first bills Alipay keeps.
const EARLIEST: NaiveDate = match NaiveDate::from_ymd_opt(2016, 1, 1) {
    Some(day) => day,
    None => unreachable!(),
};

/// `bill_type` and `bill_date`, in that order, each failing with `isv.invalid-arguments` naming
/// it; then the T+1 rule against `now` (the emulator's clock, Beijing).
pub(crate) fn read(
    biz: &Map<String, Value>,
    now: &DateTime<FixedOffset>,
) -> Result<BillQuery, Failure> {
    let kind = match text(biz, "bill_type")? {
        "trade" => BillKind::Trade,
        "signcustomer" => BillKind::SignCustomer,
        other => {
            return Err(Failure::invalid_arguments(&format!(
                "bill_type 只能是 trade 或 signcustomer，收到 {other}"
            )));
        }
    };
    let period = BillPeriod::parse(text(biz, "bill_date")?)
        .map_err(|rule| Failure::invalid_arguments(&format!("bill_date {rule}")))?;
    if !period.is_ready(now) {
        return Err(Failure::bill_not_exist(&period.not_ready_reason()));
    }
    Ok(BillQuery { kind, period })
}

/// A required string field.
fn text<'a>(biz: &'a Map<String, Value>, name: &str) -> Result<&'a str, Failure> {
    match biz.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) => {
            Err(Failure::invalid_arguments(&format!("缺少必选参数 {name}")))
        }
        Some(Value::String(_)) => Err(Failure::invalid_arguments(&format!("{name} 不能为空"))),
        Some(_) => Err(Failure::invalid_arguments(&format!("{name} 必须是字符串"))),
    }
}

impl BillPeriod {
    /// `yyyy-MM-dd` (a day) or `yyyy-MM` (a month), zero-padded, a real date, not before 2016.
    /// The error is the rule, for a message that names the field.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let layout = || format!("格式应为 yyyy-MM-dd（日账单）或 yyyy-MM（月账单），收到 {text}");
        let bytes = text.as_bytes();
        let digits_at = |range: std::ops::Range<usize>| {
            bytes
                .get(range)
                .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
        };
        let number =
            |range: std::ops::Range<usize>| text.get(range).and_then(|s| s.parse::<u32>().ok());
        let shaped = match bytes.len() {
            7 => digits_at(0..4) && bytes[4] == b'-' && digits_at(5..7),
            10 => {
                digits_at(0..4)
                    && bytes[4] == b'-'
                    && digits_at(5..7)
                    && bytes[7] == b'-'
                    && digits_at(8..10)
            }
            _ => false,
        };
        if !shaped {
            return Err(layout());
        }
        let (Some(year), Some(month)) = (number(0..4), number(5..7)) else {
            return Err(layout());
        };
        let day = if bytes.len() == 10 {
            number(8..10)
        } else {
            Some(1)
        };
        let date = day
            .and_then(|d| NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, d))
            .ok_or_else(|| format!("不是有效的日期：{text}"))?;
        if date < EARLIEST {
            return Err(format!(
                "最早为 2016-01-01（日账单）或 2016-01（月账单），收到 {text}"
            ));
        }
        Ok(if bytes.len() == 10 {
            Self::Day(date)
        } else {
            Self::Month(date)
        })
    }

    /// The first day.
    pub(crate) fn first_day(self) -> NaiveDate {
        match self {
            Self::Day(d) | Self::Month(d) => d,
        }
    }

    /// The day after the period (its end, exclusive: the bill's 终止日期).
    pub(crate) fn end_day(self) -> NaiveDate {
        let next = match self {
            Self::Day(d) => d.succ_opt(),
            Self::Month(d) => d.checked_add_months(Months::new(1)),
        };
        // Only chrono's last representable day has no successor; a parsed year is ≤ 9999.
        next.unwrap_or(NaiveDate::MAX)
    }

    /// T+1: the bill exists once its period has ended on the emulator's clock.
    pub(crate) fn is_ready(self, now: &DateTime<FixedOffset>) -> bool {
        self.end_day() <= now.date_naive()
    }

    /// Whether a `yyyy-MM-dd HH:mm:ss[.SSS]` Beijing timestamp (every time the store records)
    /// falls in the period.
    pub(crate) fn contains(self, timestamp: &str) -> bool {
        timestamp
            .get(..10)
            .and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
            .is_some_and(|day| self.first_day() <= day && day < self.end_day())
    }

    /// `yyyyMMdd` or `yyyyMM`, as in the bill's file names.
    pub(crate) fn stamp(self) -> String {
        match self {
            Self::Day(d) => d.format("%Y%m%d").to_string(),
            Self::Month(d) => d.format("%Y%m").to_string(),
        }
    }

    /// `bill_date` as sent.
    pub(crate) fn text(self) -> String {
        match self {
            Self::Day(d) => d.format("%Y-%m-%d").to_string(),
            Self::Month(d) => format!("{:04}-{:02}", d.year(), d.month()),
        }
    }

    fn not_ready_reason(self) -> String {
        match self {
            Self::Day(_) => format!(
                "{} 的日账单尚未生成（账单为 T+1：当日账单次日起可下载）",
                self.text()
            ),
            Self::Month(_) => format!(
                "{} 的月账单尚未生成（月账单在该月结束后，次月起可下载）",
                self.text()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alipay_openapi::time::parse_timestamp;
    use serde_json::json;

    fn biz(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn now() -> DateTime<FixedOffset> {
        parse_timestamp("2026-11-26 00:00:00").unwrap()
    }

    #[test]
    fn days_and_months_are_t_plus_one() {
        let day = |t: &str| read(&biz(json!({"bill_type":"trade","bill_date":t})), &now());
        assert_eq!(
            day("2026-11-25").unwrap().period,
            BillPeriod::Day(NaiveDate::from_ymd_opt(2026, 11, 25).unwrap())
        );
        for t in ["2026-11-26", "2026-11-27", "2026-11", "2027-01"] {
            let f = day(t).unwrap_err();
            assert_eq!(
                (f.code, f.sub_code.as_str()),
                ("40004", "isp.bill_not_exist"),
                "{t}"
            );
            assert!(f.sub_msg.contains("尚未生成"), "{}", f.sub_msg);
        }
        assert!(day("2026-10").is_ok());
        assert!(day("2016-01-01").is_ok());
        assert!(day("2016-01").is_ok());
        let month = BillPeriod::parse("2024-02").unwrap();
        assert_eq!(
            month.end_day(),
            NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()
        );
        assert!(month.contains("2024-02-29 23:59:59"));
        assert!(!month.contains("2024-03-01 00:00:00"));
        assert_eq!(month.stamp(), "202402");
        let d = BillPeriod::parse("2024-12-31").unwrap();
        assert!(d.contains("2024-12-31 10:00:00.123"));
        assert!(!d.contains("2025-01-01 00:00:00"));
        assert!(!d.contains("garbage"));
        assert_eq!(d.stamp(), "20241231");
    }

    #[test]
    fn bad_arguments_name_their_field() {
        let cases = [
            (json!({"bill_date":"2026-11-25"}), "bill_type"),
            (
                json!({"bill_type":"fund","bill_date":"2026-11-25"}),
                "bill_type",
            ),
            (json!({"bill_type":1,"bill_date":"2026-11-25"}), "bill_type"),
            (json!({"bill_type":"trade"}), "bill_date"),
            (
                json!({"bill_type":"trade","bill_date":"2026-1-25"}),
                "bill_date",
            ),
            (
                json!({"bill_type":"trade","bill_date":"2026/11/25"}),
                "bill_date",
            ),
            (
                json!({"bill_type":"trade","bill_date":"2026-02-30"}),
                "bill_date",
            ),
            (
                json!({"bill_type":"trade","bill_date":"2026-13"}),
                "bill_date",
            ),
            (
                json!({"bill_type":"trade","bill_date":"2015-12-31"}),
                "bill_date",
            ),
            (
                json!({"bill_type":"trade","bill_date":"2015-12"}),
                "bill_date",
            ),
            (
                json!({"bill_type":"trade","bill_date":"+026-11-25"}),
                "bill_date",
            ),
            (
                json!({"bill_type":"trade","bill_date":"２０２６-11-25"}),
                "bill_date",
            ),
        ];
        for (v, field) in cases {
            let f = read(&biz(v.clone()), &now()).unwrap_err();
            assert_eq!(
                (f.code, f.sub_code.as_str()),
                ("40004", "isv.invalid-arguments"),
                "{v}"
            );
            assert!(f.sub_msg.contains(field), "{v}: {}", f.sub_msg);
        }
    }
}
