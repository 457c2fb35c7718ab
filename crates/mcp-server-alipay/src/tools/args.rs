//! Tool arguments: each tool declares its fields once ([`Field`]); from that one list come the input
//! schema `tools/list` advertises and the checks every call passes before anything is signed or
//! sent. Each error names the field and the rule; raw JSON objects come in (not serde structs), so
//! a bad argument is an `isError` result the model can read and correct, not a protocol error.

use std::fmt;

use alipay_openapi::{Amount, AmountError};
use serde_json::{Map, Value, json};

use crate::domain::ids::{MAX_NO_LEN, NUMBER_RULE};
use crate::domain::{OutRequestNo, OutTradeNo, text_policy};

/// Longest order title (`subject`) Alipay accepts; refund reasons follow the same rule.
pub const MAX_TITLE_CHARS: usize = 256;

/// A rejected argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn fail(field: &str, message: impl Into<String>) -> ArgError {
    ArgError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// What a field holds, which decides both its schema and its check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// An order or refund request number ([`NUMBER_RULE`]).
    Number,
    /// Yuan, a JSON number or string: ≥ 0.01, ≤ 100,000,000.00, at most two decimals.
    Yuan,
    /// Text people read (title, reason): [`text_policy`], at most this many characters.
    Text(usize),
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A whole number in this range.
    Int { min: u64, max: u64 },
    /// A Beijing day, `yyyy-MM-dd`.
    Day,
}

/// One argument of a tool.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
    /// The reference's description, word for word where it has one.
    pub description: &'static str,
}

impl Field {
    pub const fn required(name: &'static str, kind: FieldKind, description: &'static str) -> Self {
        Self {
            name,
            kind,
            required: true,
            description,
        }
    }

    pub const fn optional(name: &'static str, kind: FieldKind, description: &'static str) -> Self {
        Self {
            name,
            kind,
            required: false,
            description,
        }
    }

    fn schema(&self) -> Value {
        let d = self.description;
        match self.kind {
            FieldKind::Number => {
                json!({ "type": "string", "maxLength": MAX_NO_LEN, "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": d })
            }
            FieldKind::Yuan => {
                json!({ "type": ["number", "string"], "minimum": 0.01, "maximum": 100000000, "description": d })
            }
            FieldKind::Text(max) => json!({ "type": "string", "maxLength": max, "description": d }),
            FieldKind::Choice(words) => {
                json!({ "type": "string", "enum": words, "description": d })
            }
            FieldKind::Int { min, max } => {
                json!({ "type": "integer", "minimum": min, "maximum": max, "description": d })
            }
            FieldKind::Day => {
                json!({ "type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}$", "description": d })
            }
        }
    }
}

