//! `refund-alipay-payment`: the definition, and what a refund answers for each way it can end
//! (`crate::service::refunds::RefundResult`): the text the reference prints (`退款结果: …`) and
//! the structured result, rendered from the one typed result the audit row also comes from.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::service::refunds::{self, RefundRequest, RefundResult, Refusal};
use crate::tools::args::{ArgError, Field, FieldKind, MAX_TITLE_CHARS, RawArgs};
use crate::tools::render::{ErrorOut, ToolOutcome, WithError, failure_text, transport_message};
use crate::tools::{CallContext, CallFuture, Hints, ToolDef, ToolKind, ToolReply, boxed};

const FIELDS: &[Field] = &[
    Field::required("outTradeNo", FieldKind::Number, "商户订单号"),
    Field::required("refundAmount", FieldKind::Yuan, "退款金额，以元为单位"),
    Field::required(
        "outRequestNo",
        FieldKind::Number,
        "退款请求号，同一笔退款重试时必须使用相同的退款请求号",
    ),
    Field::optional("refundReason", FieldKind::Text(MAX_TITLE_CHARS), "退款原因"),
];

pub const DEF: ToolDef = ToolDef {
    kind: ToolKind::RefundPay,
    name: "refund-alipay-payment",
    select_key: "refundPay",
    title: "Refund an Alipay payment",
    description: "对交易发起退款，并返回退款状态和退款金额",
    hints: Hints {
        read_only: false,
        destructive: true,
        idempotent: true,
        open_world: true,
    },
    fields: FIELDS,
    validate: |raw| parse(raw).map(drop),
    output_schema: crate::tools::output_schema_of::<RefundOutput>,
    call: call_tool,
};

pub fn parse(raw: &Map<String, Value>) -> Result<RefundRequest, ArgError> {
    let args = RawArgs::new(raw, FIELDS)?;
    Ok(RefundRequest {
        out_trade_no: args.order_no("outTradeNo")?,
        amount: args.yuan("refundAmount")?,
        out_request_no: args.request_no("outRequestNo")?,
        reason: args.text("refundReason", MAX_TITLE_CHARS)?,
    })
}

/// What a refund answers.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_request_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_amount: Option<String>,
    /// `REFUND_SUCCESS` (moved by this call) or `REFUND_ALREADY_DONE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<String>,
    /// Alipay's cumulative refund on the trade, when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_refunded: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fund_change: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_status: Option<String>,
    /// Alipay confirmed the refund.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// It may or may not have happened: retry with the same outRequestNo only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_unknown: Option<bool>,
    /// The refund this number already means, when it differs from the one asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_refund: Option<ExistingRefund>,
    /// `awaitingApproval`: recorded, not sent; a person approves it at `approvalUrl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The one-time approval page (works once, until `approvalExpiresAt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_url: Option<String>,
    /// Beijing time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_expires_at: Option<String>,
    /// What the buyer paid, from Alipay's signed answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_amount: Option<String>,
    /// Refunded before this one (in flight included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub already_refunded: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExistingRefund {
    pub refund_amount: String,
    pub state: String,
}

crate::tools::render::with_error_field!(RefundOutput);

fn call_tool<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(async move {
        let request = match parse(raw) {
            Ok(r) => r,
            Err(e) => {
                return ToolReply::Done(ToolOutcome::bad_argument(
                    DEF.name,
                    &e,
                    RefundOutput::default(),
                ));
            }
        };
        let result = refunds::refund(ctx.services, request.clone(), ctx.confirm).await;
        let Some((decision, outcome)) = result.audit() else {
            return ToolReply::AwaitingPerson;
        };
        ctx.services.audit(DEF.name, raw, decision, outcome).await;
        let mut outcome = render(&request, &result);
        if let (RefundResult::AwaitingApproval(offer), Some(grants)) = (&result, ctx.views) {
            offer_in_view(ctx, grants, offer, &mut outcome);
        }
        ToolReply::Done(outcome)
    })
}

