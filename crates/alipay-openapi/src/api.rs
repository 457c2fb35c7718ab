//! Typed business requests (`biz_content`) and responses of the APIs we call. Field order is the
//! order the JSON is written in, which is part of what gets signed.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::amount::{Amount, Money};

/// A JSON API (`alipay.trade.query`, …): what goes in `biz_content` and what comes back.
pub trait ApiRequest: Serialize {
    /// The `method` parameter.
    const METHOD: &'static str;
    /// The typed success response.
    type Response: DeserializeOwned;

    /// Whether the request carries `notify_url` (the pay APIs do; queries and refunds do not).
    const SENDS_NOTIFY_URL: bool = false;

    /// The order this request is about, checked against the response (a response for another
    /// order is never taken as this one's answer).
    fn out_trade_no(&self) -> Option<&str>;

    /// The refund request this is about, checked against the response likewise.
    fn out_request_no(&self) -> Option<&str> {
        None
    }

    /// The `biz_content` text.
    ///
    /// Serialising this crate's requests cannot fail: they are structs of strings, amounts
    /// (written as strings) and lists of strings, with no maps, so `serde_json` has no error to
    /// report. The `"{}"` fallback only matters for a caller's own type whose `Serialize` fails;
    /// the gateway then refuses the request for its missing fields, and nothing is paid or
    /// refunded.
    fn biz_content(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// `trade_status` of a trade.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TradeStatus {
    /// Created (buyer scanned or logged in), not paid.
    WaitBuyerPay,
    /// Closed unpaid, or fully refunded.
    TradeClosed,
    /// Paid; refundable.
    TradeSuccess,
    /// Finished; no longer refundable.
    TradeFinished,
    /// A status this crate does not know.
    Other(String),
}

impl TradeStatus {
    pub fn as_str(&self) -> &str {
        match self {
            Self::WaitBuyerPay => "WAIT_BUYER_PAY",
            Self::TradeClosed => "TRADE_CLOSED",
            Self::TradeSuccess => "TRADE_SUCCESS",
            Self::TradeFinished => "TRADE_FINISHED",
            Self::Other(s) => s,
        }
    }

    /// Paid (`TRADE_SUCCESS` or `TRADE_FINISHED`).
    pub fn is_paid(&self) -> bool {
        matches!(self, Self::TradeSuccess | Self::TradeFinished)
    }
}

impl From<&str> for TradeStatus {
    fn from(s: &str) -> Self {
        match s {
            "WAIT_BUYER_PAY" => Self::WaitBuyerPay,
            "TRADE_CLOSED" => Self::TradeClosed,
            "TRADE_SUCCESS" => Self::TradeSuccess,
            "TRADE_FINISHED" => Self::TradeFinished,
            other => Self::Other(other.to_string()),
        }
    }
}

impl fmt::Display for TradeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TradeStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TradeStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from(String::deserialize(d)?.as_str()))
    }
}

/// Which cashier a payment link opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PayKind {
    /// `alipay.trade.wap.pay`, `QUICK_WAP_WAY`: a phone browser.
    Wap,
    /// `alipay.trade.page.pay`, `FAST_INSTANT_TRADE_PAY`: a desktop browser (QR code).
    Page,
}

impl PayKind {
    /// The `method` parameter of this cashier's links.
    pub const fn method(self) -> &'static str {
        match self {
            Self::Wap => "alipay.trade.wap.pay",
            Self::Page => "alipay.trade.page.pay",
        }
    }

    pub const fn product_code(self) -> &'static str {
        match self {
            Self::Wap => "QUICK_WAP_WAY",
            Self::Page => "FAST_INSTANT_TRADE_PAY",
        }
    }

    pub fn from_method(method: &str) -> Option<Self> {
        [Self::Wap, Self::Page]
            .into_iter()
            .find(|kind| kind.method() == method)
    }
}

/// How `total_amount` is written in a link's `biz_content`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AmountStyle {
    /// `"88.80"`, Alipay's documented Price type.
    #[default]
    String,
    /// `88.8`, as the reference MCP server writes it (a JavaScript number).
    Number,
}

