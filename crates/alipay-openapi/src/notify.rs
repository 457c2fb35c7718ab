//! Asynchronous notifications (`notify_url`) and the signed `return_url` query: a set of form
//! fields signed over all fields but `sign` and `sign_type`, sorted, with values decoded exactly
//! once (decoding twice breaks on `%` and `+`, the classic `passback_params` bug).

use std::collections::HashMap;

use crate::amount::{Amount, Money};
use crate::api::TradeStatus;
use crate::crypto::SignType;
use crate::error::{NotifyError, SignError, SignatureError};
use crate::keys::{PrivateKey, PublicKey};
use crate::sign_content::notify_sign_content;

/// Real notifications carry about thirty fields; a body with far more is not one.
pub const MAX_FIELDS: usize = 200;

/// Form fields as received, each decoded once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignedFields {
    fields: Vec<(String, String)>,
}

/// A trade notification (`notify_type=trade_status_sync`) whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeNotification {
    pub notify_id: String,
    pub notify_time: Option<String>,
    pub notify_type: Option<String>,
    pub app_id: String,
    pub out_trade_no: String,
    pub trade_no: Option<String>,
    pub trade_status: TradeStatus,
    pub total_amount: Amount,
    pub receipt_amount: Option<Money>,
    pub buyer_pay_amount: Option<Money>,
    /// Cumulative refunded amount (refund notifications only).
    pub refund_fee: Option<Money>,
    /// The refund's `out_request_no` (partial-refund notifications).
    pub out_biz_no: Option<String>,
    pub gmt_payment: Option<String>,
    pub gmt_refund: Option<String>,
    pub gmt_close: Option<String>,
    pub seller_id: Option<String>,
    pub buyer_id: Option<String>,
    /// Every field received, `sign` and `sign_type` included.
    pub fields: SignedFields,
}

impl SignedFields {
    /// Parse an `application/x-www-form-urlencoded` body. A field repeated with a different value
    /// is refused (which one would have been signed?).
    pub fn from_form(body: &[u8]) -> Result<Self, NotifyError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(NotifyError::Malformed("empty body".into()));
        }
        Self::from_pairs(
            form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())),
        )
    }

    /// From already-decoded pairs (e.g. a JSON object of fields, or a parsed query string).
    pub fn from_pairs<I>(pairs: I) -> Result<Self, NotifyError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (k, v) in pairs {
            if k.is_empty() {
                continue;
            }
            match seen.get(&k) {
                Some(&i) if fields[i].1 == v => {}
                Some(_) => return Err(NotifyError::DuplicateField(k)),
                None => {
                    if fields.len() == MAX_FIELDS {
                        return Err(NotifyError::Malformed(format!(
                            "more than {MAX_FIELDS} fields"
                        )));
                    }
                    seen.insert(k.clone(), fields.len());
                    fields.push((k, v));
                }
            }
        }
        Ok(Self { fields })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// What Alipay signs: all fields but `sign` and `sign_type`, sorted, raw values.
    pub fn signed_content(&self) -> String {
        notify_sign_content(self.iter(), false)
    }

    /// Verify with the Alipay public key. The algorithm is the `sign_type` field (or `default`
    /// when absent). As the SDKs do, a content without `sign_type` is tried first, then with it.
    pub fn verify(
        &self,
        alipay_public_key: &PublicKey,
        default: SignType,
    ) -> Result<(), NotifyError> {
        let sign = self
            .get("sign")
            .filter(|s| !s.is_empty())
            .ok_or(NotifyError::Signature(SignatureError::Missing))?;
        let sign_type = match self.get("sign_type") {
            Some(t) => t.parse().map_err(NotifyError::Signature)?,
            None => default,
        };
        let first = alipay_public_key.verify(sign_type, &self.signed_content(), sign);
        match first {
            Err(SignatureError::Mismatch(_)) if self.get("sign_type").is_some() => {
                alipay_public_key
                    .verify(sign_type, &notify_sign_content(self.iter(), true), sign)
                    .map_err(NotifyError::Signature)
            }
            other => other.map_err(NotifyError::Signature),
        }
    }

    /// Sign these fields as the gateway does: drop any old `sign`/`sign_type`, then append
    /// `sign_type` and `sign`.
    pub fn sign(
        &mut self,
        platform_key: &PrivateKey,
        sign_type: SignType,
    ) -> Result<(), SignError> {
        self.fields.retain(|(k, _)| k != "sign" && k != "sign_type");
        let sign = platform_key.sign(sign_type, &self.signed_content())?;
        self.fields
            .push(("sign_type".into(), sign_type.as_str().into()));
        self.fields.push(("sign".into(), sign));
        Ok(())
    }

    /// The fields as a form body (or query string).
    pub fn to_form(&self) -> String {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.fields {
            ser.append_pair(k, v);
        }
        ser.finish()
    }

    /// Verify, then read the trade notification fields.
    pub fn verify_trade_notification(
        self,
        alipay_public_key: &PublicKey,
        default: SignType,
    ) -> Result<TradeNotification, NotifyError> {
        self.verify(alipay_public_key, default)?;
        TradeNotification::from_fields(self)
    }
}

impl TradeNotification {
    /// Read the typed fields of (already verified) notification fields.
    pub fn from_fields(fields: SignedFields) -> Result<Self, NotifyError> {
        let req = |name: &'static str| {
            fields
                .get(name)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or(NotifyError::MissingField(name))
        };
        let opt = |name: &str| {
            fields
                .get(name)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let money = |name: &'static str| -> Result<Option<Money>, NotifyError> {
            opt(name)
                .map(|v| {
                    Money::from_yuan_str(&v).map_err(|e| NotifyError::InvalidField {
                        field: name,
                        reason: e.to_string(),
                    })
                })
                .transpose()
        };
        let total_amount = Amount::from_yuan_str(&req("total_amount")?).map_err(|e| {
            NotifyError::InvalidField {
                field: "total_amount",
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            notify_id: req("notify_id")?,
            notify_time: opt("notify_time"),
            notify_type: opt("notify_type"),
            app_id: req("app_id")?,
            out_trade_no: req("out_trade_no")?,
            trade_no: opt("trade_no"),
            trade_status: TradeStatus::from(req("trade_status")?.as_str()),
            total_amount,
            receipt_amount: money("receipt_amount")?,
            buyer_pay_amount: money("buyer_pay_amount")?,
            refund_fee: money("refund_fee")?,
            out_biz_no: opt("out_biz_no"),
            gmt_payment: opt("gmt_payment"),
            gmt_refund: opt("gmt_refund"),
            gmt_close: opt("gmt_close"),
            seller_id: opt("seller_id"),
            buyer_id: opt("buyer_id"),
            fields,
        })
    }
}
