//! `AP_REFUND_CONFIRM=true`: a refund is sent only after a person approved it through MCP
//! elicitation ([`ElicitConfirm`], the MCP side of `crate::service::refunds::Confirm`) or, where
//! the client cannot ask, on an approval page (`crate::service::approvals`). The question shows figures from Alipay (paid, already refunded, this refund), not
//! from the model. Clients before 2026-07-28 are asked with `elicitation/create` during the call;
//! 2026-07-28 clients get an input-required result and retry the call with the answer, which must
//! come back with our request state and for the very same refund.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alipay_openapi::Money;
use async_trait::async_trait;
use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitationAction, ElicitationSchema, InputRequest,
    InputRequests, InputRequiredResult, InputResponses, ProtocolVersion,
};
use rmcp::service::RequestContext;
use serde_json::Value;

use crate::service::refunds::{Confirm, Decision, RefundPlan, RefundRequest};

/// How long a person has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(600);
const INPUT_KEY: &str = "confirmRefund";

struct Pending {
    /// The refund asked about: an answer is for this refund only.
    refund: RefundRequest,
    figures: (Money, Money),
    asked: Instant,
}

/// Questions asked of 2026-07-28 clients, awaiting their retry. Server-side, so a request state
/// cannot be forged: it is only a random id.
#[derive(Default)]
pub struct PendingConfirmations {
    pending: Mutex<HashMap<String, Pending>>,
}

impl PendingConfirmations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        // A panic elsewhere cannot leave this map half-written: take it as it is.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, plan: &RefundPlan) -> String {
        let id = format!("refund-confirm-{:032x}", rand::random::<u128>());
        let mut pending = self.lock();
        pending.retain(|_, v| v.asked.elapsed() < ANSWER_WITHIN);
        pending.insert(
            id.clone(),
            Pending {
                refund: plan.request.clone(),
                figures: plan.figures(),
                asked: Instant::now(),
            },
        );
        id
    }

    fn take(&self, id: &str) -> Option<Pending> {
        self.lock()
            .remove(id)
            .filter(|p| p.asked.elapsed() < ANSWER_WITHIN)
    }
}

fn declined(why: &str) -> Decision {
    Decision::Refused(format!("the refund was not approved: {why}"))
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

/// Asks through the MCP request being served.
pub struct ElicitConfirm<'a> {
    pub confirmations: &'a PendingConfirmations,
    pub ctx: &'a RequestContext<RoleServer>,
    /// What a 2026-07-28 client sent back with its retry.
    pub state: Option<String>,
    pub responses: Option<InputResponses>,
    /// The question for a 2026-07-28 client, once asked.
    pub question: Mutex<Option<InputRequiredResult>>,
    /// The host shows the refund approval view (MCP Apps) and approval pages are on: the person
    /// decides there rather than in an elicitation form.
    pub in_view: bool,
}

impl ElicitConfirm<'_> {
    pub fn take_question(&self) -> Option<InputRequiredResult> {
        self.question
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// The client offers elicitation (form mode).
fn can_elicit(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.client_capabilities()
        .is_some_and(|c| c.elicitation.is_some())
}

#[async_trait]
impl Confirm for ElicitConfirm<'_> {
    fn can_ask(&self) -> bool {
        !self.in_view && can_elicit(self.ctx)
    }

    async fn ask(&self, plan: &RefundPlan) -> Decision {
        match confirm_refund(
            self.confirmations,
            plan,
            self.ctx,
            self.state.clone(),
            self.responses.clone(),
        )
        .await
        {
            Asked::Decided(decision) => decision,
            Asked::Question(question) => {
                *self.question.lock().unwrap_or_else(|p| p.into_inner()) = Some(question);
                Decision::Asking
            }
        }
    }
}

enum Asked {
    Decided(Decision),
    Question(InputRequiredResult),
}

async fn confirm_refund(
    confirmations: &PendingConfirmations,
    plan: &RefundPlan,
    ctx: &RequestContext<RoleServer>,
    state: Option<String>,
    responses: Option<InputResponses>,
) -> Asked {
    if !can_elicit(ctx) {
        return Asked::Decided(Decision::CannotAsk);
    }
    let modern = ctx
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
    if !modern {
        return Asked::Decided(
            match ctx
                .peer
                .create_elicitation_with_timeout(question(plan), Some(ANSWER_WITHIN))
                .await
            {
                Ok(answer) => match approved(&answer.action, answer.content.as_ref()) {
                    Ok(()) => Decision::Approved,
                    Err(why) => declined(why),
                },
                Err(e) => declined(&format!("the question could not be asked ({e})")),
            },
        );
    }
    if let (Some(state), Some(responses)) = (state, responses)
        && let Some(pending) = confirmations.take(&state)
        && pending.refund == plan.request
        && pending.figures == plan.figures()
    {
        let answer = responses.get(INPUT_KEY).cloned().unwrap_or(Value::Null);
        let action: Option<ElicitationAction> = answer
            .get("action")
            .and_then(|a| serde_json::from_value(a.clone()).ok());
        return Asked::Decided(match action {
            Some(action) => match approved(&action, answer.get("content")) {
                Ok(()) => Decision::Approved,
                Err(why) => declined(why),
            },
            None => declined("the answer was not an elicitation result"),
        });
    }
    // First round, or an answer for another refund, or the figures changed since: ask (again).
    let mut requests = InputRequests::new();
    requests.insert(
        INPUT_KEY.to_string(),
        InputRequest::Elicitation(ElicitRequest::new(question(plan))),
    );
    Asked::Question(InputRequiredResult::new(
        Some(requests),
        Some(confirmations.insert(plan)),
    ))
}