/// The order of a payment link (`alipay.trade.wap.pay` / `alipay.trade.page.pay`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayOrder {
    pub kind: PayKind,
    pub out_trade_no: String,
    pub total_amount: Amount,
    pub subject: String,
    pub body: Option<String>,
    /// Relative expiry, `1m`–`15d` (`Nm`, `Nh`, `Nd`, or `1c` for "end of today"). Prefer
    /// `time_expire`: this timer starts at a product-specific moment (for wap only once the
    /// buyer confirms payment), so a link can stay payable far longer than it says.
    pub timeout_express: Option<String>,
    pub query_options: Option<Vec<String>>,
    pub amount_style: AmountStyle,
    /// Absolute expiry, Beijing `yyyy-MM-dd HH:mm:ss` (see [`time::timestamp_in_minutes`]),
    /// 1 minute to 15 days after the request. After it Alipay no longer lets the buyer pay and
    /// closes an opened trade (`TRADE_CLOSED`). It wins over `timeout_express` when both are
    /// sent. `None` or empty: not sent.
    ///
    /// [`time::timestamp_in_minutes`]: crate::time::timestamp_in_minutes
    pub time_expire: Option<String>,
}

impl PayOrder {
    /// `biz_content` in the reference's key order: `out_trade_no, total_amount, subject,
    /// product_code, body, timeout_express, query_options`, then `time_expire` (which the
    /// reference does not send; appended so links without it stay byte-identical to its own).
    pub fn biz_content(&self) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            out_trade_no: &'a str,
            total_amount: serde_json::Value,
            subject: &'a str,
            product_code: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            body: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            timeout_express: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            query_options: Option<&'a [String]>,
            #[serde(skip_serializing_if = "Option::is_none")]
            time_expire: Option<&'a str>,
        }
        let total_amount = match self.amount_style {
            AmountStyle::String => serde_json::Value::String(self.total_amount.to_string()),
            AmountStyle::Number => self
                .total_amount
                .to_js_number()
                .parse::<serde_json::Number>()
                .map(serde_json::Value::Number)
                .unwrap_or_else(|_| serde_json::Value::String(self.total_amount.to_string())),
        };
        serde_json::to_string(&Wire {
            out_trade_no: &self.out_trade_no,
            total_amount,
            subject: &self.subject,
            product_code: self.kind.product_code(),
            body: self.body.as_deref().filter(|b| !b.is_empty()),
            timeout_express: self.timeout_express.as_deref().filter(|t| !t.is_empty()),
            query_options: self.query_options.as_deref(),
            time_expire: self.time_expire.as_deref().filter(|t| !t.is_empty()),
        })
        // Unreachable: strings, a JSON scalar and a list of strings always serialise.
        .unwrap_or_else(|_| "{}".into())
    }
}

fn is_none_or_empty(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(str::is_empty)
}

/// `alipay.trade.query`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TradeQuery {
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub out_trade_no: Option<String>,
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_options: Option<Vec<String>>,
}

impl TradeQuery {
    pub fn by_out_trade_no(out_trade_no: impl Into<String>) -> Self {
        Self {
            out_trade_no: Some(out_trade_no.into()),
            ..Self::default()
        }
    }
}

/// Success answer of `alipay.trade.query`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct TradeQueryResponse {
    pub out_trade_no: Option<String>,
    pub trade_no: Option<String>,
    pub trade_status: Option<TradeStatus>,
    pub total_amount: Option<Money>,
    pub buyer_pay_amount: Option<Money>,
    pub receipt_amount: Option<Money>,
    pub invoice_amount: Option<Money>,
    pub point_amount: Option<Money>,
    pub send_pay_date: Option<String>,
    pub buyer_logon_id: Option<String>,
    pub buyer_user_id: Option<String>,
    pub subject: Option<String>,
}

impl ApiRequest for TradeQuery {
    const METHOD: &'static str = "alipay.trade.query";
    type Response = TradeQueryResponse;
    fn out_trade_no(&self) -> Option<&str> {
        self.out_trade_no.as_deref()
    }
}

