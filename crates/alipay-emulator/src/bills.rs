//! Bills from the store, as the text of Alipay's CSV files (encoding and zipping are
//! `bill_zip.rs`'s job): the trade bill (`trade`: 业务明细 and 业务明细(汇总)) and the account bill
//! (`signcustomer`: 账务明细), for one app and one Beijing day or month.
//!
//! What goes in: one payment per paid trade, dated at its `gmt_payment`, and one refund per
//! refund (every refund the emulator records succeeded), dated at its refund time. Each payment
//! is charged the service fee ([`fee_fen`]); a refund returns its share of it. The layout is
//! Alipay's: `#` header lines, the header row, the rows, `#` footer lines, CRLF line ends (the
//! files are Windows exports), id cells ending in a tab (which keeps Excel from turning them into
//! numbers), other cells CSV-quoted when they need it.

use chrono::{DateTime, FixedOffset, NaiveDate};

use crate::bill_query::{BillKind, BillPeriod, BillQuery};
use crate::config::AppConfig;
use crate::model::{Order, Refund, Store, Trade};

/// The service fee in thousandths of the payment: 0.6%, Alipay's standard rate for online
/// payments (电脑网站支付, 手机网站支付, 当面付).
pub(crate) const FEE_PER_MILLE: i64 = 6;

/// The fee on an amount, rounded half up to the fen.
pub(crate) fn fee_fen(amount_fen: i64) -> i64 {
    (amount_fen.max(0).saturating_mul(FEE_PER_MILLE) + 500) / 1000
}

/// One CSV file of a bill, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BillFile {
    pub name: String,
    pub text: String,
}

/// A bill: its files in the zip's order, and whether the period had no business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bill {
    pub files: Vec<BillFile>,
    pub empty: bool,
    /// The zip's own name (Content-Disposition), `<account>_<stamp>.csv.zip`.
    pub download_name: String,
}

/// The bill of `query` for `app` from the store, exported at `now`.
pub(crate) fn generate(
    store: &Store,
    app: &AppConfig,
    query: BillQuery,
    now: &DateTime<FixedOffset>,
) -> Bill {
    let all = movements(store, &app.app_id);
    let head = Head {
        account: &app.seller_id,
        period: query.period,
        exported_at: now.format("%Y年%m月%d日 %H:%M:%S").to_string(),
    };
    let stamp = query.period.stamp();
    let name = |what: &str| format!("{}_{stamp}_{what}.csv", app.seller_id);
    let (files, empty) = match query.kind {
        BillKind::Trade => {
            let rows: Vec<&Movement<'_>> =
                all.iter().filter(|m| query.period.contains(m.at)).collect();
            // The summary first, as in Alipay's zips.
            let files = vec![
                BillFile {
                    name: name("业务明细(汇总)"),
                    text: trade_summary(&head, &rows),
                },
                BillFile {
                    name: name("业务明细"),
                    text: trade_detail(&head, &rows),
                },
            ];
            (files, rows.is_empty())
        }
        BillKind::SignCustomer => {
            let entries: Vec<Entry<'_>> = account_entries(&all)
                .into_iter()
                .filter(|e| query.period.contains(e.movement.at))
                .collect();
            let files = vec![BillFile {
                name: name("账务明细"),
                text: account_detail(&head, &entries),
            }];
            (files, entries.is_empty())
        }
    };
    Bill {
        files,
        empty,
        download_name: format!("{}_{stamp}.csv.zip", app.seller_id),
    }
}

/// A payment or a refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Payment,
    Refund,
}

/// One payment or refund of a trade, with its fee.
struct Movement<'a> {
    kind: Kind,
    order: &'a Order,
    trade: &'a Trade,
    refund: Option<&'a Refund>,
    /// When it happened (完成时间), `yyyy-MM-dd HH:mm:ss`.
    at: &'a str,
    /// Paid (positive) or refunded (negative).
    amount_fen: i64,
    /// Charged (negative) or returned (positive).
    fee_fen: i64,
}

