//! Orders: which tool made one, where a status came from, the rule that an order number always
//! means one order, and the rule that a trade never moves backwards.

use alipay_openapi::{Amount, Money, TradeStatus};
use serde::Serialize;

/// Which tool created an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum OrderKind {
    #[serde(rename = "mobile")]
    Mobile,
    #[serde(rename = "webPage")]
    WebPage,
    #[serde(rename = "qrCode")]
    QrCode,
    /// 智易收 (`alipay.aipay.trade.precreate`): personal collection, for sellers with no licence.
    #[serde(rename = "agent")]
    Agent,
}

impl OrderKind {
    pub const ALL: [Self; 4] = [Self::Mobile, Self::WebPage, Self::QrCode, Self::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::WebPage => "webPage",
            Self::QrCode => "qrCode",
            Self::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The Alipay method that makes this kind of order.
    pub fn method(self) -> &'static str {
        match self {
            Self::Mobile => alipay_openapi::PayKind::Wap.method(),
            Self::WebPage => alipay_openapi::PayKind::Page.method(),
            Self::QrCode => <alipay_openapi::TradePrecreate as alipay_openapi::ApiRequest>::METHOD,
            Self::Agent => {
                <alipay_openapi::AipayTradePrecreate as alipay_openapi::ApiRequest>::METHOD
            }
        }
    }
}

/// Where an order's status was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusSource {
    /// A signed `alipay.trade.query` answer.
    Query,
    /// A verified notification.
    Notify,
    /// A confirmed refund's answer.
    Refund,
    /// A signed `alipay.trade.close` answer.
    Close,
    /// The start-up settlement of unsettled refunds.
    Reconcile,
    /// The daily bill (`reconcile-alipay-bill`).
    Bill,
}

impl StatusSource {
    pub const ALL: [Self; 6] = [
        Self::Query,
        Self::Notify,
        Self::Refund,
        Self::Close,
        Self::Reconcile,
        Self::Bill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Notify => "notify",
            Self::Refund => "refund",
            Self::Close => "close",
            Self::Reconcile => "reconcile",
            Self::Bill => "bill",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How far a trade has come: a status never moves backwards by a notification (`TRADE_SUCCESS`
/// cannot reopen a closed or finished trade). `None` is "no trade yet" (the buyer has not opened
/// the link). A status this server does not know ranks as waiting.
pub fn progress(status: Option<&TradeStatus>) -> u8 {
    match status {
        None => 0,
        Some(TradeStatus::WaitBuyerPay) => 1,
        Some(TradeStatus::TradeSuccess) => 2,
        Some(TradeStatus::TradeClosed | TradeStatus::TradeFinished) => 3,
        Some(_) => 1,
    }
}

/// Where a payment stands, for someone waiting on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentState {
    /// Paid (`TRADE_SUCCESS` or `TRADE_FINISHED`).
    Paid,
    /// Paid, then refunded in full (`TRADE_CLOSED` with everything refunded).
    Refunded,
    /// Closed unpaid before it expired (by `close-alipay-payment`, or at Alipay).
    Closed,
    /// Not paid by its expiry: never opened, or opened and closed by Alipay at its expiry.
    Expired,
    /// Not paid yet, and still payable.
    Waiting,
}

impl PaymentState {
    /// Nothing more will happen to it by waiting.
    pub fn is_final(self) -> bool {
        self != Self::Waiting
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::Refunded => "refunded",
            Self::Closed => "closed",
            Self::Expired => "expired",
            Self::Waiting => "waiting",
        }
    }
}

/// What an order's facts say of its payment. `past_expiry`: Alipay's clock is past the order's
/// `time_expire`; `closed_by_us`: the last status came from our own close.
pub fn payment_state(
    status: Option<&TradeStatus>,
    total: Amount,
    refunded: Money,
    closed_by_us: bool,
    past_expiry: bool,
) -> PaymentState {
    match status {
        Some(TradeStatus::TradeSuccess | TradeStatus::TradeFinished) => PaymentState::Paid,
        Some(TradeStatus::TradeClosed) if refunded >= Money::from(total) => PaymentState::Refunded,
        Some(TradeStatus::TradeClosed) if past_expiry && !closed_by_us => PaymentState::Expired,
        Some(TradeStatus::TradeClosed) => PaymentState::Closed,
        _ if past_expiry => PaymentState::Expired,
        _ => PaymentState::Waiting,
    }
}

/// What an order is asked to be, to compare with what its number already means.
#[derive(Clone, Copy, Debug)]
pub struct OrderTerms<'a> {
    pub kind: OrderKind,
    pub amount: Amount,
    pub title: &'a str,
}

