//! The emulator's state: orders (what a payment link or a precreate asked for), the trade each
//! becomes once the buyer engages, its refunds, and the notifications to deliver. Everything here
//! is plain data that serialises to the state file; the rules live in `trades.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alipay_openapi::{
    AipayTradePrecreate, ApiRequest, Money, PayKind, SignType, TradePrecreate, TradeStatus,
};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// Which product created the order; it decides which states notify (ALIPAY-PROTOCOL §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Product {
    /// `alipay.trade.wap.pay` (`QUICK_WAP_WAY`).
    Wap,
    /// `alipay.trade.page.pay` (`FAST_INSTANT_TRADE_PAY`).
    Page,
    /// `alipay.trade.precreate` (`FACE_TO_FACE_PAYMENT`, a QR code to scan).
    Precreate,
    /// `alipay.aipay.trade.precreate` (智易收): a payment page (`pay_url`) and its QR image
    /// (`pic_url`) for an order an AI agent takes.
    AgentPay,
}

impl Product {
    /// The product of a page-pay link; `None` for a cashier `alipay-openapi` added later.
    pub(crate) fn from_kind(kind: PayKind) -> Option<Self> {
        match kind {
            PayKind::Wap => Some(Self::Wap),
            PayKind::Page => Some(Self::Page),
            _ => None,
        }
    }

    pub(crate) fn method(self) -> &'static str {
        match self {
            Self::Wap => PayKind::Wap.method(),
            Self::Page => PayKind::Page.method(),
            Self::Precreate => <TradePrecreate as ApiRequest>::METHOD,
            Self::AgentPay => <AipayTradePrecreate as ApiRequest>::METHOD,
        }
    }

    pub(crate) fn product_code(self) -> &'static str {
        match self {
            Self::Wap => PayKind::Wap.product_code(),
            Self::Page => PayKind::Page.product_code(),
            Self::Precreate => "FACE_TO_FACE_PAYMENT",
            // Not documented for 智易收; shown by the control API only, never sent.
            Self::AgentPay => "AGENT_PAY",
        }
    }

    /// The product whose trade rules this one follows where Alipay's documentation is silent.
    ///
    /// 智易收 (`AgentPay`): whether its orders notify, can be refunded and can be closed is not
    /// documented (research note §3.3, "Unknown"), so they behave like wap orders, decided here
    /// and only here: they notify `TRADE_SUCCESS`, `TRADE_CLOSED` and `TRADE_FINISHED`, close
    /// unpaid (`alipay.trade.close`, expiry), and refund partially and fully. Refund and close
    /// have no product rules of their own, so [`Self::notifies`] is where it shows.
    pub(crate) const fn trade_rules(self) -> Self {
        match self {
            Self::AgentPay => Self::Wap,
            other => other,
        }
    }

    /// Alipay's defaults: wap notifies `TRADE_SUCCESS`, `TRADE_CLOSED` and `TRADE_FINISHED`;
    /// page pay only `TRADE_SUCCESS`. Precreate is treated like wap (its docs list the same
    /// three states); 智易收 follows wap ([`Self::trade_rules`]).
    pub(crate) fn notifies(self, status: &TradeStatus) -> bool {
        match self.trade_rules() {
            Self::Page => *status == TradeStatus::TradeSuccess,
            Self::Wap | Self::Precreate | Self::AgentPay => matches!(
                status,
                TradeStatus::TradeSuccess | TradeStatus::TradeClosed | TradeStatus::TradeFinished
            ),
        }
    }

    /// Wap and page links for one `out_trade_no` are the same order opened in two cashiers;
    /// a precreate and a 智易收 order are each a product of their own.
    pub(crate) fn same_family(self, other: Self) -> bool {
        match (self, other) {
            (Self::Wap | Self::Page, Self::Wap | Self::Page) => true,
            (a, b) => a == b,
        }
    }
}

/// The agent of a 智易收 order (`alipay.aipay.trade.precreate`), as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Agent {
    pub agent_id: String,
    pub agent_name: String,
    pub request_channel_source: Option<String>,
}