/// `alipay.trade.refund`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TradeRefund {
    pub out_trade_no: String,
    pub refund_amount: Amount,
    /// Required for partial refunds; the same number on every retry of one refund.
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub out_request_no: Option<String>,
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub refund_reason: Option<String>,
}

/// Success answer of `alipay.trade.refund`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct TradeRefundResponse {
    pub out_trade_no: Option<String>,
    pub trade_no: Option<String>,
    /// `Y` when this call moved money; `N` for an idempotent repeat (confirm with a refund query).
    pub fund_change: Option<String>,
    /// Cumulative amount refunded on the trade.
    pub refund_fee: Option<Money>,
    pub gmt_refund_pay: Option<String>,
    pub send_back_fee: Option<Money>,
    pub buyer_logon_id: Option<String>,
    pub buyer_user_id: Option<String>,
}

impl TradeRefundResponse {
    /// Money moved in this call (`fund_change` = `Y`).
    pub fn fund_changed(&self) -> bool {
        self.fund_change.as_deref() == Some("Y")
    }
}

impl ApiRequest for TradeRefund {
    const METHOD: &'static str = "alipay.trade.refund";
    type Response = TradeRefundResponse;
    fn out_trade_no(&self) -> Option<&str> {
        Some(&self.out_trade_no)
    }
}

/// `alipay.trade.fastpay.refund.query`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RefundQuery {
    pub out_trade_no: String,
    pub out_request_no: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_options: Option<Vec<String>>,
}

/// Success answer of `alipay.trade.fastpay.refund.query` (`code` 10000 only means the query ran).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct RefundQueryResponse {
    pub out_request_no: Option<String>,
    pub out_trade_no: Option<String>,
    pub trade_no: Option<String>,
    pub refund_amount: Option<Money>,
    pub total_amount: Option<Money>,
    pub refund_status: Option<String>,
    pub refund_reason: Option<String>,
    pub gmt_refund_pay: Option<String>,
}

impl RefundQueryResponse {
    /// The refund went through: `refund_status` is `REFUND_SUCCESS`, or (older answers without
    /// `refund_status`) the refund's fields are present.
    pub fn refund_succeeded(&self) -> bool {
        match self.refund_status.as_deref() {
            Some(status) => status == "REFUND_SUCCESS",
            None => self.refund_amount.is_some() && self.out_request_no.is_some(),
        }
    }
}

impl ApiRequest for RefundQuery {
    const METHOD: &'static str = "alipay.trade.fastpay.refund.query";
    type Response = RefundQueryResponse;
    fn out_trade_no(&self) -> Option<&str> {
        Some(&self.out_trade_no)
    }
    fn out_request_no(&self) -> Option<&str> {
        Some(&self.out_request_no)
    }
}

/// `alipay.trade.close`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TradeClose {
    pub out_trade_no: String,
}

/// Success answer of `alipay.trade.close`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct TradeCloseResponse {
    pub out_trade_no: Option<String>,
    pub trade_no: Option<String>,
}

impl ApiRequest for TradeClose {
    const METHOD: &'static str = "alipay.trade.close";
    type Response = TradeCloseResponse;
    fn out_trade_no(&self) -> Option<&str> {
        Some(&self.out_trade_no)
    }
}

/// `alipay.trade.precreate`: a QR code the buyer scans with the Alipay app.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TradePrecreate {
    pub out_trade_no: String,
    pub total_amount: Amount,
    pub subject: String,
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub body: Option<String>,
    /// Relative expiry, `1m`–`15d`, counted from the precreate. Prefer `time_expire`.
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub timeout_express: Option<String>,
    /// Absolute expiry, Beijing `yyyy-MM-dd HH:mm:ss`, 1 minute to 15 days after the request;
    /// the QR code is dead after it and a scanned, unpaid trade closes (`TRADE_CLOSED`). Wins
    /// over `timeout_express`. See [`PayOrder::time_expire`].
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub time_expire: Option<String>,
}

