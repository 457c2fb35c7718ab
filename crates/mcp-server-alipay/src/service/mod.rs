//! The flows: what each tool does, and the jobs that run beside them, as async functions over
//! narrow dependencies (the Alipay client, the ledger, the guardrails), each returning a typed
//! result. No transport here: the MCP handler, the HTTP transport and the notify receiver route,
//! authenticate and render; the tools parse and render.

pub mod notifications;
pub mod orders;
pub mod reconcile;
pub mod refund_query;
pub mod refunds;

use std::sync::Arc;
use std::time::Duration;

use alipay_openapi::AlipayClient;

use crate::config::Guardrails;
use crate::ledger::{AuditDecision, AuditEntry, AuditOutcome, Ledger};

/// What the flows need, and nothing else.
#[derive(Clone)]
pub struct Services {
    /// Signs and sends to Alipay (or the embedded gateway).
    pub client: AlipayClient,
    pub ledger: Arc<dyn Ledger>,
    pub guard: Guardrails,
    /// `AP_TIMEOUT_MS`: a lost refund answer is looked up within about one more of these.
    pub timeout: Duration,
}

impl Services {
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
