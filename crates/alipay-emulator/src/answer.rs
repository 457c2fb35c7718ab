//! The inner object of a JSON API answer, in the key order Alipay writes: `code`, `msg`,
//! [`sub_code`, `sub_msg`], then the business fields. `serde_json`'s map sorts keys, so the
//! order is kept by hand here; the text is what gets signed, so the order is part of the answer.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::codes::Failure;

/// Ordered response fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Fields(Vec<(String, Value)>);

impl Fields {
    /// `{"code":"10000","msg":"Success"}`.
    pub(crate) fn success() -> Self {
        let mut f = Self::default();
        f.str("code", "10000").str("msg", "Success");
        f
    }

    /// `code`, `msg`, `sub_code`, `sub_msg` of a failure.
    pub(crate) fn failure(failure: &Failure) -> Self {
        let mut f = Self::default();
        f.str("code", failure.code)
            .str("msg", failure.msg)
            .str("sub_code", &failure.sub_code)
            .str("sub_msg", &failure.sub_msg);
        f
    }

    /// Append (or replace, keeping the position) a string field.
    pub(crate) fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.value(key, Value::String(value.to_string()))
    }

    /// A string field only when there is a non-empty value.
    pub(crate) fn opt(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value.filter(|v| !v.is_empty()) {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    pub(crate) fn value(&mut self, key: &str, value: Value) -> &mut Self {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_string(), value)),
        }
        self
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The text Alipay signs: compact, raw UTF-8, `/` as `\/`.
    pub(crate) fn to_alipay_json(&self) -> String {
        alipay_openapi::gateway::to_alipay_json(self)
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_insertion_order_and_escapes_slashes() {
        let mut f = Fields::failure(&Failure::business("ACQ.TRADE_NOT_EXIST"));
        f.str("out_trade_no", "A/1").str("buyer_pay_amount", "0.00");
        assert_eq!(
            f.to_alipay_json(),
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","out_trade_no":"A\/1","buyer_pay_amount":"0.00"}"#
        );
        f.str("code", "10000");
        assert!(f.to_alipay_json().starts_with(r#"{"code":"10000","#));
    }
}
