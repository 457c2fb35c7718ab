//! Reconciliation: a day's trade bill (Alipay's accounting truth) against the ledger. Pure: the
//! service loads the bill and the ledger's facts for the day and asks [`reconcile`] what agrees,
//! what does not, and which ledger states the bill proves (so they are settled with source
//! `bill`).

use std::collections::{HashMap, HashSet};

use alipay_openapi::bill::{BillRow, BillRowKind};
use serde::Serialize;

use super::refund::RefundState;

/// An order as the ledger has it, for reconciliation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerOrder {
    pub out_trade_no: String,
    pub total_fen: i64,
    /// The ledger knows it was paid.
    pub paid: bool,
    /// The ledger says it was paid on the bill's day (so the bill must have it).
    pub paid_on_day: bool,
    /// The ledger has it closed with nothing refunded: closed unpaid.
    pub closed_unpaid: bool,
}

/// A refund as the ledger has it, for reconciliation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRefund {
    pub out_trade_no: String,
    pub out_request_no: String,
    pub amount_fen: i64,
    pub state: RefundState,
    /// The ledger says it succeeded on the bill's day (so the bill must have it).
    pub on_day: bool,
}

/// The day's figures, from the bill's rows (fen).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// What the payments were for.
    pub gross_fen: i64,
    /// What was refunded (positive).
    pub refunds_fen: i64,
    /// Service fees charged, less fees returned with refunds (positive: paid to Alipay).
    pub fees_fen: i64,
    /// What the merchant keeps: gross − refunds − fees.
    pub net_fen: i64,
    pub payments: u64,
    pub refunds: u64,
    /// Rows of another business type (neither 交易 nor 退款), counted, not reconciled.
    pub other_rows: u64,
}

/// What kind of disagreement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DiscrepancyKind {
    /// A payment in the bill for an order the ledger does not have (made elsewhere, or lost).
    NotInLedger,
    /// Paid per the bill, not per the ledger (its notification never came): settled as paid.
    PaidNotRecorded,
    /// Paid per the bill, closed unpaid per the ledger: the buyer paid an order this server
    /// took as closed (they may be owed a refund, or the goods). For a person; nothing is changed.
    PaidButClosed,
    /// Paid on this day per the ledger, absent from the bill.
    MissingFromBill,
    /// The bill's payment is not the ledger's order amount.
    AmountMismatch,
    /// A refund in the bill the ledger does not have (made in Alipay's console, or elsewhere).
    UnknownRefund,
    /// A refund the ledger had not settled as made (pending or unknown) that the bill shows
    /// made: settled as succeeded.
    RefundNotSettled,
    /// A refund the ledger refused or never sent, which the bill shows made.
    RefundStateMismatch,
    /// The bill's refund is not the ledger's refund amount.
    RefundAmountMismatch,
    /// Succeeded on this day per the ledger, absent from the bill.
    RefundMissingFromBill,
}

impl DiscrepancyKind {
    pub const ALL: [Self; 10] = [
        Self::NotInLedger,
        Self::PaidNotRecorded,
        Self::PaidButClosed,
        Self::MissingFromBill,
        Self::AmountMismatch,
        Self::UnknownRefund,
        Self::RefundNotSettled,
        Self::RefundStateMismatch,
        Self::RefundAmountMismatch,
        Self::RefundMissingFromBill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotInLedger => "notInLedger",
            Self::PaidNotRecorded => "paidNotRecorded",
            Self::PaidButClosed => "paidButClosed",
            Self::MissingFromBill => "missingFromBill",
            Self::AmountMismatch => "amountMismatch",
            Self::UnknownRefund => "unknownRefund",
            Self::RefundNotSettled => "refundNotSettled",
            Self::RefundStateMismatch => "refundStateMismatch",
            Self::RefundAmountMismatch => "refundAmountMismatch",
            Self::RefundMissingFromBill => "refundMissingFromBill",
        }
    }
}

/// One way the bill and the ledger disagree, with the facts each kind has (the bill's amount and
/// line for what the bill shows, the ledger's amount or state for what the ledger holds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discrepancy {
    pub kind: DiscrepancyKind,
    pub out_trade_no: String,
    pub out_request_no: Option<String>,
    pub trade_no: Option<String>,
    pub bill_fen: Option<i64>,
    pub ledger_fen: Option<i64>,
    pub ledger_state: Option<RefundState>,
    /// The bill row's line in the detail file.
    pub line: Option<usize>,
}

