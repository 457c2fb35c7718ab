//! `get-alipay-checkout-status` (app-only): what the checkout view polls. It is
//! `query-alipay-payment` for orders in this server's ledger and nothing more: the same signed
//! `alipay.trade.query`, the same answer and output, read-only. Hosts hide it from the model
//! (`_meta.ui.visibility: ["app"]`); if one did not, the model would gain nothing it lacks.

use serde_json::{Map, Value};

use crate::domain::OutTradeNo;
use crate::ledger::LedgerError;
use crate::service::orders;
use crate::tools::query::{self, QueryOutput};
use crate::tools::render::{ErrorOut, ToolOutcome, WithError};
use crate::tools::{CallContext, CallFuture, ToolDef, ToolKind, ToolReply, boxed};

pub const DEF: ToolDef = ToolDef {
    kind: ToolKind::CheckoutStatus,
    name: "get-alipay-checkout-status",
    select_key: "checkoutStatus",
    title: "Checkout card: the order's payment status",
    description: "App-only: the checkout card polls this for the live status of an order this server created (what query-alipay-payment answers).",
    hints: query::DEF.hints,
    fields: query::DEF.fields,
    validate: query::DEF.validate,
    output_schema: query::DEF.output_schema,
    call: call_tool,
};

fn call_tool<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(async move {
        let no = match query::parse(raw) {
            Ok(no) => no,
            Err(e) => {
                return ToolReply::Done(ToolOutcome::bad_argument(
                    DEF.name,
                    &e,
                    QueryOutput::default(),
                ));
            }
        };
        match ctx.services.ledger.order(&no).await {
            Ok(Some(_)) => {}
            Ok(None) => return ToolReply::Done(not_ours(&no)),
            Err(e) => return ToolReply::Done(unreadable(&no, &e)),
        }
        ToolReply::Done(query::render(&no, &orders::query(ctx.services, &no).await))
    })
}

fn about(no: &OutTradeNo) -> QueryOutput {
    QueryOutput {
        out_trade_no: Some(no.to_string()),
        ..QueryOutput::default()
    }
}

/// The order is not in this server's ledger: the card shows only this server's orders.
pub fn not_ours(no: &OutTradeNo) -> ToolOutcome {
    ToolOutcome::error(
        format!(
            "No order {no} in this server's ledger; the checkout card shows only orders this server created."
        ),
        &about(no).with_error(ErrorOut::new("not_found", "no such order in the ledger")),
    )
}

pub fn unreadable(no: &OutTradeNo, e: &LedgerError) -> ToolOutcome {
    ToolOutcome::error(
        format!("The order ledger could not be read ({e}); try again."),
        &about(no).with_error(ErrorOut::ledger(e)),
    )
}
