//! Delivers asynchronous notifications (ALIPAY-PROTOCOL §3.1, §5.7): a form POST to the pay
//! request's `notify_url`, signed at each attempt (with that attempt's `notify_time`), success only
//! on HTTP 200 with body exactly `success`, retries on the configured schedule, every attempt
//! recorded. It runs as one background task; deliveries run concurrently and never block a
//! request. Pending notifications are part of the state, so a restart resumes them. The schedule
//! and `notify_time` follow the emulator's clock: moving it forward (which wakes this task) makes
//! the retries it passes due at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::model::{Attempt, DeliveryState};
use crate::notice;
use crate::shared::Shared;

/// How much of the merchant's answer is kept per attempt.
const BODY_SNIPPET_CHARS: usize = 200;
/// Longest sleep when nothing is due (a wake-up comes earlier when something is queued).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// One finished delivery attempt.
struct Outcome {
    id: u64,
    attempt: Attempt,
}

/// A delivery ready to go out.
struct Delivery {
    id: u64,
    url: String,
    form: String,
    notify_time: String,
}

/// Run until shutdown.
pub(crate) async fn run(shared: Arc<Shared>) {
    // Built on the first delivery: loading root certificates costs a few milliseconds of start-up
    // that an embedding server (local mode) should not pay before it answers its client.
    let mut client: Option<reqwest::Client> = None;
    let mut in_flight: HashSet<u64> = HashSet::new();
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    loop {
        let now_ms = shared.clock.now_ms();
        let (due, next_ms) = due_deliveries(&shared, &in_flight, now_ms);
        if !due.is_empty() && client.is_none() {
            client = build_client(&shared);
        }
        if let Some(client) = &client {
            for delivery in due {
                in_flight.insert(delivery.id);
                tasks.spawn(deliver(client.clone(), delivery));
            }
        }
        let wait = next_ms
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms).max(0) as u64))
            .unwrap_or(IDLE_WAIT)
            .min(IDLE_WAIT);
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            _ = shared.notifier_wake.notified() => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(outcome) = done {
                    in_flight.remove(&outcome.id);
                    record(&shared, outcome);
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Deliveries still in flight are dropped; they stay pending and resume after a restart.
    tasks.abort_all();
}

fn build_client(shared: &Shared) -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(shared.notify_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Mozilla/4.0")
        .build()
        .inspect_err(|e| {
            tracing::error!("cannot build the notification HTTP client: {e}; notifications wait")
        })
        .ok()
}

/// The pending notifications due now (signed, ready to send), and when the next one is due.
fn due_deliveries(
    shared: &Shared,
    in_flight: &HashSet<u64>,
    now_ms: i64,
) -> (Vec<Delivery>, Option<i64>) {
    let notify_time = alipay_openapi::time::format_timestamp(&shared.clock.now());
    shared.read(|store| {
        let mut due = Vec::new();
        let mut next: Option<i64> = None;
        for n in store.notifications_maybe_pending() {
            if n.state != DeliveryState::Pending || in_flight.contains(&n.id) {
                continue;
            }
            if n.next_attempt_ms > now_ms {
                next = Some(next.map_or(n.next_attempt_ms, |t| t.min(n.next_attempt_ms)));
                continue;
            }
            match notice::signed_notification(
                &n.fields,
                &notify_time,
                &shared.platform_key,
                n.sign_type,
            ) {
                Ok(signed) => due.push(Delivery {
                    id: n.id,
                    url: n.url.clone(),
                    form: signed.to_form(),
                    notify_time: notify_time.clone(),
                }),
                Err(e) => tracing::error!("cannot sign notification {}: {e}", n.notify_id),
            }
        }
        (due, next)
    })
}

async fn deliver(client: reqwest::Client, delivery: Delivery) -> Outcome {
    let sent = client
        .post(&delivery.url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(delivery.form)
        .send()
        .await;
    let attempt = match sent {
        Err(e) => Attempt {
            at: delivery.notify_time,
            http_status: None,
            error: Some(describe(&e)),
            body: String::new(),
            success: false,
        },
        Ok(response) => {
            let status = response.status().as_u16();
            let (body, error) = match response.text().await {
                Ok(body) => (body, None),
                Err(e) => (String::new(), Some(describe(&e))),
            };
            Attempt {
                at: delivery.notify_time,
                http_status: Some(status),
                success: status == 200 && body == "success" && error.is_none(),
                body: body.chars().take(BODY_SNIPPET_CHARS).collect(),
                error,
            }
        }
    };
    Outcome {
        id: delivery.id,
        attempt,
    }
}

/// Store an attempt and decide what comes next: delivered, another try later, or give up.
fn record(shared: &Shared, outcome: Outcome) {
    let retry = &shared.notify_retry;
    let now_ms = shared.clock.now_ms();
    shared.mutate(|store| {
        let Some(n) = store.notification_mut(outcome.id) else {
            return;
        };
        let success = outcome.attempt.success;
        tracing::info!(
            notify_id = %n.notify_id,
            url = %n.url,
            status = ?outcome.attempt.http_status,
            success,
            "notification attempt {}",
            n.attempts.len() + 1
        );
        n.attempts.push(outcome.attempt);
        if success {
            n.state = DeliveryState::Delivered;
        } else if let Some(wait) = retry.get(n.attempts.len() - 1) {
            n.next_attempt_ms = now_ms.saturating_add(wait.as_millis() as i64);
        } else {
            n.state = DeliveryState::GaveUp;
        }
    });
}

/// The error and its causes on one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