/// An order as the merchant described it. It exists from the moment a link is opened or a
/// precreate is answered; the trade exists only once the buyer engages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Order {
    pub app_id: String,
    pub out_trade_no: String,
    pub product: Product,
    pub total_fen: i64,
    pub subject: String,
    pub body: Option<String>,
    /// Echoed in notifications exactly as received.
    pub passback_params: Option<String>,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    /// The algorithm of the request that created the order: notifications and return_url
    /// queries are signed with it.
    #[serde(with = "sign_type_text")]
    pub sign_type: SignType,
    /// The cashier's URL path token (`/qr/{token}`).
    pub token: String,
    /// `yyyy-MM-dd HH:mm:ss`, Beijing.
    pub created_at: String,
    /// When the order stops being payable (`yyyy-MM-dd HH:mm:ss`, Beijing): its `time_expire`,
    /// or what its `timeout_express` works out to. Set when the order is first seen and never
    /// moved. `None`: it does not expire (state files from before expiry have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<String>,
    /// A 智易收 order's agent (its `subject` is the agent's name); `None` for other products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
    pub trade: Option<Trade>,
}

impl Order {
    /// The order's expiry has come (`now` at or after `expire_at`).
    pub(crate) fn is_expired(&self, now: &DateTime<FixedOffset>) -> bool {
        self.expire_at
            .as_deref()
            .and_then(alipay_openapi::time::parse_timestamp)
            .is_some_and(|at| at <= *now)
    }

    /// An opened, unpaid trade whose expiry has come: Alipay closes it.
    pub(crate) fn expiry_due(&self, now: &DateTime<FixedOffset>) -> bool {
        self.trade
            .as_ref()
            .is_some_and(|t| t.status == TradeStatus::WaitBuyerPay)
            && self.is_expired(now)
    }
}

/// A trade: created when the buyer opens the cashier (scan or login), then paid, refunded,
/// closed or finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Trade {
    pub trade_no: String,
    pub status: TradeStatus,
    pub buyer_id: String,
    pub buyer_logon_id: String,
    pub gmt_create: String,
    pub gmt_payment: Option<String>,
    pub gmt_close: Option<String>,
    pub refunds: Vec<Refund>,
}

impl Trade {
    /// Paid at some point (refunds and closing after payment do not undo that).
    pub(crate) fn was_paid(&self) -> bool {
        self.gmt_payment.is_some()
    }

    /// Cumulative refunded amount.
    pub(crate) fn refunded_fen(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount_fen).sum()
    }
}

/// One accepted refund.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Refund {
    pub out_request_no: String,
    pub amount_fen: i64,
    pub reason: Option<String>,
    /// `yyyy-MM-dd HH:mm:ss.SSS`, Beijing: notifications carry this precision in `gmt_refund`;
    /// the API's `gmt_refund_pay` is its first 19 characters.
    pub gmt_refund: String,
}

impl Refund {
    pub(crate) fn gmt_refund_pay(&self) -> &str {
        self.gmt_refund.get(..19).unwrap_or(&self.gmt_refund)
    }
}

/// Where a notification stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DeliveryState {
    Pending,
    Delivered,
    GaveUp,
}

/// One asynchronous notification and every attempt to deliver it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Notification {
    pub id: u64,
    pub app_id: String,
    pub out_trade_no: String,
    pub notify_id: String,
    pub url: String,
    pub trade_status: String,
    #[serde(with = "sign_type_text")]
    pub sign_type: SignType,
    /// The fields without `notify_time`, `sign_type` and `sign`, which each attempt adds.
    pub fields: Vec<(String, String)>,
    pub state: DeliveryState,
    /// Unix milliseconds of the next attempt on the emulator's clock (real time plus its offset,
    /// which is persisted too, so a restart resumes the schedule).
    pub next_attempt_ms: i64,
    pub attempts: Vec<Attempt>,
    pub created_at: String,
}

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Attempt {
    /// `yyyy-MM-dd HH:mm:ss`, Beijing; also the `notify_time` that was sent.
    pub at: String,
    pub http_status: Option<u16>,
    /// Transport error, if there was no HTTP answer.
    pub error: Option<String>,
    /// The first 200 characters of the answer body.
    pub body: String,
    /// HTTP 200 with body exactly `success`.
    pub success: bool,
}