/// Every payment and refund of the app, oldest first (a trade's payment before its refunds).
///
/// A refund returns 0.6% of its amount, rounded half up, but never more than is left of the
/// payment's fee: rounding each partial refund up could otherwise return more than was charged.
fn movements<'a>(store: &'a Store, app_id: &str) -> Vec<Movement<'a>> {
    let mut all = Vec::new();
    for order in store.orders_of(app_id) {
        let Some(trade) = &order.trade else {
            continue;
        };
        let Some(paid_at) = trade.gmt_payment.as_deref() else {
            continue;
        };
        let charged = fee_fen(order.total_fen);
        all.push(Movement {
            kind: Kind::Payment,
            order,
            trade,
            refund: None,
            at: paid_at,
            amount_fen: order.total_fen,
            fee_fen: -charged,
        });
        let mut returned = 0;
        for refund in &trade.refunds {
            let back = fee_fen(refund.amount_fen).min(charged - returned);
            returned += back;
            all.push(Movement {
                kind: Kind::Refund,
                order,
                trade,
                refund: Some(refund),
                at: refund.gmt_refund_pay(),
                amount_fen: -refund.amount_fen,
                fee_fen: back,
            });
        }
    }
    // Stable: within one second and one trade, the payment stays before its refunds.
    all.sort_by(|a, b| {
        a.at.cmp(b.at)
            .then_with(|| a.trade.trade_no.cmp(&b.trade.trade_no))
    });
    all
}

/// What every file's header says.
struct Head<'a> {
    account: &'a str,
    period: BillPeriod,
    /// `yyyy年MM月dd日 HH:mm:ss`.
    exported_at: String,
}

impl Head<'_> {
    /// `#<title>`, `#账号：[…]`, `#起始日期：[…]   终止日期：[…]` (the end is the day after).
    fn write(&self, csv: &mut Csv, title: &str) {
        csv.line(&format!("#{title}"));
        csv.line(&format!("#账号：[{}]", self.account));
        csv.line(&format!(
            "#起始日期：[{}]   终止日期：[{}]",
            midnight(self.period.first_day()),
            midnight(self.period.end_day())
        ));
    }

    fn exported(&self, csv: &mut Csv) {
        csv.line(&format!("#导出时间：[{}]", self.exported_at));
    }
}

fn midnight(day: NaiveDate) -> String {
    day.format("%Y年%m月%d日 00:00:00").to_string()
}

/// The 25 columns of 业务明细 (`alipay_openapi::bill::DETAIL_HEADER`).
const DETAIL_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

/// The 12 columns of 业务明细(汇总) (`alipay_openapi::bill::SUMMARY_HEADER`).
const SUMMARY_HEADER: &str = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）";

/// The 12 columns of 账务明细.
const ACCOUNT_HEADER: &str = "账务流水号,业务流水号,商户订单号,商品名称,发生时间,对方账号,收入金额（+元）,支出金额（-元）,账户余额（元）,交易渠道,业务类型,备注";

const ZERO: &str = "0.00";

/// 业务明细: one row per payment (交易) and refund (退款, amounts negative).
fn trade_detail(head: &Head<'_>, rows: &[&Movement<'_>]) -> String {
    let mut csv = Csv::default();
    head.write(&mut csv, "支付宝业务明细查询");
    csv.line("#-----------------------------------------业务明细列表----------------------------------------");
    csv.line(DETAIL_HEADER);
    for m in rows {
        let (kind, request_no) = match (m.kind, m.refund) {
            (Kind::Refund, Some(r)) => ("退款", id(&r.out_request_no)),
            _ => ("交易", String::new()),
        };
        let amount = signed_yuan(m.amount_fen);
        csv.row(&[
            id(&m.trade.trade_no),
            id(&m.order.out_trade_no),
            kind.to_string(),
            text(&m.order.subject),
            m.trade.gmt_create.clone(),
            m.at.to_string(),
            String::new(), // 门店编号
            String::new(), // 门店名称
            String::new(), // 操作员
            String::new(), // 终端号
            text(&m.trade.buyer_logon_id),
            amount.clone(), // 订单金额
            amount,         // 商家实收: no discounts in the emulator
            ZERO.into(),    // 支付宝红包
            ZERO.into(),    // 集分宝
            ZERO.into(),    // 支付宝优惠
            ZERO.into(),    // 商家优惠
            ZERO.into(),    // 券核销金额
            String::new(),  // 券名称
            ZERO.into(),    // 商家红包消费金额
            ZERO.into(),    // 卡消费金额
            request_no,
            signed_yuan(m.fee_fen),
            ZERO.into(), // 分润
            String::new(),
        ]);
    }
    let totals = Totals::of(rows);
    csv.line("#-----------------------------------------业务明细列表结束------------------------------------");
    csv.line(&format!(
        "#交易合计：{}笔，商家实收共{}元，商家优惠共0.00元",
        totals.payments,
        signed_yuan(totals.paid_fen)
    ));
    csv.line(&format!(
        "#退款合计：{}笔，商家实收退款共{}元，商家优惠退款共0.00元",
        totals.refunds,
        signed_yuan(totals.refunded_fen)
    ));
    head.exported(&mut csv);
    csv.0
}

