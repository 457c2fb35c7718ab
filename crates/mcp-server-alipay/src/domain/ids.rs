//! The numbers a merchant gives Alipay: order numbers (`out_trade_no`) and refund request numbers
//! (`out_request_no`). Validated once, where they enter (a tool argument, a notification, a ledger
//! row); past that point a value of these types is always one Alipay accepts.

use std::fmt;

use serde::Serialize;

/// Longest order / request number Alipay accepts.
pub const MAX_NO_LEN: usize = 64;

/// Alipay's merchant number rule, as said in errors.
pub const NUMBER_RULE: &str =
    "must be 1-64 characters of letters, digits, '_' or '-' (Alipay's merchant number rule)";

fn follows_rule(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NO_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! merchant_number {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// `None` unless `text` follows [`NUMBER_RULE`].
            pub fn parse(text: &str) -> Option<Self> {
                follows_rule(text).then(|| Self(text.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

merchant_number!(
    /// A merchant order number (`out_trade_no`).
    OutTradeNo
);
merchant_number!(
    /// A refund request number (`out_request_no`): one number, one refund.
    OutRequestNo
);

impl OutTradeNo {
    /// A fresh order number: `MCP` + Beijing time to the second + 128 random bits (32 hex
    /// digits), 49 characters. Unique across a fleet minting thousands a second with no
    /// coordination: two numbers of one second collide with probability about n²/2¹²⁹ (for a
    /// million a second, under 10⁻²⁶), where 32 bits collided once in ~65 000 a second.
    pub fn mint() -> Self {
        let now = alipay_openapi::time::beijing_now().format("%Y%m%d%H%M%S");
        Self(format!("MCP{now}{:032X}", rand::random::<u128>()))
    }
}

/// Which gateway an app's orders live at. Environments never share a ledger file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Env {
    Prod,
    Sandbox,
    /// The embedded emulator: no merchant account, no real money.
    Local,
}

impl Env {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prod => "prod",
            Self::Sandbox => "sandbox",
            Self::Local => "local",
        }
    }
}

/// Whose orders a ledger handle reads and writes: one app in one environment. Every ledger row
/// carries both, so one data directory can hold several apps without their numbers meeting.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppScope {
    pub env: Env,
    pub app_id: String,
}

impl fmt::Display for AppScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} app {}", self.env.as_str(), self.app_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_alipays_rule() {
        assert!(OutTradeNo::parse("A-1_b").is_some());
        assert!(OutTradeNo::parse(&"9".repeat(64)).is_some());
        for bad in ["", "A B", "a/b", "订单", "a\u{0}", &"x".repeat(65)] {
            assert!(OutTradeNo::parse(bad).is_none(), "{bad:?}");
            assert!(OutRequestNo::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn minted_numbers_follow_the_rule_and_differ() {
        let (a, b) = (OutTradeNo::mint(), OutTradeNo::mint());
        assert_ne!(a, b);
        assert!(OutTradeNo::parse(a.as_str()).is_some());
        assert!(a.as_str().starts_with("MCP"));
        assert_eq!(a.as_str().len(), 49);
        // Within one second, as a busy fleet mints them: no two alike.
        let many: std::collections::HashSet<String> = (0..200_000)
            .map(|_| OutTradeNo::mint().to_string())
            .collect();
        assert_eq!(many.len(), 200_000);
    }
}