/// Everything the emulator keeps; this is the snapshot's content (the journal holds pieces of it).
///
/// Orders and notifications are reached through methods only, so that every change marks what
/// it touched: [`Shared::mutate`](crate::shared::Shared::mutate) journals exactly that after each
/// change ([`crate::journal`]), without diffing the store. Marking something that did not change
/// is harmless (its line repeats its value).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "StoreFields")]
pub(crate) struct Store {
    /// `app_id` → `out_trade_no` → order.
    orders: BTreeMap<String, BTreeMap<String, Order>>,
    /// Oldest first; ids are increasing (each is a fresh `seq`), so one is found by bisection.
    notifications: Vec<Notification>,
    /// Numbers trades and notifications.
    pub seq: u64,
    /// How far the emulator's clock is ahead of real time (`POST /__emulator/clock`); kept so a
    /// restart does not move time back behind what was recorded.
    #[serde(default)]
    pub clock_offset_seconds: i64,
    /// What changed since [`Store::take_touched`] last ran; never saved.
    #[serde(skip)]
    touched: Touched,
    /// Derived, never saved (rebuilt on load): so that a request does not scan every order.
    #[serde(skip)]
    index: Index,
}

/// Lookups a request makes that would otherwise scan every order or notification.
#[derive(Clone, Debug, Default)]
struct Index {
    /// Cashier token → `(app_id, out_trade_no)`; a token is fixed when its order is created.
    by_token: HashMap<String, (String, String)>,
    /// Orders that may still expire: those with an expiry, less those known paid or closed
    /// (pruned in [`Store::take_touched`]); a superset, each is checked before use.
    may_expire: BTreeSet<(String, String)>,
    /// Notifications that may still be pending (pruned the same way); a superset too.
    may_be_pending: BTreeSet<u64>,
}

/// [`Store`] as saved, without what is derived.
#[derive(Deserialize)]
struct StoreFields {
    orders: BTreeMap<String, BTreeMap<String, Order>>,
    notifications: Vec<Notification>,
    seq: u64,
    #[serde(default)]
    clock_offset_seconds: i64,
}

impl From<StoreFields> for Store {
    fn from(fields: StoreFields) -> Self {
        let mut store = Self {
            seq: fields.seq,
            clock_offset_seconds: fields.clock_offset_seconds,
            ..Self::default()
        };
        for order in fields.orders.into_values().flat_map(BTreeMap::into_values) {
            store.put_order(order);
        }
        // As saved, in the saved order.
        store.notifications = fields.notifications;
        for n in &store.notifications {
            if n.state == DeliveryState::Pending {
                store.index.may_be_pending.insert(n.id);
            }
        }
        store.take_touched();
        store
    }
}

/// The state, not the bookkeeping of what changed.
impl PartialEq for Store {
    fn eq(&self, other: &Self) -> bool {
        self.orders == other.orders
            && self.notifications == other.notifications
            && self.seq == other.seq
            && self.clock_offset_seconds == other.clock_offset_seconds
    }
}

impl Eq for Store {}

/// The orders (`(app_id, out_trade_no)`) and notifications (ids) a change may have modified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Touched {
    pub orders: BTreeSet<(String, String)>,
    pub notifications: BTreeSet<u64>,
}

impl Touched {
    pub(crate) fn is_empty(&self) -> bool {
        self.orders.is_empty() && self.notifications.is_empty()
    }
}

impl Store {
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(crate) fn order(&self, app_id: &str, out_trade_no: &str) -> Option<&Order> {
        self.orders.get(app_id)?.get(out_trade_no)
    }

    /// The order, to change: marked touched.
    pub(crate) fn order_mut(&mut self, app_id: &str, out_trade_no: &str) -> Option<&mut Order> {
        let order = self.orders.get_mut(app_id)?.get_mut(out_trade_no)?;
        self.touched
            .orders
            .insert((app_id.to_string(), out_trade_no.to_string()));
        Some(order)
    }

    /// Add or replace the order under its own `app_id` and `out_trade_no`: marked touched.
    pub(crate) fn put_order(&mut self, order: Order) {
        let key = (order.app_id.clone(), order.out_trade_no.clone());
        self.index.by_token.insert(order.token.clone(), key.clone());
        if order.expire_at.is_some() {
            self.index.may_expire.insert(key.clone());
        }
        self.touched.orders.insert(key);
        self.orders
            .entry(order.app_id.clone())
            .or_default()
            .insert(order.out_trade_no.clone(), order);
    }