/// 业务明细(汇总): the one store (no 门店编号) when there was business, and 合计.
fn trade_summary(head: &Head<'_>, rows: &[&Movement<'_>]) -> String {
    let mut csv = Csv::default();
    head.write(&mut csv, "支付宝业务汇总查询");
    csv.line("#-----------------------------------------业务汇总列表----------------------------------------");
    csv.line(SUMMARY_HEADER);
    let t = Totals::of(rows);
    let net = t.paid_fen + t.refunded_fen;
    let cells = |store: &str| {
        vec![
            store.to_string(),
            String::new(),
            t.payments.to_string(),
            t.refunds.to_string(),
            signed_yuan(net),
            signed_yuan(net),
            ZERO.into(),
            ZERO.into(),
            ZERO.into(),
            signed_yuan(t.fee_fen),
            ZERO.into(),
            signed_yuan(net + t.fee_fen),
        ]
    };
    if !rows.is_empty() {
        csv.row(&cells(""));
    }
    csv.row(&cells("合计"));
    csv.line("#----------------------------------------业务汇总列表结束-------------------------------------");
    head.exported(&mut csv);
    csv.0
}

/// The sums of a trade bill's rows.
#[derive(Default)]
struct Totals {
    payments: usize,
    refunds: usize,
    /// Payments' 商家实收 (positive).
    paid_fen: i64,
    /// Refunds' 商家实收 (negative).
    refunded_fen: i64,
    /// 服务费: charged minus returned (negative).
    fee_fen: i64,
}

impl Totals {
    fn of(rows: &[&Movement<'_>]) -> Self {
        let mut t = Self::default();
        for m in rows {
            match m.kind {
                Kind::Payment => {
                    t.payments += 1;
                    t.paid_fen += m.amount_fen;
                }
                Kind::Refund => {
                    t.refunds += 1;
                    t.refunded_fen += m.amount_fen;
                }
            }
            t.fee_fen += m.fee_fen;
        }
        t
    }
}

/// One line of the account bill: money into or out of the merchant's balance.
struct Entry<'a> {
    movement: &'a Movement<'a>,
    /// 业务类型.
    what: &'static str,
    /// In (positive) or out (negative).
    fen: i64,
    /// The balance after it.
    balance_fen: i64,
    /// Its place among all the app's entries, for 账务流水号.
    ordinal: usize,
}

/// Every balance change of the app, oldest first, with the balance after each (the account
/// starts empty): a payment comes in (在线支付) and its fee goes out (收费); a refund goes out
/// (交易退款) and its share of the fee comes back (收费退回). Zero fees make no line.
fn account_entries<'a>(all: &'a [Movement<'a>]) -> Vec<Entry<'a>> {
    let mut entries = Vec::new();
    let mut balance = 0;
    for movement in all {
        let parts = match movement.kind {
            Kind::Payment => [
                ("在线支付", movement.amount_fen),
                ("收费", movement.fee_fen),
            ],
            Kind::Refund => [
                ("交易退款", movement.amount_fen),
                ("收费退回", movement.fee_fen),
            ],
        };
        for (what, fen) in parts {
            if fen == 0 {
                continue;
            }
            balance += fen;
            entries.push(Entry {
                movement,
                what,
                fen,
                balance_fen: balance,
                ordinal: entries.len() + 1,
            });
        }
    }
    entries
}

/// 账务明细: one row per balance change; refunds carry their `out_request_no` in 备注.
fn account_detail(head: &Head<'_>, entries: &[Entry<'_>]) -> String {
    let mut csv = Csv::default();
    head.write(&mut csv, "支付宝账务明细查询");
    csv.line("#-----------------------------------------账务明细列表----------------------------------------");
    csv.line(ACCOUNT_HEADER);
    let (mut income, mut income_fen, mut expense, mut expense_fen) = (0, 0, 0, 0);
    for e in entries {
        let m = e.movement;
        let (into, out) = if e.fen > 0 {
            income += 1;
            income_fen += e.fen;
            (signed_yuan(e.fen), ZERO.to_string())
        } else {
            expense += 1;
            expense_fen += e.fen;
            (ZERO.to_string(), signed_yuan(e.fen))
        };
        let journal = format!(
            "{}{:010}",
            m.at.get(..10).unwrap_or("").replace('-', ""),
            e.ordinal
        );
        csv.row(&[
            id(&journal),
            id(&m.trade.trade_no),
            id(&m.order.out_trade_no),
            text(&format!("{}\t", m.order.subject)),
            m.at.to_string(),
            text(&format!("{}\t", m.trade.buyer_logon_id)),
            into,
            out,
            signed_yuan(e.balance_fen),
            "支付宝".into(),
            e.what.into(),
            m.refund
                .map(|r| text(&r.out_request_no))
                .unwrap_or_default(),
        ]);
    }
    csv.line("#----------------------------------------账务明细列表结束-------------------------------------");
    csv.line(&format!(
        "#支出合计：{expense}笔，共{}元",
        signed_yuan(expense_fen)
    ));
    csv.line(&format!(
        "#收入合计：{income}笔，共{}元",
        signed_yuan(income_fen)
    ));
    head.exported(&mut csv);
    csv.0
}

