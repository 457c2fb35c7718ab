//! Guardrail refusals and the audit trail of money-moving calls.

use alipay_openapi::Amount;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::ledger::AuditEntry;
use crate::tools::outcome::ToolOutcome;

/// An `isError` result naming the rule and its configured limit. The limit lives in the server's
/// environment, out of the model's reach, and the text says so.
pub fn refusal(rule: &str, what: String, limit: Option<Amount>) -> ToolOutcome {
    let why = if rule.starts_with("AP_") {
        "This limit is set in the server's environment by its operator and cannot be changed from the conversation"
    } else {
        "This rule always applies: what was paid comes from Alipay's signed answer just now, what was refunded from Alipay's last report or this server's confirmed refunds, whichever is more, plus this server's refunds still in flight; nothing comes from the conversation"
    };
    ToolOutcome::error(
        format!("Refused by guardrail {rule}: {what}. {why}; nothing was sent to Alipay."),
        json!({ "error": { "kind": "guardrail", "rule": rule, "message": what, "limit": limit.map(|l| l.to_string()) } }),
    )
}

/// Write an audit row; a ledger failure is logged, never hidden as success.
pub fn audit(app: &App, tool: &str, args: &Map<String, Value>, decision: &str, outcome: &str) {
    let arguments = Value::Object(args.clone());
    let entry = AuditEntry {
        tool,
        arguments: &arguments,
        decision,
        outcome,
    };
    if let Err(e) = app.ledger.audit(&entry) {
        tracing::error!(tool, error = %e, "cannot write the audit row");
    }
}

/// `decision`/`outcome` words for an outcome.
pub fn outcome_word(o: &ToolOutcome) -> &'static str {
    if o.is_error { "failed" } else { "succeeded" }
}

/// The audit decision an outcome stands for: `refused: <rule>` for a guardrail or a conflicting
/// number (nothing was sent), `allowed` otherwise.
pub fn decision_of(o: &ToolOutcome) -> String {
    match o.structured.pointer("/error/kind").and_then(Value::as_str) {
        Some("guardrail") => format!(
            "refused: {}",
            o.structured
                .pointer("/error/rule")
                .and_then(Value::as_str)
                .unwrap_or("?")
        ),
        Some("conflict") => "refused: number already used".to_string(),
        _ => "allowed".to_string(),
    }
}
