//! The domain: what an order, a refund and a notification are, and the money rules over them, as
//! plain types and pure functions. Nothing here does I/O; the ledger loads facts and stores
//! decisions, the services orchestrate, the tools render. Each rule is unit-tested here, alone.

pub mod bill;
pub mod guardrail;
pub mod ids;
pub mod notify;
pub mod order;
pub mod outbox;
pub mod refund;
pub mod text_policy;

pub use ids::{AppScope, Env, OutRequestNo, OutTradeNo};
pub use order::{OrderKind, PaymentState, StatusSource};
pub use refund::RefundState;

/// Today's Beijing day, `yyyy-MM-dd`: what the daily refund budget counts.
pub fn beijing_today() -> String {
    alipay_openapi::time::beijing_now()
        .format("%Y-%m-%d")
        .to_string()
}