/// Success answer of `alipay.trade.precreate`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct TradePrecreateResponse {
    pub out_trade_no: Option<String>,
    pub qr_code: Option<String>,
}

impl ApiRequest for TradePrecreate {
    const METHOD: &'static str = "alipay.trade.precreate";
    const SENDS_NOTIFY_URL: bool = true;
    type Response = TradePrecreateResponse;
    fn out_trade_no(&self) -> Option<&str> {
        Some(&self.out_trade_no)
    }
}

/// `alipay.aipay.trade.precreate` (智易收, "Agent收款单预下单"): a payment page and its QR code for
/// an order an AI agent takes, for merchants with a personal account. Note the method's order:
/// `aipay` comes before `trade`. The order's status is then read with `alipay.trade.query`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AipayTradePrecreate {
    /// ≤ 64 letters, digits and `_`.
    pub out_trade_no: String,
    /// Yuan, written as a string with two decimals (`"88.80"`); this API's field is `amount`,
    /// not `total_amount`.
    pub amount: Amount,
    /// The agent's name (智能体名称), ≤ 128 characters.
    pub agent_name: String,
    /// The agent ID the dev platform assigned, or the developer's own for a self-built agent.
    pub agent_id: String,
    /// The calling channel (请求渠道来源), e.g. `mcp_0.1.0`.
    pub request_channel_source: String,
    /// Absolute expiry, Beijing `yyyy-MM-dd HH:mm:ss`, 1 minute to 15 days after the request.
    /// See [`PayOrder::time_expire`]. `None` or empty: not sent.
    #[serde(skip_serializing_if = "is_none_or_empty")]
    pub time_expire: Option<String>,
}

/// Success answer of `alipay.aipay.trade.precreate`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct AipayTradePrecreateResponse {
    pub out_trade_no: Option<String>,
    /// The payment page: the buyer opens it to pay.
    pub pay_url: Option<String>,
    /// An image of the payment page's QR code.
    pub pic_url: Option<String>,
}

impl ApiRequest for AipayTradePrecreate {
    const METHOD: &'static str = "alipay.aipay.trade.precreate";
    const SENDS_NOTIFY_URL: bool = true;
    type Response = AipayTradePrecreateResponse;
    fn out_trade_no(&self) -> Option<&str> {
        Some(&self.out_trade_no)
    }
}

/// `alipay.data.dataservice.bill.downloadurl.query`: where to download a day's (or a month's)
/// bill. The URL is pre-signed and dies about 30 s after it is issued: fetch it at once (see
/// [`crate::bill`]).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BillDownloadUrlQuery {
    /// `trade` (收单业务账单: payments and refunds) or `signcustomer` (账务账单: balance in and out).
    pub bill_type: String,
    /// `yyyy-MM-dd` (a past Beijing day: bills are T+1) or `yyyy-MM`.
    pub bill_date: String,
}

impl BillDownloadUrlQuery {
    pub fn trade(bill_date: impl Into<String>) -> Self {
        Self {
            bill_type: "trade".into(),
            bill_date: bill_date.into(),
        }
    }
}

/// Success answer of `alipay.data.dataservice.bill.downloadurl.query`. Its `Debug` hides the
/// URL: it is pre-signed, a credential for as long as it lives.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct BillDownloadUrlQueryResponse {
    /// The pre-signed download URL of the zip.
    pub bill_download_url: Option<String>,
    /// [`BillDownloadUrlQueryResponse::EMPTY`] on a day with no business.
    pub bill_file_code: Option<String>,
}

impl fmt::Debug for BillDownloadUrlQueryResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BillDownloadUrlQueryResponse")
            .field(
                "bill_download_url",
                &self.bill_download_url.as_ref().map(|_| "(redacted)"),
            )
            .field("bill_file_code", &self.bill_file_code)
            .finish()
    }
}

impl BillDownloadUrlQueryResponse {
    /// `bill_file_code` of a day with no business (the file, if any, has no rows).
    pub const EMPTY: &'static str = "EMPTY_DATA_WITH_BILL_FILE";