/// The same number again: the same order if nothing differs (it is returned unchanged), else a
/// conflict (refused before anything reaches Alipay or the caller).
pub fn same_order(existing: OrderTerms<'_>, asked: OrderTerms<'_>) -> bool {
    existing.kind == asked.kind && existing.amount == asked.amount && existing.title == asked.title
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trade_never_moves_backwards() {
        let rank = |s: &str| progress(Some(&TradeStatus::from(s)));
        assert_eq!(progress(None), 0);
        assert!(rank("WAIT_BUYER_PAY") < rank("TRADE_SUCCESS"));
        assert!(rank("TRADE_SUCCESS") < rank("TRADE_CLOSED"));
        assert_eq!(rank("TRADE_CLOSED"), rank("TRADE_FINISHED"));
        assert_eq!(rank("SOMETHING_NEW"), rank("WAIT_BUYER_PAY"));
    }

    #[test]
    fn where_a_payment_stands() {
        let total = Amount::from_fen(8_880).unwrap();
        let none = Money::ZERO;
        let st = |s: &str| TradeStatus::from(s);
        let state = |s: Option<TradeStatus>, refunded, by_us, past| {
            payment_state(s.as_ref(), total, refunded, by_us, past)
        };
        assert_eq!(state(None, none, false, false), PaymentState::Waiting);
        assert_eq!(state(None, none, false, true), PaymentState::Expired);
        assert_eq!(
            state(Some(st("WAIT_BUYER_PAY")), none, false, false),
            PaymentState::Waiting
        );
        assert_eq!(
            state(Some(st("WAIT_BUYER_PAY")), none, false, true),
            PaymentState::Expired
        );
        // Paid wins over the clock: a payment before expiry stays a payment.
        assert_eq!(
            state(Some(st("TRADE_SUCCESS")), none, false, true),
            PaymentState::Paid
        );
        assert_eq!(
            state(Some(st("TRADE_FINISHED")), none, false, false),
            PaymentState::Paid
        );
        let all = Money::from_fen(8_880);
        assert_eq!(
            state(Some(st("TRADE_CLOSED")), all, false, true),
            PaymentState::Refunded
        );
        assert_eq!(
            state(Some(st("TRADE_CLOSED")), none, true, true),
            PaymentState::Closed
        );
        assert_eq!(
            state(Some(st("TRADE_CLOSED")), none, false, false),
            PaymentState::Closed
        );
        assert_eq!(
            state(Some(st("TRADE_CLOSED")), none, false, true),
            PaymentState::Expired
        );
        assert!(!PaymentState::Waiting.is_final());
        assert!(PaymentState::Expired.is_final());
    }

    #[test]
    fn an_order_number_means_one_order() {
        let terms = |kind, fen, title| OrderTerms {
            kind,
            amount: Amount::from_fen(fen).unwrap(),
            title,
        };
        let first = terms(OrderKind::WebPage, 8880, "插画");
        assert!(same_order(first, terms(OrderKind::WebPage, 8880, "插画")));
        assert!(!same_order(first, terms(OrderKind::WebPage, 8881, "插画")));
        assert!(!same_order(first, terms(OrderKind::WebPage, 8880, "插画 ")));
        assert!(!same_order(first, terms(OrderKind::Mobile, 8880, "插画")));
    }

    #[test]
    fn kinds_and_sources_read_back() {
        for k in OrderKind::ALL {
            assert_eq!(OrderKind::parse(k.as_str()), Some(k));
        }
        for s in StatusSource::ALL {
            assert_eq!(StatusSource::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderKind::parse("desktop"), None);
        assert_eq!(OrderKind::WebPage.method(), "alipay.trade.page.pay");
        assert_eq!(OrderKind::QrCode.method(), "alipay.trade.precreate");
    }
}