/// An MCP Apps host shows the refund approval view with this result: give the view (and only the
/// view, through the result's `_meta`) a one-time grant for the approval's button.
fn offer_in_view(
    ctx: &CallContext<'_>,
    grants: &crate::apps::grants::ViewGrants,
    offer: &crate::service::approvals::ApprovalOffer,
    outcome: &mut ToolOutcome,
) {
    let settings = ctx.services.approvals.as_ref();
    let ttl_minutes = settings.map_or(0, |s| s.ttl_minutes);
    let grant = grants.issue(
        &offer.token,
        std::time::Duration::from_secs(u64::from(ttl_minutes) * 60),
    );
    let mut meta = Map::new();
    meta.insert(crate::apps::grants::META_KEY.into(), Value::String(grant));
    meta.insert(
        crate::apps::grants::PIN_KEY.into(),
        Value::Bool(settings.is_some_and(|s| s.pin.is_some())),
    );
    outcome.view_meta = Some(crate::tools::render::ViewMeta(meta));
    outcome
        .text
        .push_str(" The person can also approve or deny it in the card shown with this result.");
}

pub fn render(r: &RefundRequest, result: &RefundResult) -> ToolOutcome {
    let about = RefundOutput {
        out_trade_no: Some(r.out_trade_no.to_string()),
        out_request_no: Some(r.out_request_no.to_string()),
        refund_amount: Some(r.amount.to_string()),
        ..RefundOutput::default()
    };
    let not_confirmed = |about: RefundOutput| RefundOutput {
        confirmed: Some(false),
        ..about
    };
    let unknown = |about: RefundOutput| RefundOutput {
        outcome_unknown: Some(true),
        confirmed: Some(false),
        ..about
    };
    match result {
        RefundResult::Succeeded {
            trade_no,
            total_refunded,
            moved_now,
        } => succeeded(
            about,
            trade_no.as_deref(),
            total_refunded.map(|m| m.to_string()),
            *moved_now,
        ),
        RefundResult::Replayed(previous) => succeeded(
            about,
            previous.trade_no.as_deref(),
            previous.total_refunded.map(|m| m.to_string()),
            false,
        ),
        RefundResult::Refused(refusal) => refused(r, about, refusal),
        RefundResult::Failed(e) => ToolOutcome::error(
            failure_text("退款执行失败", e, "No money moved."),
            &not_confirmed(about).with_error(ErrorOut::gateway(e)),
        ),
        RefundResult::NotConfirmed { refund_status } => ToolOutcome::error(
            format!(
                "退款未确认: Alipay answered without moving money (fund_change=N) and the refund query shows status {}. Query again later with query-alipay-refund (outRequestNo {}), or repeat this refund with the same outRequestNo.",
                refund_status.as_deref().unwrap_or("未知"),
                r.out_request_no
            ),
            &RefundOutput {
                refund_status: refund_status.clone(),
                fund_change: Some("N".into()),
                ..unknown(about)
            },
        ),
        RefundResult::Unknown(e) => ToolOutcome::error(
            format!(
                "退款结果未知: {} Alipay may or may not have made this refund. Retry refund-alipay-payment with the SAME outRequestNo {} (Alipay refunds at most once per outRequestNo), or check with query-alipay-refund. Never retry it with a new outRequestNo.",
                transport_message(e),
                r.out_request_no
            ),
            &unknown(about).with_error(ErrorOut::gateway(e)),
        ),
        RefundResult::Unrecorded { state, why } => ToolOutcome::error(
            format!(
                "退款结果未记录: Alipay's answer ({}) could not be written to the order ledger ({why}). Retry refund-alipay-payment with the SAME outRequestNo {}; Alipay refunds at most once per outRequestNo.",
                state.as_str(),
                r.out_request_no
            ),
            &unknown(about).with_error(ErrorOut::new("ledger", why.clone())),
        ),
        RefundResult::InFlightElsewhere { .. } => ToolOutcome::error(
            format!(
                "退款结果未知: another server process on this data dir is sending refund {} right now. Check with query-alipay-refund in a few seconds, or retry refund-alipay-payment with the SAME outRequestNo; never with a new one.",
                r.out_request_no
            ),
            &unknown(about).with_error(ErrorOut::new(
                "in_flight",
                "sent by another server process now",
            )),
        ),
        RefundResult::AwaitingApproval(offer) => ToolOutcome::ok(
            format!(
                "退款等待审批: a person must approve this refund before anything is sent to Alipay. Approval page (works once, until {} Beijing time): {} . Paid: {}, already refunded: {}, this refund: {}. Call refund-alipay-payment again with the same arguments, or query-alipay-refund with outRequestNo {}, to learn the outcome.",
                offer.expires_at,
                offer.url,
                offer.paid,
                offer.already_refunded,
                r.amount,
                r.out_request_no
            ),
            &RefundOutput {
                status: Some("awaitingApproval".into()),
                approval_url: Some(offer.url.clone()),
                approval_expires_at: Some(offer.expires_at.clone()),
                paid_amount: Some(offer.paid.to_string()),
                already_refunded: Some(offer.already_refunded.to_string()),
                confirmed: Some(false),
                ..about
            },
        ),
        // The MCP layer answers with the question instead; nothing to render.
        RefundResult::AwaitingPerson => ToolOutcome::error(
            "退款等待确认: a person has been asked to approve this refund; call again with their answer.",
            &not_confirmed(about),
        ),
    }
}

