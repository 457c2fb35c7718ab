//! `reconcile-alipay-bill`: a past day's trade bill (Alipay's accounting truth) against the
//! ledger: the day's totals with fees, and every discrepancy. Read-only towards Alipay; in the
//! ledger it records only what the bill proves (paid, refunded), with source `bill`.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::bill::{Discrepancy, DiscrepancyKind, Settle, Totals};
use crate::service::bills::{self, BillFailure, BillReport};
use crate::tools::args::{ArgError, Field, FieldKind, RawArgs};
use crate::tools::render::{ErrorOut, ToolOutcome, WithError, failure_text};
use crate::tools::{CallContext, CallFuture, Hints, ToolDef, ToolKind, ToolReply, boxed};

const FIELDS: &[Field] = &[Field::required(
    "date",
    FieldKind::Day,
    "对账日期（北京时间，yyyy-MM-dd），必须早于今天：账单 T+1 生成。The Beijing day to reconcile; bills exist from the next day.",
)];

pub const DEF: ToolDef = ToolDef {
    kind: ToolKind::BillRecon,
    name: "reconcile-alipay-bill",
    select_key: "billRecon",
    title: "Reconcile a day's Alipay bill",
    description: "下载某一天的支付宝交易账单，与本地账本逐笔核对：返回收款、退款、服务费和净额合计，以及每一处不一致（账单有而账本没有的收款、账本已付而账单没有、金额不符、账本不知道的退款（如在支付宝后台操作）、账单缺少的退款）。账单证明的状态（已支付、已退款）记入账本。Download a past day's Alipay trade bill and check it against the ledger.",
    hints: Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: true,
    },
    fields: FIELDS,
    validate: |raw| parse(raw).map(drop),
    output_schema: crate::tools::output_schema_of::<BillOutput>,
    call: call_tool,
};

pub fn parse(raw: &Map<String, Value>) -> Result<String, ArgError> {
    let args = RawArgs::new(raw, FIELDS)?;
    args.day("date")?.ok_or_else(|| ArgError {
        field: "date".into(),
        message: "is required".into(),
    })
}

/// Yuan with two decimals and a sign when negative.
fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotalsOut {
    /// Yuan: what the day's payments were for.
    pub gross_amount: String,
    /// Yuan: what was refunded.
    pub refund_amount: String,
    /// Yuan: service fees (服务费) charged less those returned with refunds.
    pub fee_amount: String,
    /// Yuan: gross − refunds − fees.
    pub net_amount: String,
    pub payment_count: u64,
    pub refund_count: u64,
    /// Rows of other business types, not reconciled.
    pub other_rows: u64,
}

