//! What Alipay tells the merchant about a trade: the fields of an asynchronous notification
//! (ALIPAY-PROTOCOL §3.2) and the signed `return_url` query (§3.4). Both are signed over all
//! fields but `sign` and `sign_type`, sorted, with the platform key.

use alipay_openapi::{SignError, SignType, SignedFields, TradeStatus};

use crate::config::AppConfig;
use crate::model::{Order, Refund, Trade, yuan};

/// The refund a notification reports.
pub(crate) struct RefundNotice<'a> {
    pub refund: &'a Refund,
    /// Cumulative refunded amount after this refund.
    pub refund_fee: i64,
}

/// The fields of a `trade_status_sync` notification, without `notify_time`, `sign_type` and
/// `sign` (added at each delivery). Only non-empty fields are included.
pub(crate) fn notification_fields(
    app: &AppConfig,
    order: &Order,
    trade: &Trade,
    notify_id: &str,
    refund: Option<RefundNotice<'_>>,
) -> Vec<(String, String)> {
    let mut f = FieldList::default();
    let total = yuan(order.total_fen);
    f.add("notify_type", "trade_status_sync");
    f.add("notify_id", notify_id);
    f.add("app_id", &order.app_id);
    f.add("auth_app_id", &order.app_id);
    f.add("charset", "utf-8");
    f.add("version", "1.0");
    f.add("trade_no", &trade.trade_no);
    f.add("out_trade_no", &order.out_trade_no);
    f.add("trade_status", trade.status.as_str());
    f.add("buyer_id", &trade.buyer_id);
    f.add("buyer_logon_id", &trade.buyer_logon_id);
    f.add("seller_id", &app.seller_id);
    f.opt("seller_email", app.seller_email.as_deref());
    f.add("total_amount", &total);
    if trade.was_paid() {
        f.add("receipt_amount", &total);
        f.add("invoice_amount", &total);
        f.add("buyer_pay_amount", &total);
        f.add("point_amount", "0.00");
        f.add(
            "fund_bill_list",
            &format!(r#"[{{"amount":"{total}","fundChannel":"ALIPAYACCOUNT"}}]"#),
        );
    }
    f.add("subject", &order.subject);
    f.opt("body", order.body.as_deref());
    f.add("gmt_create", &trade.gmt_create);
    f.opt("gmt_payment", trade.gmt_payment.as_deref());
    if let Some(r) = refund {
        f.add("out_biz_no", &r.refund.out_request_no);
        f.add("refund_fee", &yuan(r.refund_fee));
        f.add("gmt_refund", &r.refund.gmt_refund);
    }
    if trade.status == TradeStatus::TradeClosed {
        f.opt("gmt_close", trade.gmt_close.as_deref());
    }
    f.opt("passback_params", order.passback_params.as_deref());
    f.0
}

/// The signed form body of one delivery: the stored fields plus `notify_time`, signed.
pub(crate) fn signed_notification(
    fields: &[(String, String)],
    notify_time: &str,
    platform_key: &alipay_openapi::PrivateKey,
    sign_type: SignType,
) -> Result<SignedFields, SignError> {
    let pairs = std::iter::once(("notify_time".to_string(), notify_time.to_string()))
        .chain(fields.iter().cloned());
    // Our own fields never repeat a key, so this cannot fail; an error would only mean a
    // duplicate, which we then report as a signing failure rather than panic.
    let mut signed = SignedFields::from_pairs(pairs)
        .map_err(|_| SignError::Backend("duplicate notification field"))?;
    signed.sign(platform_key, sign_type)?;
    Ok(signed)
}

/// The query the cashier puts on `return_url` after payment (§3.4), signed. `merchant_query` is
/// the query the merchant's `return_url` already had (Alipay advises against one): it is kept and
/// signed along, so everything the merchant receives verifies; a name that clashes with one of
/// Alipay's is dropped.
pub(crate) fn return_params(
    app: &AppConfig,
    order: &Order,
    trade: &Trade,
    timestamp: &str,
    platform_key: &alipay_openapi::PrivateKey,
    merchant_query: Vec<(String, String)>,
) -> Result<SignedFields, SignError> {
    let method = format!("{}.return", order.product.method());
    let pairs = [
        ("charset", "utf-8"),
        ("out_trade_no", order.out_trade_no.as_str()),
        ("method", method.as_str()),
        ("total_amount", &yuan(order.total_fen)),
        ("trade_no", trade.trade_no.as_str()),
        ("auth_app_id", order.app_id.as_str()),
        ("version", "1.0"),
        ("app_id", order.app_id.as_str()),
        ("seller_id", app.seller_id.as_str()),
        ("timestamp", timestamp),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let ours: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
    let merchant = merchant_query
        .into_iter()
        .filter(|(k, _)| !ours.contains(k) && k != "sign" && k != "sign_type");
    let mut signed = SignedFields::from_pairs(merchant.chain(pairs))
        .map_err(|_| SignError::Backend("duplicate return field"))?;
    signed.sign(platform_key, order.sign_type)?;
    Ok(signed)
}

#[derive(Default)]
struct FieldList(Vec<(String, String)>);

impl FieldList {
    fn add(&mut self, k: &str, v: &str) {
        if !v.is_empty() {
            self.0.push((k.to_string(), v.to_string()));
        }
    }

    fn opt(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.add(k, v);
        }
    }
}
