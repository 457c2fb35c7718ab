//! Telling the merchant's systems and the creator: the delivery worker. The ledger writes each
//! verified event, with one delivery per configured target, in the transaction that records it
//! (`crate::domain::outbox` says which); this worker leases the deliveries that are due, sends each
//! in its target's format (`wire`), records every attempt, and retries on the schedule until the
//! window closes. A crash loses nothing: what was not recorded as delivered is sent again, with
//! the same event id, once its lease runs out. A target that answers badly or slowly holds up only
//! its own deliveries, never the notify receiver or another target.

pub mod message;
pub mod targets;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use self::targets::OutboxConfig;
use crate::domain::outbox::Next;
use crate::ledger::events::now_ms;
use crate::ledger::{AttemptResult, DueDelivery, Ledger};

/// How long one attempt may take before it counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a sender holds a delivery: well past one attempt, so two instances never send it at
/// once, and short enough that a crashed sender's deliveries are soon taken up again.
const LEASE_MS: i64 = 30_000;
/// Deliveries in flight at once.
const MAX_IN_FLIGHT: usize = 16;
/// Longest sleep when nothing is due (another process sharing the ledger may have written).
const IDLE_WAIT: Duration = Duration::from_secs(30);
/// The most of an answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A transport error and its causes (`tcp connect error: Connection refused`), without the URL.
fn transport_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(ATTEMPT_TIMEOUT)
        .user_agent(concat!("mcp-server-alipay/", env!("CARGO_PKG_VERSION")))
        // A target that redirects is misconfigured; following could post the event elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

/// Deliver until the ledger closes. Does nothing when no target is configured.
pub async fn run(ledger: Arc<dyn Ledger>, config: Arc<OutboxConfig>) {
    if config.targets.is_empty() {
        return;
    }
    let http = match http_client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the delivery HTTP client; nothing is delivered");
            return;
        }
    };
    tracing::info!(targets = ?config.targets, "delivering events");
    let mut changes = ledger.changes();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    loop {
        let now = now_ms();
        let room = MAX_IN_FLIGHT - in_flight.len();
        let mut wait = IDLE_WAIT;
        if room > 0 {
            match ledger.claim_deliveries(now, LEASE_MS, room).await {
                Ok(due) => {
                    for d in due {
                        in_flight.spawn(deliver(ledger.clone(), config.clone(), http.clone(), d));
                    }
                    if let Ok(Some(at)) = ledger.next_delivery_at().await {
                        wait = Duration::from_millis(at.saturating_sub(now).max(0) as u64);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbox; trying again shortly");
                    wait = Duration::from_secs(5);
                }
            }
        }
        tokio::select! {
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            () = tokio::time::sleep(wait.min(IDLE_WAIT)) => {}
            change = changes.recv() => {
                if matches!(change, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
        }
    }
}

/// One attempt at one delivery, recorded.
async fn deliver(
    ledger: Arc<dyn Ledger>,
    config: Arc<OutboxConfig>,
    http: reqwest::Client,
    due: DueDelivery,
) {
    let (event, kind) = (&due.event, due.target);
    let outcome = match config.target(kind) {
        Some(target) => attempt(&http, target, &due).await,
        // Claims only name configured targets; this is a target removed while it was in flight.
        None => return,
    };
    let failures = due.attempts + 1;
    let (next, detail) = match outcome.verdict {
        Ok(()) => (None, "ok".to_string()),
        Err(detail) => (
            Some(
                config
                    .retry
                    .after_failure(failures, event.created_ms, now_ms()),
            ),
            detail,
        ),
    };
    match next {
        None => {
            tracing::info!(event = %event.id, kind = event.kind.as_str(), target = kind.as_str(), attempts = failures, "event delivered")
        }
        Some(Next::RetryAt(at)) => {
            tracing::warn!(event = %event.id, target = kind.as_str(), attempt = failures, %detail, retry_in_ms = at - now_ms(), "delivery failed; will retry")
        }
        Some(Next::GiveUp) => {
            tracing::error!(event = %event.id, kind = event.kind.as_str(), target = kind.as_str(), attempts = failures, %detail, "delivery given up: the retry window closed")
        }
    }
    let result = AttemptResult {
        next,
        http_status: outcome.status,
        detail,
    };
    if let Err(e) = ledger.record_attempt(&event.id, kind, &result).await {
        // The lease runs out and it is sent again, with the same event id: at least once.
        tracing::error!(event = %event.id, target = kind.as_str(), error = %e, "cannot record a delivery attempt");
    }
}

struct Outcome {
    status: Option<u16>,
    verdict: Result<(), String>,
}

async fn attempt(http: &reqwest::Client, target: &targets::Target, due: &DueDelivery) -> Outcome {
    let out = match wire::request(target, &due.event, now_ms()) {
        Ok(out) => out,
        Err(e) => {
            return Outcome {
                status: None,
                verdict: Err(e),
            };
        }
    };
    let mut request = http
        .post(out.url)
        .header(reqwest::header::CONTENT_TYPE, out.content_type)
        .body(out.body);
    for (name, value) in out.headers {
        request = request.header(name, value);
    }
    // An error's text would name the URL, and a robot's URL is its credential.
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                status: None,
                verdict: Err(format!("no answer: {}", transport_error(e))),
            };
        }
    };
    let status = response.status().as_u16();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() < MAX_ANSWER_BYTES => body.extend_from_slice(&chunk),
            Ok(_) => break,
            Err(e) => {
                return Outcome {
                    status: Some(status),
                    verdict: Err(format!("HTTP {status}, answer cut: {}", transport_error(e))),
                };
            }
        }
    }
    Outcome {
        status: Some(status),
        verdict: wire::judge(target.kind, status, &String::from_utf8_lossy(&body)),
    }
}