/// The input schema of a tool taking `fields` (draft-07, `additionalProperties: false`, as the
/// reference advertises).
pub fn input_schema(fields: &[Field]) -> Map<String, Value> {
    let properties: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.to_string(), f.schema()))
        .collect();
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let schema = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
        "$schema": "http://json-schema.org/draft-07/schema#",
    });
    match schema {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// At most 40 characters of what the caller sent, for error messages (a megabyte must not come
/// back whole).
fn clipped(text: &str) -> String {
    let count = text.chars().count();
    if count > 40 {
        let head: String = text.chars().take(37).collect();
        format!("{head}… ({count} characters)")
    } else {
        text.to_string()
    }
}

/// An amount error with its echo of the input clipped.
fn clipped_amount_error(e: AmountError) -> AmountError {
    match e {
        AmountError::NotANumber(t) => AmountError::NotANumber(clipped(&t)),
        AmountError::TooManyDecimals(t) => AmountError::TooManyDecimals(clipped(&t)),
        AmountError::NotPositive(t) => AmountError::NotPositive(clipped(&t)),
        AmountError::TooLarge(t) => AmountError::TooLarge(clipped(&t)),
        other => other,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The raw arguments of one call, checked against the tool's fields. Each getter reads one
/// declared field; absent and `null` are the same.
pub struct RawArgs<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> RawArgs<'a> {
    /// Refuse fields the tool does not take (a typo such as `amount` must not be ignored silently).
    pub fn new(map: &'a Map<String, Value>, fields: &[Field]) -> Result<Self, ArgError> {
        if let Some(unknown) = map
            .keys()
            .find(|k| !fields.iter().any(|f| f.name == k.as_str()))
        {
            let name: String = unknown.chars().take(40).collect();
            let accepted: Vec<&str> = fields.iter().map(|f| f.name).collect();
            return Err(fail(
                &name,
                format!("unknown argument; this tool takes {}", accepted.join(", ")),
            ));
        }
        Ok(Self { map })
    }

    fn value(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn string(&self, field: &str) -> Result<Option<&'a str>, ArgError> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(fail(
                field,
                format!("must be a string, got {}", json_kind(other)),
            )),
        }
    }

    fn present<T>(field: &str, value: Option<T>) -> Result<T, ArgError> {
        value.ok_or_else(|| fail(field, "is required"))
    }

    fn number_text(&self, field: &str) -> Result<Option<&'a str>, ArgError> {
        let Some(value) = self.value(field) else {
            return Ok(None);
        };
        let text = Self::present(field, self.string(field)?)?;
        if OutTradeNo::parse(text).is_none() {
            return Err(fail(
                field,
                format!("{NUMBER_RULE}, got {}", clipped(&value.to_string())),
            ));
        }
        Ok(Some(text))
    }

    /// An optional order number (absent or null: `None`).
    pub fn optional_order_no(&self, field: &str) -> Result<Option<OutTradeNo>, ArgError> {
        Ok(self.number_text(field)?.and_then(OutTradeNo::parse))
    }

    pub fn order_no(&self, field: &str) -> Result<OutTradeNo, ArgError> {
        Self::present(field, self.optional_order_no(field)?)
    }

    pub fn request_no(&self, field: &str) -> Result<OutRequestNo, ArgError> {
        Self::present(
            field,
            self.number_text(field)?.and_then(OutRequestNo::parse),
        )
    }

    pub fn yuan(&self, field: &str) -> Result<Amount, ArgError> {
        let value = Self::present(field, self.value(field))?;
        Amount::from_json(value).map_err(|e| fail(field, clipped_amount_error(e).to_string()))
    }

    /// Text shown to people (order title, refund reason), checked by [`text_policy::check`].
    pub fn text(&self, field: &str, max: usize) -> Result<Option<String>, ArgError> {
        let Some(text) = self.string(field)? else {
            return Ok(None);
        };
        text_policy::check(text, max).map_err(|problem| fail(field, problem))?;
        Ok(Some(text.to_string()))
    }

    pub fn required_text(&self, field: &str, max: usize) -> Result<String, ArgError> {
        Self::present(field, self.text(field, max)?)
    }

    /// One of `words`, or absent.
    pub fn choice(
        &self,
        field: &str,
        words: &[&'static str],
    ) -> Result<Option<&'static str>, ArgError> {
        let Some(text) = self.string(field)? else {
            return Ok(None);
        };
        words
            .iter()
            .find(|w| **w == text)
            .copied()
            .map(Some)
            .ok_or_else(|| fail(field, format!("must be one of {}", words.join(", "))))
    }

    /// A Beijing day, `yyyy-MM-dd`, or absent.
    pub fn day(&self, field: &str) -> Result<Option<String>, ArgError> {
        let Some(text) = self.string(field)? else {
            return Ok(None);
        };
        let canonical = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .is_ok_and(|d| d.format("%Y-%m-%d").to_string() == text);
        if !canonical {
            return Err(fail(
                field,
                "must be a date yyyy-MM-dd (Beijing time), e.g. 2026-11-25",
            ));
        }
        Ok(Some(text.to_string()))
    }

    /// A whole number in `min..=max`, or absent.
    pub fn int(&self, field: &str, min: u64, max: u64) -> Result<Option<u64>, ArgError> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(fail(
                    field,
                    format!("must be a whole number from {min} to {max}"),
                )),
            },
            Some(other) => Err(fail(
                field,
                format!("must be a number, got {}", json_kind(other)),
            )),
        }
    }
}