    /// One app's orders by `out_trade_no`.
    pub(crate) fn orders_of(&self, app_id: &str) -> impl Iterator<Item = &Order> {
        self.orders.get(app_id).into_iter().flat_map(|m| m.values())
    }

    /// Every order, by app then `out_trade_no` (requests use the index instead).
    #[cfg(test)]
    pub(crate) fn all_orders(&self) -> impl Iterator<Item = &Order> {
        self.orders.values().flat_map(|m| m.values())
    }

    /// The order whose trade has this `trade_no`.
    pub(crate) fn order_by_trade_no(&self, app_id: &str, trade_no: &str) -> Option<&Order> {
        self.orders_of(app_id)
            .find(|o| o.trade.as_ref().is_some_and(|t| t.trade_no == trade_no))
    }

    /// `(app_id, out_trade_no)` of the order with this cashier token.
    pub(crate) fn key_by_token(&self, token: &str) -> Option<(String, String)> {
        let (app_id, out_trade_no) = self.index.by_token.get(token)?;
        self.order(app_id, out_trade_no)
            .filter(|o| o.token == token)
            .map(|o| (o.app_id.clone(), o.out_trade_no.clone()))
    }

    /// The orders that may still expire (every unpaid order with an expiry among them).
    pub(crate) fn orders_that_may_expire(&self) -> impl Iterator<Item = &Order> {
        self.index
            .may_expire
            .iter()
            .filter_map(|(app_id, out_trade_no)| self.order(app_id, out_trade_no))
    }

    /// The notifications that may still be pending (every pending one among them), oldest first.
    pub(crate) fn notifications_maybe_pending(&self) -> impl Iterator<Item = &Notification> {
        self.index
            .may_be_pending
            .iter()
            .filter_map(|id| self.notification(*id))
    }

    /// Every notification, oldest first (requests use the index instead).
    #[cfg(test)]
    pub(crate) fn notifications(&self) -> impl Iterator<Item = &Notification> {
        self.notifications.iter()
    }

    /// The notifications of one order, oldest first.
    pub(crate) fn notifications_of<'a>(
        &'a self,
        app_id: &'a str,
        out_trade_no: &'a str,
    ) -> impl Iterator<Item = &'a Notification> + 'a {
        self.notifications
            .iter()
            .filter(move |n| n.app_id == app_id && n.out_trade_no == out_trade_no)
    }

    /// Queue a notification (its `id` a fresh [`Store::next_seq`]): marked touched.
    pub(crate) fn push_notification(&mut self, notification: Notification) {
        self.touched.notifications.insert(notification.id);
        self.index.may_be_pending.insert(notification.id);
        self.notifications.push(notification);
    }

    /// The notification with this id.
    pub(crate) fn notification(&self, id: u64) -> Option<&Notification> {
        self.notifications.get(self.notification_index(id)?)
    }

    /// The notification with this id, to change: marked touched.
    pub(crate) fn notification_mut(&mut self, id: u64) -> Option<&mut Notification> {
        let index = self.notification_index(id)?;
        self.touched.notifications.insert(id);
        self.notifications.get_mut(index)
    }

    /// Replace the notification with the same id, or add it: marked touched.
    pub(crate) fn put_notification(&mut self, notification: Notification) {
        self.touched.notifications.insert(notification.id);
        self.index.may_be_pending.insert(notification.id);
        let index = self.notification_index(notification.id);
        match index.and_then(|i| self.notifications.get_mut(i)) {
            Some(slot) => *slot = notification,
            None => self.notifications.push(notification),
        }
    }

    /// Bisection on the increasing ids; a scan if a hand-edited file broke the order.
    fn notification_index(&self, id: u64) -> Option<usize> {
        self.notifications
            .binary_search_by_key(&id, |n| n.id)
            .ok()
            .or_else(|| self.notifications.iter().position(|n| n.id == id))
    }

    /// What was touched since the last call, forgetting it; the index drops what the touched
    /// items can no longer be (a paid or closed trade does not expire, a delivered or abandoned
    /// notification is not pending: neither goes back).
    pub(crate) fn take_touched(&mut self) -> Touched {
        let touched = std::mem::take(&mut self.touched);
        for key in &touched.orders {
            let settled = self.order(&key.0, &key.1).is_none_or(|o| {
                o.trade
                    .as_ref()
                    .is_some_and(|t| t.status != TradeStatus::WaitBuyerPay)
            });
            if settled {
                self.index.may_expire.remove(key);
            }
        }
        for id in &touched.notifications {
            let settled = self
                .notification(*id)
                .is_none_or(|n| n.state != DeliveryState::Pending);
            if settled {
                self.index.may_be_pending.remove(id);
            }
        }
        touched
    }
}