    pub fn is_empty_day(&self) -> bool {
        self.bill_file_code.as_deref() == Some(Self::EMPTY)
    }
}

impl ApiRequest for BillDownloadUrlQuery {
    const METHOD: &'static str = "alipay.data.dataservice.bill.downloadurl.query";
    const SENDS_NOTIFY_URL: bool = false;
    type Response = BillDownloadUrlQueryResponse;
    fn out_trade_no(&self) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(time_expire: Option<&str>) -> PayOrder {
        PayOrder {
            kind: PayKind::Wap,
            out_trade_no: "A_1".into(),
            total_amount: Amount::from_yuan_str("1.50").unwrap(),
            subject: "书".into(),
            body: None,
            timeout_express: Some("30m".into()),
            query_options: Some(vec!["fund_bill_list".into()]),
            amount_style: AmountStyle::String,
            time_expire: time_expire.map(str::to_string),
        }
    }

    #[test]
    fn time_expire_comes_last_and_only_when_set() {
        let base = r#"{"out_trade_no":"A_1","total_amount":"1.50","subject":"书","product_code":"QUICK_WAP_WAY","timeout_express":"30m","query_options":["fund_bill_list"]"#;
        assert_eq!(order(None).biz_content(), format!("{base}}}"));
        assert_eq!(order(Some("")).biz_content(), format!("{base}}}"));
        assert_eq!(
            order(Some("2026-11-25 10:30:00")).biz_content(),
            format!(r#"{base},"time_expire":"2026-11-25 10:30:00"}}"#)
        );

        let mut precreate = TradePrecreate {
            out_trade_no: "P_1".into(),
            total_amount: Amount::from_yuan_str("2").unwrap(),
            subject: "咖啡".into(),
            body: None,
            timeout_express: Some("15m".into()),
            time_expire: Some("2026-11-25 10:30:00".into()),
        };
        assert_eq!(
            precreate.biz_content(),
            r#"{"out_trade_no":"P_1","total_amount":"2.00","subject":"咖啡","timeout_express":"15m","time_expire":"2026-11-25 10:30:00"}"#
        );
        precreate.time_expire = Some(String::new());
        assert!(!precreate.biz_content().contains("time_expire"));
    }

    #[test]
    fn aipay_precreate_writes_amount_as_a_yuan_string_in_the_documented_order() {
        let mut request = AipayTradePrecreate {
            out_trade_no: "AG_1".into(),
            amount: Amount::from_yuan_str("88.8").unwrap(),
            agent_name: "诗歌助手".into(),
            agent_id: "agent_42".into(),
            request_channel_source: "mcp_0.1.0".into(),
            time_expire: None,
        };
        let base = r#"{"out_trade_no":"AG_1","amount":"88.80","agent_name":"诗歌助手","agent_id":"agent_42","request_channel_source":"mcp_0.1.0""#;
        assert_eq!(request.biz_content(), format!("{base}}}"));
        request.time_expire = Some(String::new());
        assert_eq!(request.biz_content(), format!("{base}}}"));
        request.time_expire = Some("2026-11-25 10:30:00".into());
        assert_eq!(
            request.biz_content(),
            format!(r#"{base},"time_expire":"2026-11-25 10:30:00"}}"#)
        );
        assert_eq!(
            <AipayTradePrecreate as ApiRequest>::METHOD,
            "alipay.aipay.trade.precreate"
        );
        assert_eq!(request.out_trade_no(), Some("AG_1"));
        const { assert!(AipayTradePrecreate::SENDS_NOTIFY_URL) };

        let answer: AipayTradePrecreateResponse = serde_json::from_str(
            r#"{"code":"10000","msg":"Success","out_trade_no":"AG_1","pay_url":"https://x/p","pic_url":"https://x/q.png"}"#,
        )
        .unwrap();
        assert_eq!(answer.out_trade_no.as_deref(), Some("AG_1"));
        assert_eq!(answer.pay_url.as_deref(), Some("https://x/p"));
        assert_eq!(answer.pic_url.as_deref(), Some("https://x/q.png"));
    }
}
