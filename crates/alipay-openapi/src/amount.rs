//! Money as integer fen (分). Floats never carry an amount: a float turns `0.10` into `0.1` and
//! `0.1 + 0.2` into `0.30000000000000004`, which breaks both signatures and Alipay's format check.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::AmountError;

/// 100,000,000.00 yuan, Alipay's largest single amount, in fen.
pub const MAX_FEN: i64 = 10_000_000_000;

/// An amount a merchant may charge or refund: 0.01 ≤ amount ≤ 100,000,000.00 yuan, whole fen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

/// An amount the gateway reports (may be zero, e.g. `refund_fee` "0.00"), in fen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Amount {
    /// From fen; `None` outside 1 ..= 10,000,000,000.
    pub fn from_fen(fen: i64) -> Option<Self> {
        (1..=MAX_FEN).contains(&fen).then_some(Self(fen))
    }

    /// From yuan text: `"88.8"`, `"88.80"`, `"1e2"`. No spaces, signs, separators or currency marks.
    pub fn from_yuan_str(text: &str) -> Result<Self, AmountError> {
        let fen = parse_fen(text)?;
        Self::check(fen, text)
    }

    /// From a JSON argument: a number (`88.8`, `1e2`) or a string (`"88.80"`).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, AmountError> {
        use serde_json::Value;
        match value {
            Value::String(s) => Self::from_yuan_str(s),
            Value::Number(n) => {
                let text = number_text(n)?;
                Self::from_yuan_str(&text).map_err(|e| match e {
                    // Report the number as the caller wrote it, not our decimal expansion.
                    AmountError::TooLarge(_) => AmountError::TooLarge(n.to_string()),
                    AmountError::TooManyDecimals(_) => AmountError::TooManyDecimals(n.to_string()),
                    other => other,
                })
            }
            Value::Null => Err(AmountError::WrongType("null")),
            Value::Bool(_) => Err(AmountError::WrongType("a boolean")),
            Value::Array(_) => Err(AmountError::WrongType("an array")),
            Value::Object(_) => Err(AmountError::WrongType("an object")),
        }
    }

    fn check(fen: i64, text: &str) -> Result<Self, AmountError> {
        if fen <= 0 {
            Err(AmountError::NotPositive(text.to_string()))
        } else if fen > MAX_FEN {
            Err(AmountError::TooLarge(text.to_string()))
        } else {
            Ok(Self(fen))
        }
    }

    pub fn fen(self) -> i64 {
        self.0
    }

    /// The shortest decimal a JavaScript `JSON.stringify` would print (`88.8`, `1`, `0.01`): the
    /// reference server sends `total_amount` as a JSON number.
    pub fn to_js_number(self) -> String {
        Money(self.0).to_js_number()
    }
}

impl Money {
    pub const ZERO: Self = Self(0);

    pub fn from_fen(fen: i64) -> Self {
        Self(fen.max(0))
    }

    /// From reported yuan text: `"0.00"`, `"88.88"`, `"20"`.
    pub fn from_yuan_str(text: &str) -> Result<Self, AmountError> {
        let fen = parse_fen(text)?;
        if fen < 0 {
            return Err(AmountError::NotPositive(text.to_string()));
        }
        Ok(Self(fen))
    }

    pub fn fen(self) -> i64 {
        self.0
    }

    pub fn saturating_sub(self, other: Self) -> Self {
        Self((self.0 - other.0).max(0))
    }

    /// The sum, or `None` past `i64::MAX` fen (no real sum gets there; a corrupt record might).
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Money)
    }

    /// The sum, capped at `i64::MAX` fen: for limits, where a capped sum still exceeds any limit.
    pub fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    pub fn to_js_number(self) -> String {
        let (yuan, fen) = (self.0 / 100, self.0 % 100);
        match fen {
            0 => yuan.to_string(),
            f if f % 10 == 0 => format!("{yuan}.{}", f / 10),
            f => format!("{yuan}.{f:02}"),
        }
    }
}

