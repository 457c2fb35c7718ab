//! The flows: what each tool does, and the jobs that run beside them, as async functions over
//! narrow dependencies (the Alipay client, the ledger, the guardrails), each returning a typed
//! result. No transport here: the MCP handler, the HTTP transport and the notify receiver route,
//! authenticate and render; the tools parse and render.

pub mod approvals;
pub mod bills;
pub mod expiry;
pub mod notifications;
pub mod orders;
pub mod reconcile;
pub mod refund_query;
pub mod refunds;
pub mod wait;

use std::sync::Arc;
use std::time::Duration;

use alipay_openapi::AlipayClient;
use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};

use crate::config::Guardrails;
use crate::ledger::{AuditDecision, AuditEntry, AuditOutcome, Ledger, OrderRecord};

/// Tells the caller a long call goes on (MCP progress notifications, in `crate::mcp`): `done` of
/// `total` (seconds waited, steps taken), and what is happening.
#[async_trait]
pub trait Progress: Send + Sync {
    async fn report(&self, done: f64, total: f64, message: String);
}

/// For callers that asked for no progress.
pub struct NoProgress;

#[async_trait]
impl Progress for NoProgress {
    async fn report(&self, _: f64, _: f64, _: String) {}
}

/// What the flows need, and nothing else.
#[derive(Clone)]
pub struct Services {
    /// Signs and sends to Alipay (or the embedded gateway).
    pub client: AlipayClient,
    pub ledger: Arc<dyn Ledger>,
    pub guard: Guardrails,
    /// `AP_TIMEOUT_MS`: a lost refund answer is looked up within about one more of these.
    pub timeout: Duration,
    /// `AP_ORDER_TTL_MINUTES`: how long an order stays payable, at most.
    pub order_ttl_minutes: u32,
    /// The `agent_id` of 智易收 orders (`AP_AGENT_ID`, else the app id).
    pub agent_id: String,
    /// The gateway's clock, which says when an order has expired.
    pub clock: Arc<dyn GatewayClock>,
    /// Who waits on which order, and the queries made for them.
    pub waits: Arc<wait::WaitHub>,
    /// Refund approval pages, where the client cannot ask (`None`: off).
    pub approvals: Option<approvals::ApprovalSettings>,
}

/// The clock of the gateway that expires orders: Alipay keeps real Beijing time; the embedded
/// gateway's can be moved by tests (`POST /__emulator/clock`), and then it is the one that counts.
#[async_trait]
pub trait GatewayClock: Send + Sync {
    async fn now(&self) -> DateTime<FixedOffset>;
}

/// Real Beijing time.
pub struct SystemClock;

#[async_trait]
impl GatewayClock for SystemClock {
    async fn now(&self) -> DateTime<FixedOffset> {
        alipay_openapi::time::beijing_now()
    }
}

/// The embedded gateway's clock, when it runs in this process: read directly.
pub struct EmbeddedClock(pub alipay_emulator::ClockHandle);

#[async_trait]
impl GatewayClock for EmbeddedClock {
    async fn now(&self) -> DateTime<FixedOffset> {
        self.0.now()
    }
}

/// The embedded gateway's clock, when another server on the data dir runs it: asked over its control API (`GET /__emulator/clock`); real time
/// when it cannot be asked.
pub struct EmulatorClock {
    url: String,
    http: reqwest::Client,
}

impl EmulatorClock {
    /// `base`: the emulator's base URL (`http://127.0.0.1:8765`).
    pub fn new(base: &str) -> Self {
        Self {
            url: format!("{}/__emulator/clock", base.trim_end_matches('/')),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
        }
    }
}

#[async_trait]
impl GatewayClock for EmulatorClock {
    async fn now(&self) -> DateTime<FixedOffset> {
        let asked = async {
            let body = self
                .http
                .get(&self.url)
                .send()
                .await
                .ok()?
                .bytes()
                .await
                .ok()?;
            let answer: serde_json::Value = serde_json::from_slice(&body).ok()?;
            alipay_openapi::time::parse_timestamp(answer.get("now")?.as_str()?)
        };
        match asked.await {
            Some(now) => now,
            None => alipay_openapi::time::beijing_now(),
        }
    }
}

impl Services {
    /// Whether the gateway's clock is past the order's `time_expire` (never, for an order made
    /// before orders expired).
    pub async fn past_expiry(&self, order: &OrderRecord) -> bool {
        let Some(at) = order
            .expires_at
            .as_deref()
            .and_then(alipay_openapi::time::parse_timestamp)
        else {
            return false;
        };
        self.clock.now().await >= at
    }

    /// Write an audit row; a ledger failure is logged, never hidden as success.
    pub async fn audit(
        &self,
        tool: &str,
        arguments: &serde_json::Map<String, serde_json::Value>,
        decision: AuditDecision,
        outcome: AuditOutcome,
    ) {
        let arguments = serde_json::Value::Object(arguments.clone());
        let entry = AuditEntry {
            tool,
            arguments: &arguments,
            decision,
            outcome,
        };
        if let Err(e) = self.ledger.audit(&entry).await {
            tracing::error!(tool, error = %e, "cannot write the audit row");
        }
    }
}
