//! `alipay.trade.fastpay.refund.query`: whether a refund was made. A verified success settles a
//! refund the ledger holds as unsettled.

use alipay_openapi::{Error, RefundQuery, RefundQueryResponse};

use crate::domain::{OutRequestNo, OutTradeNo, RefundState};
use crate::ledger::RefundOutcome;
use crate::service::Services;

/// A signed refund query, nothing recorded.
pub async fn ask(
    svc: &Services,
    out_trade_no: &OutTradeNo,
    out_request_no: &OutRequestNo,
) -> Result<RefundQueryResponse, Error> {
    svc.client
        .execute(&RefundQuery {
            out_trade_no: out_trade_no.to_string(),
            out_request_no: out_request_no.to_string(),
            query_options: None,
        })
        .await
}

/// Query a refund for the caller, recording a confirmed success.
pub async fn query(
    svc: &Services,
    out_trade_no: &OutTradeNo,
    out_request_no: &OutRequestNo,
) -> Result<RefundQueryResponse, Error> {
    let result = ask(svc, out_trade_no, out_request_no).await;
    tracing::info!(out_trade_no = %out_trade_no, out_request_no = %out_request_no, ok = result.is_ok(), "refund queried");
    if let Ok(q) = &result
        && q.refund_succeeded()
    {
        let settled = RefundOutcome {
            trade_no: q.trade_no.clone(),
            ..RefundOutcome::state(RefundState::Succeeded)
        };
        if let Err(e) = svc
            .ledger
            .finish_refund(out_trade_no, out_request_no, &settled, None)
            .await
        {
            tracing::error!(out_trade_no = %out_trade_no, out_request_no = %out_request_no, error = %e, "cannot record the queried refund");
        }
    }
    result
}
