//! `AP_REFUND_CONFIRM=true`: a refund is sent only after a person approved it through MCP
//! elicitation. The question shows figures from Alipay (paid, already refunded, this refund), not
//! from the model. Clients before 2026-07-28 are asked with `elicitation/create` during the call;
//! 2026-07-28 clients get an input-required result and retry the call with the answer, which must
//! come back with our request state and for the very same refund.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitationAction, ElicitationSchema, InputRequest,
    InputRequests, InputRequiredResult, InputResponses, ProtocolVersion,
};
use rmcp::service::RequestContext;
use serde_json::Value;

use crate::tools::guard::refusal;
use crate::tools::outcome::ToolOutcome;
use crate::tools::refund::RefundPlan;

/// How long a person has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(600);
const INPUT_KEY: &str = "confirmRefund";

struct Pending {
    fingerprint: String,
    figures: (i64, i64),
    asked: Instant,
}

/// Questions asked of 2026-07-28 clients, awaiting their retry. Server-side, so a request state
/// cannot be forged: it is only a random id.
#[derive(Default)]
pub struct PendingConfirmations {
    pending: Mutex<HashMap<String, Pending>>,
}

impl PendingConfirmations {
    fn insert(&self, plan: &RefundPlan) -> String {
        let id = format!("refund-confirm-{:032x}", rand::random::<u128>());
        if let Ok(mut p) = self.pending.lock() {
            p.retain(|_, v| v.asked.elapsed() < ANSWER_WITHIN);
            p.insert(
                id.clone(),
                Pending {
                    fingerprint: plan.fingerprint(),
                    figures: plan.figures(),
                    asked: Instant::now(),
                },
            );
        }
        id
    }

    fn take(&self, id: &str) -> Option<Pending> {
        self.pending
            .lock()
            .ok()?
            .remove(id)
            .filter(|p| p.asked.elapsed() < ANSWER_WITHIN)
    }
}

pub enum Decision {
    Approved,
    Refused(ToolOutcome),
    Ask(InputRequiredResult),
}

fn declined(why: &str) -> Decision {
    Decision::Refused(refusal(
        "AP_REFUND_CONFIRM",
        format!("the refund was not approved: {why}"),
        None,
    ))
}

fn question(plan: &RefundPlan) -> ElicitRequestParams {
    let schema = ElicitationSchema::builder()
        .required_bool("confirm")
        .build_unchecked()
        .with_description("Tick confirm to send this refund.");
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: plan.confirmation_message(),
        requested_schema: schema,
    }
}

/// Accept with `confirm: true` is the only approval.
fn approved(action: &ElicitationAction, content: Option<&Value>) -> Result<(), &'static str> {
    match action {
        ElicitationAction::Accept
            if content.and_then(|c| c.get("confirm")) == Some(&Value::Bool(true)) =>
        {
            Ok(())
        }
        ElicitationAction::Accept => Err("the person did not tick confirm"),
        ElicitationAction::Decline => Err("the person declined"),
        ElicitationAction::Cancel => Err("the person cancelled"),
        _ => Err("the answer was neither accept, decline nor cancel"),
    }
}

pub async fn confirm_refund(
    confirmations: &PendingConfirmations,
    plan: &RefundPlan,
    ctx: &RequestContext<RoleServer>,
    state: Option<String>,
    responses: Option<InputResponses>,
) -> Decision {
    let can_elicit = ctx
        .client_capabilities()
        .is_some_and(|c| c.elicitation.is_some());
    if !can_elicit {
        return Decision::Refused(refusal(
            "AP_REFUND_CONFIRM",
            "every refund needs a person's approval, and this MCP client cannot ask one (it does not offer elicitation); refund from a client that does, or ask the operator".to_string(),
            None,
        ));
    }
    let modern = ctx
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
    if !modern {
        return match ctx
            .peer
            .create_elicitation_with_timeout(question(plan), Some(ANSWER_WITHIN))
            .await
        {
            Ok(answer) => match approved(&answer.action, answer.content.as_ref()) {
                Ok(()) => Decision::Approved,
                Err(why) => declined(why),
            },
            Err(e) => declined(&format!("the question could not be asked ({e})")),
        };
    }
    if let (Some(state), Some(responses)) = (state, responses)
        && let Some(pending) = confirmations.take(&state)
        && pending.fingerprint == plan.fingerprint()
        && pending.figures == plan.figures()
    {
        let answer = responses.get(INPUT_KEY).cloned().unwrap_or(Value::Null);
        let action: Option<ElicitationAction> = answer
            .get("action")
            .and_then(|a| serde_json::from_value(a.clone()).ok());
        return match action {
            Some(action) => match approved(&action, answer.get("content")) {
                Ok(()) => Decision::Approved,
                Err(why) => declined(why),
            },
            None => declined("the answer was not an elicitation result"),
        };
    }
    // First round, or an answer for another refund, or the figures changed since: ask (again).
    let mut requests = InputRequests::new();
    requests.insert(
        INPUT_KEY.to_string(),
        InputRequest::Elicitation(ElicitRequest::new(question(plan))),
    );
    Decision::Ask(InputRequiredResult::new(
        Some(requests),
        Some(confirmations.insert(plan)),
    ))
}