impl From<&Totals> for TotalsOut {
    fn from(t: &Totals) -> Self {
        Self {
            gross_amount: yuan(t.gross_fen),
            refund_amount: yuan(t.refunds_fen),
            fee_amount: yuan(t.fees_fen),
            net_amount: yuan(t.net_fen),
            payment_count: t.payments,
            refund_count: t.refunds,
            other_rows: t.other_rows,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscrepancyOut {
    /// `notInLedger`, `paidNotRecorded`, `paidButClosed`, `missingFromBill`, `amountMismatch`, `unknownRefund`,
    /// `refundNotSettled`, `refundStateMismatch`, `refundAmountMismatch`,
    /// `refundMissingFromBill`.
    pub kind: String,
    pub out_trade_no: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_request_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<String>,
    /// Yuan, as the bill has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bill_amount: Option<String>,
    /// Yuan, as the ledger has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_state: Option<String>,
    /// The row's line in the bill's detail file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The ledger now records what the bill proved.
    pub settled: bool,
    /// In words.
    pub detail: String,
}

/// The discrepancy in words; `settled`: the ledger now records what the bill proved.
fn detail(d: &Discrepancy, settled: bool) -> String {
    use DiscrepancyKind::*;
    let no = &d.out_trade_no;
    let req = d.out_request_no.as_deref().unwrap_or("");
    let bill = yuan(d.bill_fen.unwrap_or(0));
    let ledger = yuan(d.ledger_fen.unwrap_or(0));
    let done = |what: &'static str| if settled { what } else { "" };
    match d.kind {
        NotInLedger => {
            format!("账单有收款 ¥{bill}，本地账本没有订单 {no}（在别处创建，或记录丢失）")
        }
        PaidNotRecorded => format!(
            "订单 {no} 已支付 ¥{bill}，本地账本未记录（异步通知可能丢失）{}",
            done("——已按账单记为已支付")
        ),
        PaidButClosed => format!(
            "账单显示订单 {no} 已支付 ¥{bill}，本地账本记为已关闭未支付：买家可能需要退款或发货，请人工处理"
        ),
        MissingFromBill => {
            format!("本地账本记录订单 {no} 当天已支付 ¥{ledger}，账单中没有这笔收款")
        }
        AmountMismatch => format!("订单 {no} 金额不符：账单 ¥{bill}，账本 ¥{ledger}"),
        UnknownRefund => format!(
            "账单有订单 {no} 的退款 {req} ¥{bill}，本地账本不知道（可能在支付宝商家后台操作）"
        ),
        RefundNotSettled => format!(
            "订单 {no} 的退款 {req} ¥{bill} 已完成，本地账本尚未确认{}",
            done("——已按账单记为退款成功")
        ),
        RefundStateMismatch => format!(
            "账单显示订单 {no} 的退款 {req} ¥{bill} 已完成，账本记为 {}：请人工核对",
            d.ledger_state.map_or("?", |s| s.as_str())
        ),
        RefundAmountMismatch => {
            format!("订单 {no} 的退款 {req} 金额不符：账单 ¥{bill}，账本 ¥{ledger}")
        }
        RefundMissingFromBill => {
            format!("本地账本记录订单 {no} 的退款 {req} ¥{ledger} 当天成功，账单中没有")
        }
    }
}

fn discrepancy(d: &Discrepancy, settled: &[Settle]) -> DiscrepancyOut {
    // Only the two kinds the bill settles can have been settled.
    let settles = matches!(
        d.kind,
        DiscrepancyKind::PaidNotRecorded | DiscrepancyKind::RefundNotSettled
    );
    let was_settled = settles
        && settled.iter().any(|s| match s {
            Settle::Paid { out_trade_no, .. } => {
                d.out_request_no.is_none() && *out_trade_no == d.out_trade_no
            }
            Settle::Refunded {
                out_trade_no,
                out_request_no,
                ..
            } => {
                *out_trade_no == d.out_trade_no
                    && d.out_request_no.as_deref() == Some(out_request_no.as_str())
            }
        });
    DiscrepancyOut {
        kind: d.kind.as_str().into(),
        out_trade_no: d.out_trade_no.clone(),
        out_request_no: d.out_request_no.clone(),
        trade_no: d.trade_no.clone(),
        bill_amount: d.bill_fen.map(yuan),
        ledger_amount: d.ledger_fen.map(yuan),
        ledger_state: d.ledger_state.map(|s| s.as_str().into()),
        line: d.line,
        settled: was_settled,
        detail: detail(d, was_settled),
    }
}

/// What a reconciliation answers.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// `trade` (收单业务账单).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bill_type: Option<String>,
    /// The merchant account the bill is for (`2088…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Alipay says the day had no business.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totals: Option<TotalsOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discrepancy_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discrepancies: Option<Vec<DiscrepancyOut>>,
    /// Whether the bill's own summary file agrees with its rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary_agrees: Option<bool>,
    /// What the bill proved that the ledger could not record (the ledger failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unrecorded: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut>,
}

crate::tools::render::with_error_field!(BillOutput);

impl BillOutput {
    pub fn of(report: &BillReport) -> Self {
        Self {
            date: Some(report.date.clone()),
            bill_type: Some("trade".into()),
            account: report.account.clone(),
            empty: Some(report.empty),
            totals: Some(TotalsOut::from(&report.totals)),
            discrepancy_count: Some(report.discrepancies.len()),
            discrepancies: Some(
                report
                    .discrepancies
                    .iter()
                    .map(|d| discrepancy(d, &report.settled))
                    .collect(),
            ),
            summary_agrees: report.summary_agrees,
            unrecorded: (!report.unrecorded.is_empty()).then(|| report.unrecorded.clone()),
            error: None,
        }
    }
}

/// The report in words, the way the other tools answer.
pub fn text(report: &BillReport, out: &BillOutput) -> String {
    let t = &report.totals;
    let mut s = format!("支付宝账单对账 {}", report.date);
    if let Some(account) = &report.account {
        s.push_str(&format!("（账号 {account}）"));
    }
    if report.empty {
        s.push_str("：当天没有交易。");
    } else {
        s.push_str(&format!(
            "：收款 {} 笔 ¥{}，退款 {} 笔 ¥{}，服务费 ¥{}，净额 ¥{}。",
            t.payments,
            yuan(t.gross_fen),
            t.refunds,
            yuan(t.refunds_fen),
            yuan(t.fees_fen),
            yuan(t.net_fen)
        ));
    }
    let list = out.discrepancies.as_deref().unwrap_or_default();
    if list.is_empty() {
        s.push_str("\n账单与本地账本一致。");
    } else {
        s.push_str(&format!("\n发现 {} 处不一致：", list.len()));
        for (i, d) in list.iter().enumerate() {
            s.push_str(&format!("\n{}. {}", i + 1, d.detail));
        }
    }
    if report.summary_agrees == Some(false) {
        s.push_str("\n注意：账单的汇总文件与明细不一致。");
    }
    for u in &report.unrecorded {
        s.push_str(&format!("\n未能记入账本：{u}"));
    }
    s
}

pub fn render(date: &str, result: &Result<BillReport, BillFailure>) -> ToolOutcome {
    let about = BillOutput {
        date: Some(date.to_string()),
        bill_type: Some("trade".into()),
        ..Default::default()
    };
    match result {
        Ok(report) => {
            let out = BillOutput::of(report);
            ToolOutcome::ok(text(report, &out), &out)
        }
        Err(BillFailure::Gateway(e)) => ToolOutcome::error(
            failure_text("账单查询失败", e, "Ask again; nothing was changed."),
            &about.with_error(ErrorOut::gateway(e)),
        ),
        Err(failure) => {
            let kind = match failure {
                BillFailure::NotYet { .. } => "not_yet",
                BillFailure::NoBill(_) => "no_bill",
                BillFailure::Ledger(_) => "ledger",
                BillFailure::Parse(_) => "bad_bill",
                _ => "download",
            };
            ToolOutcome::error(
                format!("账单对账失败: {failure}"),
                &about.with_error(ErrorOut::new(kind, failure.to_string())),
            )
        }
    }
}

fn call_tool<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(async move {
        let date = match parse(raw) {
            Ok(d) => d,
            Err(e) => {
                return ToolReply::Done(ToolOutcome::bad_argument(
                    DEF.name,
                    &e,
                    BillOutput::default(),
                ));
            }
        };
        let result = bills::reconcile_day(ctx.services, &date, ctx.progress).await;
        ToolReply::Done(render(&date, &result))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_has_two_decimals_and_a_sign() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(1_230), "12.30");
        assert_eq!(yuan(-6), "-0.06");
        assert_eq!(yuan(i64::MIN), "-92233720368547758.08");
    }
}