/// Amount text with two decimals.
pub(crate) fn yuan(fen: i64) -> String {
    Money::from_fen(fen).to_string()
}

/// `SignType` as its parameter text (`RSA2`/`RSA`) in the state file.
mod sign_type_text {
    use alipay_openapi::SignType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &SignType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignType, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_rules_per_product() {
        assert!(Product::Page.notifies(&TradeStatus::TradeSuccess));
        assert!(!Product::Page.notifies(&TradeStatus::TradeClosed));
        assert!(!Product::Page.notifies(&TradeStatus::TradeFinished));
        for p in [Product::Wap, Product::Precreate, Product::AgentPay] {
            assert!(p.notifies(&TradeStatus::TradeSuccess));
            assert!(p.notifies(&TradeStatus::TradeClosed));
            assert!(p.notifies(&TradeStatus::TradeFinished));
            assert!(!p.notifies(&TradeStatus::WaitBuyerPay));
        }
        assert!(Product::Wap.same_family(Product::Page));
        assert!(!Product::Wap.same_family(Product::Precreate));
        assert!(!Product::AgentPay.same_family(Product::Wap));
        assert!(!Product::AgentPay.same_family(Product::Precreate));
        assert!(Product::AgentPay.same_family(Product::AgentPay));
        assert_eq!(Product::AgentPay.trade_rules(), Product::Wap);
    }

    #[test]
    fn refund_pay_time_drops_milliseconds() {
        let r = Refund {
            out_request_no: "R".into(),
            amount_fen: 1,
            reason: None,
            gmt_refund: "2026-11-25 10:20:30.123".into(),
        };
        assert_eq!(r.gmt_refund_pay(), "2026-11-25 10:20:30");
        assert_eq!(yuan(1), "0.01");
        assert_eq!(yuan(12345), "123.45");
    }

    #[test]
    fn the_index_is_rebuilt_on_load_and_drops_what_settled() {
        let order = |no: &str, expire_at: Option<&str>| Order {
            app_id: "A".into(),
            out_trade_no: no.into(),
            product: Product::Wap,
            total_fen: 1,
            subject: "s".into(),
            body: None,
            passback_params: None,
            notify_url: None,
            return_url: None,
            sign_type: SignType::Rsa2,
            token: format!("tok-{no}"),
            created_at: "2026-11-25 10:00:00".into(),
            expire_at: expire_at.map(str::to_string),
            agent: None,
            trade: None,
        };
        let mut store = Store::default();
        store.put_order(order("E", Some("2026-11-25 10:10:00")));
        store.put_order(order("N", None));
        store.take_touched();
        let json = serde_json::to_string(&store).unwrap();
        let mut loaded: Store = serde_json::from_str(&json).unwrap();
        assert_eq!(loaded, store);
        assert_eq!(loaded.key_by_token("tok-N"), Some(("A".into(), "N".into())));
        assert_eq!(loaded.key_by_token("tok-X"), None);
        let may_expire = |s: &Store| -> Vec<String> {
            s.orders_that_may_expire()
                .map(|o| o.out_trade_no.clone())
                .collect()
        };
        assert_eq!(may_expire(&loaded), ["E"]);
        // Paid: it can no longer expire, and leaves the index once the change is taken.
        loaded.order_mut("A", "E").unwrap().trade = Some(Trade {
            trade_no: "T".into(),
            status: TradeStatus::TradeSuccess,
            buyer_id: "b".into(),
            buyer_logon_id: "l".into(),
            gmt_create: "2026-11-25 10:01:00".into(),
            gmt_payment: Some("2026-11-25 10:01:00".into()),
            gmt_close: None,
            refunds: Vec::new(),
        });
        loaded.take_touched();
        assert!(may_expire(&loaded).is_empty());
    }
}