impl Discrepancy {
    /// About a payment row of the bill.
    fn payment(kind: DiscrepancyKind, row: &BillRow) -> Self {
        Self {
            trade_no: Some(row.trade_no.clone()),
            ..Self::row(kind, row)
        }
    }

    /// About a refund row of the bill (its amount as refunded, positive).
    fn refund(kind: DiscrepancyKind, row: &BillRow, req: &str) -> Self {
        Self {
            out_request_no: Some(req.to_string()),
            bill_fen: Some(row.order_amount_fen.saturating_neg()),
            ..Self::row(kind, row)
        }
    }

    fn row(kind: DiscrepancyKind, row: &BillRow) -> Self {
        Self {
            bill_fen: Some(row.order_amount_fen),
            line: Some(row.line),
            ..Self::ledger_only(kind, &row.out_trade_no, None)
        }
    }

    /// About something the ledger has and the bill lacks.
    fn ledger_only(kind: DiscrepancyKind, out_trade_no: &str, ledger_fen: Option<i64>) -> Self {
        Self {
            kind,
            out_trade_no: out_trade_no.to_string(),
            out_request_no: None,
            trade_no: None,
            bill_fen: None,
            ledger_fen,
            ledger_state: None,
            line: None,
        }
    }
}

/// A ledger state the bill proves, to record with source `bill`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    Paid {
        out_trade_no: String,
        trade_no: String,
        /// The bill's 完成时间.
        paid_at: String,
    },
    Refunded {
        out_trade_no: String,
        out_request_no: String,
        /// The bill's 完成时间.
        finished_at: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub totals: Totals,
    pub discrepancies: Vec<Discrepancy>,
    pub settle: Vec<Settle>,
}

/// The day's totals from its rows.
pub fn totals(rows: &[BillRow]) -> Totals {
    let mut t = Totals::default();
    let mut received = 0i64;
    let mut fees = 0i64;
    for row in rows {
        match row.kind {
            BillRowKind::Payment => {
                t.payments += 1;
                t.gross_fen = t.gross_fen.saturating_add(row.order_amount_fen);
            }
            BillRowKind::Refund => {
                t.refunds += 1;
                t.refunds_fen = t.refunds_fen.saturating_sub(row.order_amount_fen);
            }
            _ => {
                t.other_rows += 1;
                continue;
            }
        }
        received = received.saturating_add(row.merchant_received_fen);
        fees = fees.saturating_add(row.fee_fen);
    }
    t.fees_fen = fees.saturating_neg();
    t.net_fen = received.saturating_add(fees);
    t
}

/// Compare the day's `rows` with the ledger's `orders` (every order the bill names, and every
/// order the ledger says was paid that day) and `refunds` (likewise).
pub fn reconcile(
    rows: &[BillRow],
    orders: &[LedgerOrder],
    refunds: &[LedgerRefund],
) -> Reconciliation {
    let orders: HashMap<&str, &LedgerOrder> = orders
        .iter()
        .map(|o| (o.out_trade_no.as_str(), o))
        .collect();
    let refunds_by_key: HashMap<(&str, &str), &LedgerRefund> = refunds
        .iter()
        .map(|r| ((r.out_trade_no.as_str(), r.out_request_no.as_str()), r))
        .collect();
    let mut out = Reconciliation {
        totals: totals(rows),
        ..Default::default()
    };
    let mut paid_in_bill: HashSet<&str> = HashSet::new();
    let mut refunded_in_bill: HashSet<(&str, &str)> = HashSet::new();
    for row in rows {
        let no = row.out_trade_no.as_str();
        match &row.kind {
            BillRowKind::Payment => {
                paid_in_bill.insert(no);
                payment(row, orders.get(no).copied(), &mut out);
            }
            BillRowKind::Refund => {
                let Some(req) = row.out_request_no.as_deref() else {
                    continue;
                };
                refunded_in_bill.insert((no, req));
                refund(row, req, refunds_by_key.get(&(no, req)).copied(), &mut out);
            }
            _ => {}
        }
    }
    let mut missing: Vec<&LedgerOrder> = orders
        .values()
        .filter(|o| o.paid_on_day && !paid_in_bill.contains(o.out_trade_no.as_str()))
        .copied()
        .collect();
    missing.sort_by(|a, b| a.out_trade_no.cmp(&b.out_trade_no));
    out.discrepancies.extend(missing.into_iter().map(|o| {
        Discrepancy::ledger_only(
            DiscrepancyKind::MissingFromBill,
            &o.out_trade_no,
            Some(o.total_fen),
        )
    }));
    let mut missing: Vec<&LedgerRefund> = refunds
        .iter()
        .filter(|r| {
            r.on_day
                && r.state == RefundState::Succeeded
                && !refunded_in_bill.contains(&(r.out_trade_no.as_str(), r.out_request_no.as_str()))
        })
        .collect();
    missing.sort_by(|a, b| {
        (&a.out_trade_no, &a.out_request_no).cmp(&(&b.out_trade_no, &b.out_request_no))
    });
    out.discrepancies
        .extend(missing.into_iter().map(|r| Discrepancy {
            out_request_no: Some(r.out_request_no.clone()),
            ..Discrepancy::ledger_only(
                DiscrepancyKind::RefundMissingFromBill,
                &r.out_trade_no,
                Some(r.amount_fen),
            )
        }));
    out
}

