//! `decide-alipay-refund-in-card` (app-only): the refund approval view's approve and deny buttons.
//! Hosts hide it from the model (`_meta.ui.visibility: ["app"]`), but that is advisory, so the
//! server itself refuses any call without the view's one-time grant, which travels only in the
//! refund result's `_meta` (kept out of the model's context) and never in its text or structured
//! output. The PIN rule of the approval page holds: `AP_REFUND_PIN` is never accepted in a tool
//! argument, so with a PIN set this tool can deny but not approve (the card sends the person to
//! the page, where the PIN is typed). Then the decision is the page's
//! (`crate::service::approvals::decide_in_view`): fresh figures, every guardrail, once. Arguments
//! are never audited or logged: they hold the grant.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::service::approvals::{self, Decided};
use crate::tools::args::{ArgError, Field, FieldKind, RawArgs};
use crate::tools::render::ToolOutcome;
use crate::tools::{CallContext, CallFuture, Hints, ToolDef, ToolKind, ToolReply, boxed};

const FIELDS: &[Field] = &[
    Field::required(
        "grant",
        FieldKind::Text(64),
        "The approval card's one-time grant (from the refund result's _meta)",
    ),
    Field::required(
        "decision",
        FieldKind::Choice(&["approve", "deny"]),
        "approve or deny",
    ),
];

pub const DEF: ToolDef = ToolDef {
    kind: ToolKind::RefundDecision,
    name: "decide-alipay-refund-in-card",
    select_key: "refundDecision",
    title: "Refund approval card: approve or deny",
    description: "App-only: the refund approval card's buttons. Needs the card's one-time grant; the model cannot use it.",
    hints: Hints {
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: true,
    },
    fields: FIELDS,
    validate: |raw| parse(raw).map(drop),
    output_schema: crate::tools::output_schema_of::<DecisionOutput>,
    call: call_tool,
};

struct Request {
    grant: String,
    decision: String,
}

fn parse(raw: &Map<String, Value>) -> Result<Request, ArgError> {
    let args = RawArgs::new(raw, FIELDS)?;
    Ok(Request {
        grant: args.required_text("grant", 64)?,
        decision: args
            .choice("decision", &["approve", "deny"])?
            .ok_or_else(|| ArgError {
                field: "decision".into(),
                message: "is required".into(),
            })?
            .to_string(),
    })
}

/// What the card's button did.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionOutput {
    /// `sent` (approved; `refundState` says how it ended), `denied`, or `refused` (nothing decided).
    pub decided: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_state: Option<String>,
    pub message: String,
}

pub(crate) fn outcome(
    is_error: bool,
    decided: &str,
    refund_state: Option<String>,
    message: String,
) -> ToolOutcome {
    let output = DecisionOutput {
        decided: decided.into(),
        refund_state,
        message: message.clone(),
    };
    if is_error {
        ToolOutcome::error(message, &output)
    } else {
        ToolOutcome::ok(message, &output)
    }
}

fn call_tool<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(async move {
        let refused = |why: &str| outcome(true, "refused", None, why.to_string());
        // The argument error is not shown: it could quote part of a PIN.
        let Ok(request) = parse(raw) else {
            return ToolReply::Done(refused(
                "The decision's grant or choice is malformed, so nothing was decided.",
            ));
        };
        // Before the grant is spent: the PIN is typed on the page only, never into a tool.
        let pin_set = ctx
            .services
            .approvals
            .as_ref()
            .is_some_and(|a| a.pin.is_some());
        if pin_set && request.decision == "approve" {
            return ToolReply::Done(refused(
                "Approving this refund needs the PIN, which is typed only on the approval page: open it from the card. Nothing was decided.",
            ));
        }
        // No grant, a wrong or a used one: not the card (the model never sees a grant).
        let Some(token) = ctx.views.and_then(|g| g.take(&request.grant)) else {
            return ToolReply::Done(refused(
                "This decision did not come from the refund approval card (its one-time grant is missing, wrong, used or expired); nothing was decided. A person can still use the approval page's link.",
            ));
        };
        let decided = approvals::decide_in_view(ctx.services, &token, &request.decision).await;
        ToolReply::Done(match decided {
            Decided::Denied => outcome(
                false,
                "denied",
                None,
                "The refund was denied; nothing was sent to Alipay.".into(),
            ),
            Decided::Refused(why) => outcome(true, "refused", None, why),
            Decided::Sent(result) => {
                let state = result.state().as_str().to_string();
                outcome(
                    false,
                    "sent",
                    Some(state.clone()),
                    format!("The refund was approved and sent to Alipay: {state}."),
                )
            }
        })
    })
}