fn succeeded(
    about: RefundOutput,
    trade_no: Option<&str>,
    total_refunded: Option<String>,
    moved_now: bool,
) -> ToolOutcome {
    let trade_no = trade_no.unwrap_or_default();
    let result = if moved_now {
        "退款成功"
    } else {
        "重复请求退款幂等成功"
    };
    ToolOutcome::ok(
        format!("退款结果: {result}, 退款交易: {trade_no}"),
        &RefundOutput {
            refund_result: Some(
                if moved_now {
                    "REFUND_SUCCESS"
                } else {
                    "REFUND_ALREADY_DONE"
                }
                .into(),
            ),
            trade_no: Some(trade_no.to_string()),
            total_refunded,
            fund_change: Some(if moved_now { "Y" } else { "N" }.into()),
            confirmed: Some(true),
            ..about
        },
    )
}

fn refused(r: &RefundRequest, about: RefundOutput, refusal: &Refusal) -> ToolOutcome {
    let not_confirmed = RefundOutput {
        confirmed: Some(false),
        ..about
    };
    match refusal {
        Refusal::Guardrail(g) => ToolOutcome::refused(g, RefundOutput::default()),
        Refusal::Conflict(previous) => ToolOutcome::error(
            format!(
                "退款执行失败. 错误信息: outRequestNo {} was already used on order {} for a refund of {} (now asked: {}); a refund request number always means one refund. To retry that refund, repeat its amount; for another refund, use a new outRequestNo. Nothing was sent.",
                previous.out_request_no, previous.out_trade_no, previous.refund_amount, r.amount
            ),
            &RefundOutput {
                existing_refund: Some(ExistingRefund {
                    refund_amount: previous.refund_amount.to_string(),
                    state: previous.state.as_str().into(),
                }),
                ..not_confirmed
            }
            .with_error(ErrorOut::new(
                "conflict",
                "outRequestNo already used with a different amount",
            )),
        ),
        Refusal::LedgerUnreadable(e) => ToolOutcome::error(
            format!(
                "退款执行失败. 错误信息: the order ledger could not be read ({e}), so the refund's limits cannot be checked. Nothing was refunded; call again."
            ),
            &not_confirmed.with_error(ErrorOut::ledger(e)),
        ),
        Refusal::NotRecorded(e) => ToolOutcome::error(
            format!(
                "退款执行失败. 错误信息: the refund could not be recorded ({e}); nothing was sent. Call again."
            ),
            &not_confirmed.with_error(ErrorOut::ledger(e)),
        ),
        Refusal::TradeQueryFailed(e) => {
            // The refund itself was not sent: say so, whatever happened to the trade query.
            const NOT_SENT: &str = "Nothing was refunded (the refundable amount is checked with a signed trade query before a refund is sent); call again.";
            let text = match e {
                alipay_openapi::Error::Business(_) => {
                    format!("{} {NOT_SENT}", failure_text("退款执行失败", e, ""))
                }
                _ => failure_text("退款执行失败", e, NOT_SENT),
            };
            ToolOutcome::error(text, &not_confirmed.with_error(ErrorOut::gateway(e)))
        }
    }
}