impl From<Amount> for Money {
    fn from(a: Amount) -> Self {
        Self(a.0)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Money(self.0).fmt(f)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Self::from_json(&value).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        match &value {
            serde_json::Value::String(s) => Self::from_yuan_str(s),
            serde_json::Value::Number(n) => {
                Self::from_yuan_str(&number_text(n).map_err(serde::de::Error::custom)?)
            }
            _ => Err(AmountError::WrongType("not a number or string")),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// A JSON number as exact decimal text. Integers are exact; a float prints as the shortest decimal
/// that reads back to the same double (Rust's `Display`), which is what the sender wrote for any
/// amount with at most 15 significant digits.
fn number_text(n: &serde_json::Number) -> Result<String, AmountError> {
    if let Some(i) = n.as_i64() {
        return Ok(i.to_string());
    }
    if let Some(u) = n.as_u64() {
        return Ok(u.to_string());
    }
    match n.as_f64() {
        Some(f) if f.is_finite() => Ok(format!("{f}")),
        _ => Err(AmountError::NotFinite),
    }
}

/// Parse `digits[.digits][e[±]digits]` (with an optional leading `-`) into fen, exactly.
fn parse_fen(text: &str) -> Result<i64, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    let lower = text.to_ascii_lowercase();
    let unsigned = lower.strip_prefix(['-', '+']).unwrap_or(&lower);
    if matches!(unsigned, "nan" | "inf" | "infinity") {
        return Err(AmountError::NotFinite);
    }
    let negative = text.starts_with('-');
    let body = if negative { &text[1..] } else { text };
    let not_a_number = || AmountError::NotANumber(text.to_string());

    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty()
        || !all_digits(int_part)
        || !all_digits(frac_part)
        || (mantissa.contains('.') && frac_part.is_empty())
    {
        return Err(not_a_number());
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !all_digits(digits) {
                return Err(not_a_number());
            }
            match e.parse::<i64>() {
                // Kept far from i64's ends so the shift arithmetic below cannot overflow.
                Ok(v) => v.clamp(i64::MIN / 2, i64::MAX / 2),
                // An exponent beyond i64: astronomically large or small.
                Err(_) if e.starts_with('-') => i64::MIN / 2,
                Err(_) => i64::MAX / 2,
            }
        }
    };

    // value = digits × 10^(exponent − frac_len); fen = digits × 10^(exponent − frac_len + 2)
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    let shift = exponent
        .saturating_sub(frac_part.len() as i64)
        .saturating_add(2);
    let fen: i64 = if shift >= 0 {
        // 11 digits already exceed MAX_FEN; stop before i64 overflows.
        if (digits.len() as i64).saturating_add(shift) > 12 {
            return Err(AmountError::TooLarge(text.to_string()));
        }
        let base: i64 = digits.parse().map_err(|_| not_a_number())?;
        base * 10i64.pow(shift as u32)
    } else {
        let cut = (-shift) as usize;
        let kept = digits.len().saturating_sub(cut);
        if cut > digits.len() || digits[kept..].bytes().any(|b| b != b'0') {
            return Err(AmountError::TooManyDecimals(text.to_string()));
        }
        let kept = &digits[..kept];
        if kept.len() > 12 {
            return Err(AmountError::TooLarge(text.to_string()));
        }
        if kept.is_empty() {
            0
        } else {
            kept.parse().map_err(|_| not_a_number())?
        }
    };
    Ok(if negative { -fen } else { fen })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by `cargo fuzz` (target `amount`): an exponent of exactly `i64::MAX` overflowed the
    /// digit count check. Each is refused, never a panic.
    #[test]
    fn exponents_at_the_ends_of_i64_are_refused_without_overflow() {
        for text in [
            "2e000000000000009223372036854775807",
            "2e9223372036854775807",
            "2e-9223372036854775808",
            "2.5e-9223372036854775808",
            "0.1e9223372036854775807",
            "2e99999999999999999999999",
        ] {
            assert!(Amount::from_yuan_str(text).is_err(), "{text}");
            assert!(Money::from_yuan_str(text).is_err(), "{text}");
        }
        assert_eq!(
            Amount::from_yuan_str("2e0000000000000000000001").map(|a| a.fen()),
            Ok(2_000)
        );
    }

    fn fen(v: serde_json::Value) -> Result<i64, AmountError> {
        Amount::from_json(&v).map(Amount::fen)
    }

    #[test]
    fn accepts_numbers_and_strings() {
        assert_eq!(fen(json!(88.8)), Ok(8880));
        assert_eq!(fen(json!("88.80")), Ok(8880));
        assert_eq!(fen(json!(1e2)), Ok(10000));
        assert_eq!(fen(json!("1e2")), Ok(10000));
        assert_eq!(fen(json!("1.5E+1")), Ok(1500));
        assert_eq!(fen(json!(0.01)), Ok(1));
        assert_eq!(fen(json!("0.1")), Ok(10));
        assert_eq!(fen(json!(100000000)), Ok(MAX_FEN));
        assert_eq!(fen(json!("100000000.00")), Ok(MAX_FEN));
        assert_eq!(
            fen(json!("1.000")),
            Ok(100),
            "trailing zeros are not extra precision"
        );
        assert_eq!(fen(json!("12345e-2")), Ok(12345));
        assert_eq!(fen(json!(0.07)), Ok(7), "0.07 is not 0.0700000000000000067");
        assert_eq!(fen(json!(19.99)), Ok(1999));
    }

    #[test]
    fn rejects_what_alipay_rejects() {
        assert!(matches!(
            fen(json!(0.001)),
            Err(AmountError::TooManyDecimals(_))
        ));
        assert!(matches!(
            fen(json!("1e-3")),
            Err(AmountError::TooManyDecimals(_))
        ));
        assert!(matches!(fen(json!(0)), Err(AmountError::NotPositive(_))));
        assert!(matches!(
            fen(json!("0.00")),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(fen(json!(-1)), Err(AmountError::NotPositive(_))));
        assert!(matches!(
            fen(json!("-0.01")),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(fen(json!(1e9)), Err(AmountError::TooLarge(_))));
        assert!(matches!(fen(json!(1e308)), Err(AmountError::TooLarge(_))));
        assert!(matches!(
            fen(json!("100000000.01")),
            Err(AmountError::TooLarge(_))
        ));
        assert!(matches!(
            fen(json!("1e99999999999999999999")),
            Err(AmountError::TooLarge(_))
        ));
        assert!(matches!(
            fen(json!("1e-99999999999999999999")),
            Err(AmountError::TooManyDecimals(_))
        ));
        assert!(matches!(fen(json!("NaN")), Err(AmountError::NotFinite)));
        assert!(matches!(
            fen(json!("Infinity")),
            Err(AmountError::NotFinite)
        ));
        for bad in [
            "abc", " 1.00", "1,00", "¥1", "1.", ".5", "1e", "1e+", "+1", "0x10", "1 ", "１",
        ] {
            assert!(
                matches!(fen(json!(bad)), Err(AmountError::NotANumber(_))),
                "{bad}"
            );
        }
        assert_eq!(fen(json!("")), Err(AmountError::Empty));
        assert_eq!(fen(json!(true)), Err(AmountError::WrongType("a boolean")));
        assert_eq!(fen(json!(null)), Err(AmountError::WrongType("null")));
        assert_eq!(fen(json!([])), Err(AmountError::WrongType("an array")));
        assert_eq!(fen(json!({})), Err(AmountError::WrongType("an object")));
    }

    #[test]
    fn renders_two_decimals_and_js_numbers() {
        let a = Amount::from_fen(8880).unwrap();
        assert_eq!(a.to_string(), "88.80");
        assert_eq!(a.to_js_number(), "88.8");
        assert_eq!(Amount::from_fen(100).unwrap().to_js_number(), "1");
        assert_eq!(Amount::from_fen(1).unwrap().to_js_number(), "0.01");
        assert_eq!(Amount::from_fen(1).unwrap().to_string(), "0.01");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"88.80\"");
        assert_eq!(Money::from_yuan_str("0.00").unwrap(), Money::ZERO);
        assert_eq!(Money::from_yuan_str("20").unwrap().to_string(), "20.00");
        assert!(Amount::from_fen(0).is_none());
        assert!(Amount::from_fen(MAX_FEN + 1).is_none());
    }
}