/// CRLF-terminated lines.
#[derive(Default)]
struct Csv(String);

impl Csv {
    fn line(&mut self, line: &str) {
        self.0.push_str(line);
        self.0.push_str("\r\n");
    }

    fn row(&mut self, cells: &[String]) {
        self.line(&cells.join(","));
    }
}

/// An id cell: the id and a tab, as Alipay writes them.
fn id(value: &str) -> String {
    text(&format!("{value}\t"))
}

/// A text cell, quoted (quotes doubled) when it holds a comma, a quote or a line break.
fn text(value: &str) -> String {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// Yuan with two decimals and a minus sign when negative (never `-0.00`).
fn signed_yuan(fen: i64) -> String {
    let abs = fen.unsigned_abs();
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Product;
    use alipay_openapi::SignType;
    use alipay_openapi::TradeStatus;
    use alipay_openapi::time::parse_timestamp;

    fn app() -> AppConfig {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/alipay-vectors/keys/app-public-spki.b64"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let key = alipay_openapi::PublicKey::load("app public", &text).unwrap();
        AppConfig::new("2021000000000001", key)
    }

    fn order(
        no: &str,
        fen: i64,
        subject: &str,
        paid: Option<&str>,
        refunds: &[(&str, i64, &str)],
    ) -> Order {
        Order {
            app_id: "2021000000000001".into(),
            out_trade_no: no.into(),
            product: Product::Wap,
            total_fen: fen,
            subject: subject.into(),
            body: None,
            passback_params: None,
            notify_url: None,
            return_url: None,
            sign_type: SignType::Rsa2,
            token: format!("tok_{no}"),
            created_at: "2026-11-25 09:00:00".into(),
            expire_at: None,
            agent: None,
            trade: Some(Trade {
                trade_no: format!("2026112522001{no}"),
                status: if paid.is_some() {
                    TradeStatus::TradeSuccess
                } else {
                    TradeStatus::WaitBuyerPay
                },
                buyer_id: "2088000000000001".into(),
                buyer_logon_id: "abc***@sandbox.com".into(),
                gmt_create: "2026-11-25 09:00:00".into(),
                gmt_payment: paid.map(str::to_string),
                gmt_close: None,
                refunds: refunds
                    .iter()
                    .map(|(no, fen, at)| Refund {
                        out_request_no: (*no).into(),
                        amount_fen: *fen,
                        reason: None,
                        gmt_refund: (*at).into(),
                    })
                    .collect(),
            }),
        }
    }

    fn store(orders: Vec<Order>) -> Store {
        let mut store = Store::default();
        for o in orders {
            store.put_order(o);
        }
        store
    }

    fn day(text: &str) -> BillQuery {
        BillQuery {
            kind: BillKind::Trade,
            period: BillPeriod::parse(text).unwrap(),
        }
    }

    #[test]
    fn fees_round_half_up_and_refunds_never_return_more_than_was_charged() {
        assert_eq!(fee_fen(8880), 53); // 53.28
        assert_eq!(fee_fen(1000), 6);
        assert_eq!(fee_fen(250), 2); // 1.5 → 2
        assert_eq!(fee_fen(83), 0); // 0.498
        assert_eq!(fee_fen(84), 1); // 0.504
        assert_eq!(fee_fen(0), 0);
        // 2.52 charged 0.02 (1.512 fen); three refunds of 0.84 would each return 0.01.
        let s = store(vec![order(
            "1",
            252,
            "s",
            Some("2026-11-25 10:00:00"),
            &[
                ("R1", 84, "2026-11-25 10:01:00.000"),
                ("R2", 84, "2026-11-25 10:02:00.000"),
                ("R3", 84, "2026-11-25 10:03:00.000"),
            ],
        )]);
        let fees: Vec<i64> = movements(&s, "2021000000000001")
            .iter()
            .map(|m| m.fee_fen)
            .collect();
        assert_eq!(fees, [-2, 1, 1, 0]);
    }

    #[test]
    fn the_trade_bill_has_alipays_layout() {
        let s = store(vec![
            order(
                "1",
                8880,
                "诗, \"夏日\"",
                Some("2026-11-25 10:00:00"),
                &[("R1", 1000, "2026-11-25 11:00:00.123")],
            ),
            order("2", 1, "书", Some("2026-11-26 00:00:00"), &[]),
            order("3", 500, "未付", None, &[]),
        ]);
        let now = parse_timestamp("2026-11-27 08:00:01").unwrap();
        let bill = generate(&s, &app(), day("2026-11-25"), &now);
        assert!(!bill.empty);
        let seller = &app().seller_id;
        assert_eq!(bill.download_name, format!("{seller}_20261125.csv.zip"));
        let [summary, detail] = &bill.files[..] else {
            panic!("{bill:?}")
        };
        assert_eq!(detail.name, format!("{seller}_20261125_业务明细.csv"));
        assert_eq!(
            summary.name,
            format!("{seller}_20261125_业务明细(汇总).csv")
        );
        let lines: Vec<&str> = detail.text.split("\r\n").collect();
        assert_eq!(lines[0], "#支付宝业务明细查询");
        assert_eq!(lines[1], format!("#账号：[{seller}]"));
        assert_eq!(
            lines[2],
            "#起始日期：[2026年11月25日 00:00:00]   终止日期：[2026年11月26日 00:00:00]"
        );
        assert_eq!(lines[4], DETAIL_HEADER);
        assert_eq!(
            lines[5],
            "20261125220011\t,1\t,交易,\"诗, \"\"夏日\"\"\",2026-11-25 09:00:00,2026-11-25 10:00:00,,,,,abc***@sandbox.com,88.80,88.80,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,-0.53,0.00,"
        );
        assert_eq!(
            lines[6],
            "20261125220011\t,1\t,退款,\"诗, \"\"夏日\"\"\",2026-11-25 09:00:00,2026-11-25 11:00:00,,,,,abc***@sandbox.com,-10.00,-10.00,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,R1\t,0.06,0.00,"
        );
        assert!(lines[7].contains("业务明细列表结束"), "{}", lines[7]);
        assert_eq!(
            lines[8],
            "#交易合计：1笔，商家实收共88.80元，商家优惠共0.00元"
        );
        assert_eq!(
            lines[9],
            "#退款合计：1笔，商家实收退款共-10.00元，商家优惠退款共0.00元"
        );
        assert_eq!(lines[10], "#导出时间：[2026年11月27日 08:00:01]");
        assert_eq!(lines[11], "", "the last line ends in CRLF too");
        assert_eq!(lines.len(), 12);

        let lines: Vec<&str> = summary.text.split("\r\n").collect();
        assert_eq!(lines[0], "#支付宝业务汇总查询");
        assert_eq!(lines[4], SUMMARY_HEADER);
        assert_eq!(
            lines[5],
            ",,1,1,78.80,78.80,0.00,0.00,0.00,-0.47,0.00,78.33"
        );
        assert_eq!(
            lines[6],
            "合计,,1,1,78.80,78.80,0.00,0.00,0.00,-0.47,0.00,78.33"
        );
        assert!(lines[7].contains("业务汇总列表结束"));
        assert_eq!(lines[8], "#导出时间：[2026年11月27日 08:00:01]");

        // The next day holds the second payment only; a month holds both days.
        let next = generate(&s, &app(), day("2026-11-26"), &now);
        assert!(next.files[1].text.contains("\r\n2026112522001"));
        assert!(
            next.files[1]
                .text
                .contains("#交易合计：1笔，商家实收共0.01元")
        );
        let month = generate(&s, &app(), day("2026-11"), &now);
        assert_eq!(month.files[1].name, format!("{seller}_202611_业务明细.csv"));
        assert!(
            month.files[1]
                .text
                .contains("#交易合计：2笔，商家实收共88.81元")
        );
        assert!(
            month.files[0]
                .text
                .contains("终止日期：[2026年12月01日 00:00:00]")
        );
    }

    #[test]
    fn a_day_without_business_has_headers_and_zero_totals() {
        let s = store(vec![order("1", 100, "s", Some("2026-11-25 10:00:00"), &[])]);
        let now = parse_timestamp("2026-11-27 08:00:00").unwrap();
        let bill = generate(&s, &app(), day("2026-11-24"), &now);
        assert!(bill.empty);
        let detail = &bill.files[1].text;
        assert!(
            detail.contains(&format!("{DETAIL_HEADER}\r\n#---")),
            "{detail}"
        );
        assert!(detail.contains("#交易合计：0笔，商家实收共0.00元"));
        assert!(detail.contains("#退款合计：0笔，商家实收退款共0.00元"));
        let summary = &bill.files[0].text;
        assert!(
            summary.contains(&format!(
                "{SUMMARY_HEADER}\r\n合计,,0,0,0.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00\r\n#---"
            )),
            "{summary}"
        );
        // Another app's trades are not this app's business.
        assert!(generate(&Store::default(), &app(), day("2026-11-25"), &now).empty);
    }

    #[test]
    fn the_account_bill_follows_the_balance() {
        let s = store(vec![
            order("1", 10000, "书", Some("2026-11-24 10:00:00"), &[]),
            order(
                "2",
                8880,
                "诗",
                Some("2026-11-25 10:00:00"),
                &[("R1", 1000, "2026-11-25 11:00:00.000")],
            ),
        ]);
        let now = parse_timestamp("2026-11-27 08:00:00").unwrap();
        let query = BillQuery {
            kind: BillKind::SignCustomer,
            period: BillPeriod::parse("2026-11-25").unwrap(),
        };
        let bill = generate(&s, &app(), query, &now);
        let [file] = &bill.files[..] else {
            panic!("{bill:?}")
        };
        assert!(file.name.ends_with("_20261125_账务明细.csv"));
        let lines: Vec<&str> = file.text.split("\r\n").collect();
        assert_eq!(lines[0], "#支付宝账务明细查询");
        assert_eq!(lines[4], ACCOUNT_HEADER);
        // The 24th left 100.00 - 0.60 = 99.40 (entries 1 and 2).
        assert_eq!(
            lines[5],
            "202611250000000003\t,20261125220012\t,2\t,诗\t,2026-11-25 10:00:00,abc***@sandbox.com\t,88.80,0.00,188.20,支付宝,在线支付,"
        );
        assert!(
            lines[6].ends_with(",0.00,-0.53,187.67,支付宝,收费,"),
            "{}",
            lines[6]
        );
        assert!(
            lines[7].ends_with(",0.00,-10.00,177.67,支付宝,交易退款,R1"),
            "{}",
            lines[7]
        );
        assert!(
            lines[8].ends_with(",0.06,0.00,177.73,支付宝,收费退回,R1"),
            "{}",
            lines[8]
        );
        assert_eq!(lines[10], "#支出合计：2笔，共-10.53元");
        assert_eq!(lines[11], "#收入合计：2笔，共88.86元");
    }

    #[test]
    fn the_header_rows_are_the_documented_ones() {
        // The protocol crate documents the format; the emulator writes it on its own.
        assert_eq!(DETAIL_HEADER, alipay_openapi::bill::DETAIL_HEADER.join(","));
        assert_eq!(
            SUMMARY_HEADER,
            alipay_openapi::bill::SUMMARY_HEADER.join(",")
        );
        assert_eq!(ACCOUNT_HEADER.split(',').count(), 12);
    }

    #[test]
    fn cells_and_amounts() {
        assert_eq!(signed_yuan(0), "0.00");
        assert_eq!(signed_yuan(-5), "-0.05");
        assert_eq!(signed_yuan(12345), "123.45");
        assert_eq!(text("a\nb"), "\"a\nb\"");
        assert_eq!(id("R,1"), "\"R,1\t\"");
    }
}