fn payment(row: &BillRow, order: Option<&LedgerOrder>, out: &mut Reconciliation) {
    use DiscrepancyKind::*;
    let Some(order) = order else {
        out.discrepancies
            .push(Discrepancy::payment(NotInLedger, row));
        return;
    };
    if order.total_fen != row.order_amount_fen {
        // A payment of another amount proves nothing about our order: reported, not settled.
        out.discrepancies.push(Discrepancy {
            ledger_fen: Some(order.total_fen),
            ..Discrepancy::row(AmountMismatch, row)
        });
        return;
    }
    if order.closed_unpaid {
        out.discrepancies
            .push(Discrepancy::payment(PaidButClosed, row));
        return;
    }
    if !order.paid {
        out.discrepancies
            .push(Discrepancy::payment(PaidNotRecorded, row));
        out.settle.push(Settle::Paid {
            out_trade_no: row.out_trade_no.clone(),
            trade_no: row.trade_no.clone(),
            paid_at: row.finished_at.clone(),
        });
    }
}

fn refund(row: &BillRow, req: &str, known: Option<&LedgerRefund>, out: &mut Reconciliation) {
    use DiscrepancyKind::*;
    let Some(known) = known else {
        out.discrepancies
            .push(Discrepancy::refund(UnknownRefund, row, req));
        return;
    };
    if known.amount_fen != row.order_amount_fen.saturating_neg() {
        out.discrepancies.push(Discrepancy {
            ledger_fen: Some(known.amount_fen),
            ..Discrepancy::refund(RefundAmountMismatch, row, req)
        });
        return;
    }
    match known.state {
        RefundState::Succeeded => {}
        RefundState::Pending | RefundState::Unknown => {
            out.discrepancies
                .push(Discrepancy::refund(RefundNotSettled, row, req));
            out.settle.push(Settle::Refunded {
                out_trade_no: row.out_trade_no.clone(),
                out_request_no: req.to_string(),
                finished_at: row.finished_at.clone(),
            });
        }
        // Refused, or never sent (awaiting a person): the bill says otherwise, and a person
        // must look; nothing is overwritten.
        state => out.discrepancies.push(Discrepancy {
            ledger_state: Some(state),
            ..Discrepancy::refund(RefundStateMismatch, row, req)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        kind: BillRowKind,
        no: &str,
        fen: i64,
        req: Option<&str>,
        fee: i64,
        line: usize,
    ) -> BillRow {
        BillRow {
            trade_no: format!("T{no}"),
            out_trade_no: no.into(),
            kind,
            title: "t".into(),
            created_at: "2026-11-30 10:00:00".into(),
            finished_at: "2026-11-30 10:01:00".into(),
            order_amount_fen: fen,
            merchant_received_fen: fen,
            out_request_no: req.map(str::to_string),
            fee_fen: fee,
            remark: String::new(),
            line,
        }
    }

    fn order(no: &str, fen: i64, paid: bool, paid_on_day: bool) -> LedgerOrder {
        LedgerOrder {
            out_trade_no: no.into(),
            total_fen: fen,
            paid,
            paid_on_day,
            closed_unpaid: false,
        }
    }

    fn refund_of(no: &str, req: &str, fen: i64, state: RefundState, on_day: bool) -> LedgerRefund {
        LedgerRefund {
            out_trade_no: no.into(),
            out_request_no: req.into(),
            amount_fen: fen,
            state,
            on_day,
        }
    }

    #[test]
    fn kind_names_are_what_serde_writes() {
        for k in DiscrepancyKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn totals_count_fees_and_returned_fees() {
        let rows = [
            row(BillRowKind::Payment, "A", 10_000, None, -60, 6),
            row(BillRowKind::Payment, "B", 2_000, None, -12, 7),
            row(BillRowKind::Refund, "A", -3_000, Some("R1"), 18, 8),
            row(BillRowKind::Other("冻结".into()), "C", 500, None, 0, 9),
        ];
        assert_eq!(
            totals(&rows),
            Totals {
                gross_fen: 12_000,
                refunds_fen: 3_000,
                fees_fen: 54,
                net_fen: 8_946,
                payments: 2,
                refunds: 1,
                other_rows: 1,
            }
        );
    }

    #[test]
    fn agreeing_books_have_no_discrepancy() {
        let rows = [
            row(BillRowKind::Payment, "A", 10_000, None, -60, 6),
            row(BillRowKind::Refund, "A", -3_000, Some("R1"), 18, 7),
        ];
        let r = reconcile(
            &rows,
            &[order("A", 10_000, true, true)],
            &[refund_of("A", "R1", 3_000, RefundState::Succeeded, true)],
        );
        assert_eq!(r.discrepancies, []);
        assert_eq!(r.settle, []);
    }

    #[test]
    fn every_disagreement_is_reported_and_proven_states_are_settled() {
        let rows = [
            row(BillRowKind::Payment, "LOST_NOTIFY", 500, None, -3, 6),
            row(BillRowKind::Payment, "NOT_OURS", 700, None, -4, 7),
            row(BillRowKind::Payment, "WRONG_AMOUNT", 900, None, -5, 8),
            row(BillRowKind::Payment, "CLOSED", 300, None, -2, 13),
            row(BillRowKind::Refund, "PAID", -100, Some("CONSOLE"), 1, 9),
            row(BillRowKind::Refund, "PAID", -200, Some("PENDING"), 1, 10),
            row(BillRowKind::Refund, "PAID", -300, Some("FAILED"), 2, 11),
            row(
                BillRowKind::Refund,
                "PAID",
                -400,
                Some("OTHER_AMOUNT"),
                2,
                12,
            ),
        ];
        let orders = [
            order("LOST_NOTIFY", 500, false, false),
            order("WRONG_AMOUNT", 1_000, true, true),
            LedgerOrder {
                closed_unpaid: true,
                ..order("CLOSED", 300, false, false)
            },
            order("PAID", 5_000, true, false),
            order("ABSENT", 800, true, true),
            // Paid another day: not expected in this bill.
            order("YESTERDAY", 800, true, false),
        ];
        let refunds = [
            refund_of("PAID", "PENDING", 200, RefundState::Unknown, true),
            refund_of("PAID", "FAILED", 300, RefundState::Failed, true),
            refund_of("PAID", "OTHER_AMOUNT", 450, RefundState::Succeeded, true),
            refund_of("PAID", "GONE", 50, RefundState::Succeeded, true),
            refund_of("PAID", "NOT_TODAY", 50, RefundState::Succeeded, false),
        ];
        let r = reconcile(&rows, &orders, &refunds);
        let kinds: Vec<String> = r
            .discrepancies
            .iter()
            .map(|d| {
                let v = serde_json::to_value(d).unwrap();
                format!(
                    "{} {} {}",
                    v["kind"].as_str().unwrap(),
                    v["outTradeNo"].as_str().unwrap(),
                    v["outRequestNo"].as_str().unwrap_or("-")
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "paidNotRecorded LOST_NOTIFY -",
                "notInLedger NOT_OURS -",
                "amountMismatch WRONG_AMOUNT -",
                "paidButClosed CLOSED -",
                "unknownRefund PAID CONSOLE",
                "refundNotSettled PAID PENDING",
                "refundStateMismatch PAID FAILED",
                "refundAmountMismatch PAID OTHER_AMOUNT",
                "missingFromBill ABSENT -",
                "refundMissingFromBill PAID GONE",
            ]
        );
        assert_eq!(
            r.settle,
            [
                Settle::Paid {
                    out_trade_no: "LOST_NOTIFY".into(),
                    trade_no: "TLOST_NOTIFY".into(),
                    paid_at: "2026-11-30 10:01:00".into(),
                },
                Settle::Refunded {
                    out_trade_no: "PAID".into(),
                    out_request_no: "PENDING".into(),
                    finished_at: "2026-11-30 10:01:00".into(),
                },
            ]
        );
    }
}
