//! `alipay.data.dataservice.bill.downloadurl.query` and the bill behind its URL, read the way a
//! merchant must read Alipay's: a zip whose entry names are GBK bytes without the UTF-8 flag,
//! GBK CSV files with `#` header and footer lines, ids ending in a tab, refunds as negative rows,
//! 服务费 charged at 0.6%. The zip is taken apart here with the zip crate and encoding_rs alone
//! (not `alipay_openapi::bill`, which is the other side of the same format), and every cell is
//! checked against the control API's view of the trades.

mod common;

use std::io::{Cursor, Read as _};

use alipay_openapi::time::parse_timestamp;
use alipay_openapi::{
    Amount, BillDownloadUrlQuery, BillDownloadUrlQueryResponse, Error, PayKind, TradeRefund,
};
use chrono::{DateTime, FixedOffset, TimeDelta};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const DAY: u64 = 24 * 3600;

impl Env {
    async fn now(&self) -> DateTime<FixedOffset> {
        let (status, v) = self.control(Method::GET, "/__emulator/clock", None).await;
        assert_eq!(status, 200, "{v}");
        parse_timestamp(v["now"].as_str().unwrap()).unwrap()
    }

    async fn advance(&self, seconds: u64) {
        let (status, v) = self
            .control(
                Method::POST,
                "/__emulator/clock",
                Some(json!({ "advance_seconds": seconds })),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }

    /// Move the clock to 01:00 of the next Beijing day, so that what follows (seconds of work)
    /// happens on one day whenever the test runs.
    async fn next_day_at_one(&self) -> DateTime<FixedOffset> {
        let now = self.now().await;
        let next = (now.date_naive() + TimeDelta::days(1))
            .and_hms_opt(1, 0, 0)
            .unwrap();
        let seconds = (next - now.naive_local()).num_seconds();
        self.advance(u64::try_from(seconds).unwrap()).await;
        self.now().await
    }

    async fn pay_order(&self, no: &str, yuan: &str, subject: &str) {
        let link = self
            .client
            .payment_link(&order(PayKind::Wap, no, yuan, subject))
            .unwrap();
        let page = self.get(&link).await;
        assert!(!page.body.contains("错误代码"), "{}", page.body);
        let (status, v) = self.act(no, "pay").await;
        assert_eq!(status, 200, "{v}");
    }

    async fn refund(&self, no: &str, yuan: &str, request_no: Option<&str>) {
        self.client
            .execute(&TradeRefund {
                out_trade_no: no.into(),
                refund_amount: Amount::from_yuan_str(yuan).unwrap(),
                out_request_no: request_no.map(str::to_string),
                refund_reason: None,
            })
            .await
            .unwrap();
    }

    async fn bill(
        &self,
        bill_type: &str,
        bill_date: &str,
    ) -> Result<BillDownloadUrlQueryResponse, Error> {
        self.client
            .execute(&BillDownloadUrlQuery {
                bill_type: bill_type.into(),
                bill_date: bill_date.into(),
            })
            .await
    }

    /// The URL's zip; fails unless it is served as one.
    async fn download(&self, url: &str) -> Vec<u8> {
        let response = self.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "application/zip");
        let disposition = headers["content-disposition"].to_str().unwrap().to_string();
        assert!(
            disposition.starts_with("attachment; filename=\"2088")
                && disposition.ends_with(".csv.zip\""),
            "{disposition}"
        );
        response.bytes().await.unwrap().to_vec()
    }

    async fn refused(&self, url: &str) -> String {
        let raw = self.get(url).await;
        assert_eq!(raw.status, 404, "{}", raw.body);
        assert!(
            raw.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        raw.body
    }

    async fn seller_id(&self) -> String {
        let (_, v) = self.control(Method::GET, "/__emulator/apps", None).await;
        v["apps"][0]["seller_id"].as_str().unwrap().to_string()
    }
}

fn business(result: Result<BillDownloadUrlQueryResponse, Error>) -> (String, String, String) {
    let err = result.expect_err("a business error");
    let b = err
        .business()
        .unwrap_or_else(|| panic!("not a business error: {err:?}"));
    (
        b.code.clone(),
        b.sub_code.clone().unwrap_or_default(),
        b.sub_msg.clone().unwrap_or_default(),
    )
}

/// One zip entry: the name decoded from GBK, the content's lines.
struct Entry {
    name: String,
    lines: Vec<String>,
}

/// Unzip, checking what Alipay's zips are: deflated entries whose names are GBK bytes (not
/// UTF-8) without the UTF-8 flag, in the local header and the central directory, and whose
/// contents are GBK text with CRLF line ends.
fn unzip(bytes: &[u8]) -> Vec<Entry> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes.to_vec())).unwrap();
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let raw_name = file.name_raw().to_vec();
        assert!(
            std::str::from_utf8(&raw_name).is_err(),
            "the name is UTF-8: {raw_name:?}"
        );
        let (name, _, bad) = encoding_rs::GBK.decode(&raw_name);
        assert!(!bad, "the name is not GBK: {raw_name:?}");
        let local = usize::try_from(file.header_start()).unwrap();
        let central = usize::try_from(file.central_header_start()).unwrap();
        assert_eq!(&bytes[local..local + 4], b"PK\x03\x04");
        assert_eq!(&bytes[central..central + 4], b"PK\x01\x02");
        for flags in [
            &bytes[local + 6..local + 8],
            &bytes[central + 8..central + 10],
        ] {
            assert_eq!(
                u16::from_le_bytes([flags[0], flags[1]]) & 0x0800,
                0,
                "UTF-8 flag on {name}"
            );
        }
        assert_eq!(file.compression(), zip::CompressionMethod::Deflated);
        let mut content = Vec::new();
        file.read_to_end(&mut content).unwrap();
        assert!(
            std::str::from_utf8(&content).is_err() || content.is_ascii(),
            "UTF-8 content in {name}"
        );
        let (text, _, bad) = encoding_rs::GBK.decode(&content);
        assert!(!bad, "{name} is not GBK");
        assert!(text.ends_with("\r\n"), "{name}");
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "{name}: a bare LF"
        );
        let lines = text
            .trim_end_matches("\r\n")
            .split("\r\n")
            .map(str::to_string)
            .collect();
        entries.push(Entry {
            name: name.into_owned(),
            lines,
        });
    }
    entries
}

/// One CSV record (quoted cells with doubled quotes; no line breaks inside cells here).
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cell)),
            (c, _) => cell.push(c),
        }
    }
    out.push(cell);
    out
}

/// The data rows between a file's header row and its closing `#` line.
fn rows(entry: &Entry, header_first: &str) -> Vec<Vec<String>> {
    let header = entry
        .lines
        .iter()
        .position(|l| l.starts_with(header_first))
        .unwrap_or_else(|| panic!("no header in {}", entry.name));
    entry.lines[header + 1..]
        .iter()
        .take_while(|l| !l.starts_with('#'))
        .map(|l| cells(l))
        .collect()
}

/// 0.6%, half up, in fen (restated here rather than taken from the emulator).
fn fee(fen: i64) -> i64 {
    (fen * 6 + 500) / 1000
}

fn fen(yuan: &str) -> i64 {
    let negative = yuan.starts_with('-');
    let (int, frac) = yuan.trim_start_matches('-').split_once('.').unwrap();
    assert_eq!(frac.len(), 2, "{yuan}");
    let v = int.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap();
    if negative { -v } else { v }
}

fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

const DETAIL_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";
const SUMMARY_HEADER: &str = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）";

/// The detail row the control API's view of a trade says there must be: a payment, or the
/// refund `request_no`.
fn expected_row(trade: &Value, request_no: Option<&str>, fee_fen: i64) -> Vec<String> {
    let s = |k: &str| trade[k].as_str().unwrap().to_string();
    let (kind, amount, done, request) = match request_no {
        None => (
            "交易",
            fen(&s("total_amount")),
            s("gmt_payment"),
            String::new(),
        ),
        Some(no) => {
            let refund = trade["refunds"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["out_request_no"] == no)
                .unwrap();
            (
                "退款",
                -fen(refund["refund_amount"].as_str().unwrap()),
                refund["gmt_refund_pay"].as_str().unwrap().to_string(),
                format!("{no}\t"),
            )
        }
    };
    let mut row = vec![
        format!("{}\t", s("trade_no")),
        format!("{}\t", s("out_trade_no")),
        kind.into(),
        s("subject"),
        s("gmt_create"),
        done,
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        s("buyer_logon_id"),
        yuan(amount),
        yuan(amount),
    ];
    row.extend(["0.00", "0.00", "0.00", "0.00", "0.00", ""].map(String::from));
    row.extend(["0.00", "0.00"].map(String::from));
    row.push(request);
    row.push(yuan(fee_fen));
    row.push("0.00".into());
    row.push(String::new());
    row
}

#[tokio::test]
async fn a_days_bill_lists_its_payments_and_refunds_once_the_day_is_over() {
    let env = start().await;
    let seller = env.seller_id().await;

    // Day P: one payment, refunded on day Q.
    let p = env.next_day_at_one().await;
    env.pay_order("BILL_OTHER", "5.00", "前一天的订单").await;

    // Day Q: three payments (one of 0.01, whose fee rounds to nothing), a partial refund, a full
    // refund (its request number defaults to the order's), an opened order left unpaid.
    let q = env.next_day_at_one().await;
    env.pay_order("BILL_1", "88.80", "诗集, \"夏日\" 精选")
        .await;
    env.pay_order("BILL_2", "0.01", "一分钱").await;
    env.pay_order("BILL_3", "250.00", "书").await;
    env.refund("BILL_1", "10.00", Some("R1")).await;
    env.refund("BILL_3", "250.00", None).await;
    env.refund("BILL_OTHER", "5.00", Some("R_OTHER")).await;
    env.open_link(PayKind::Wap, "BILL_UNPAID", "7.00").await;

    // Today's bill (and this month's) does not exist yet: bills are T+1.
    let q_date = q.format("%Y-%m-%d").to_string();
    let (code, sub_code, sub_msg) = business(env.bill("trade", &q_date).await);
    assert_eq!(
        (code.as_str(), sub_code.as_str()),
        ("40004", "isp.bill_not_exist")
    );
    assert!(
        sub_msg.contains("尚未生成") && sub_msg.contains(&q_date),
        "{sub_msg}"
    );
    let (_, sub_code, _) = business(env.bill("trade", &q.format("%Y-%m").to_string()).await);
    assert_eq!(sub_code, "isp.bill_not_exist");

    env.advance(DAY).await;
    let answer = env.bill("trade", &q_date).await.unwrap();
    assert!(!answer.is_empty_day(), "{answer:?}");
    assert_eq!(answer.bill_file_code, None);
    let url = answer.bill_download_url.unwrap();
    assert!(url.starts_with(&format!("{}/bill/", env.base())), "{url}");
    let token = url.rsplit('/').next().unwrap();
    assert!(
        token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    let zip = env.download(&url).await;
    assert!(env.refused(&url).await.contains("already used"));
    assert!(
        env.refused(&format!(
            "{}/bill/0123456789abcdef0123456789abcdef",
            env.base()
        ))
        .await
        .contains("unknown")
    );

    let entries = unzip(&zip);
    let stamp = q.format("%Y%m%d").to_string();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{seller}_{stamp}_业务明细(汇总).csv"),
            format!("{seller}_{stamp}_业务明细.csv"),
        ],
        "the summary comes first"
    );
    let (summary, detail) = (&entries[0], &entries[1]);

    // The detail's header lines.
    let start = q.format("%Y年%m月%d日 00:00:00").to_string();
    let end = (q.date_naive() + TimeDelta::days(1))
        .format("%Y年%m月%d日 00:00:00")
        .to_string();
    assert_eq!(detail.lines[0], "#支付宝业务明细查询");
    assert_eq!(detail.lines[1], format!("#账号：[{seller}]"));
    assert_eq!(
        detail.lines[2],
        format!("#起始日期：[{start}]   终止日期：[{end}]")
    );
    assert_eq!(
        detail.lines[3],
        "#-----------------------------------------业务明细列表----------------------------------------"
    );
    assert_eq!(detail.lines[4], DETAIL_HEADER);

    // Every row, cell by cell, against the trades; in time order.
    let t1 = env.trade("BILL_1").await;
    let t2 = env.trade("BILL_2").await;
    let t3 = env.trade("BILL_3").await;
    let other = env.trade("BILL_OTHER").await;
    let mut expected = vec![
        expected_row(&t1, None, -fee(8880)),
        expected_row(&t2, None, -fee(1)),
        expected_row(&t3, None, -fee(25000)),
        expected_row(&t1, Some("R1"), fee(1000)),
        expected_row(&t3, Some("BILL_3"), fee(25000)),
        expected_row(&other, Some("R_OTHER"), fee(500)),
    ];
    let mut found = rows(detail, "支付宝交易号");
    assert!(found.iter().all(|r| r.len() == 25), "{found:?}");
    assert!(
        found.windows(2).all(|w| w[0][5] <= w[1][5]),
        "not in time order: {found:?}"
    );
    let quoted = found.iter().find(|r| r[1] == "BILL_1\t").unwrap();
    assert_eq!(quoted[3], "诗集, \"夏日\" 精选", "a quoted subject");
    expected.sort();
    found.sort();
    assert_eq!(found, expected);
    assert_eq!(fee(8880), 53, "0.6% of 88.80 is 0.5328");
    assert_eq!(fee(1), 0);
    assert_eq!(fee(25000), 150);
    assert_eq!(fee(500), 3);

    // The footer, then the summary's 合计 (and its one store row) add up.
    let paid = 8880 + 1 + 25000;
    let refunded = 1000 + 25000 + 500;
    let charged = fee(8880) + fee(1) + fee(25000);
    let returned = fee(1000) + fee(25000) + fee(500);
    let fees = returned - charged;
    let footer = &detail.lines[detail.lines.len() - 4..];
    assert!(
        footer[0].starts_with("#-----") && footer[0].contains("业务明细列表结束"),
        "{}",
        footer[0]
    );
    assert_eq!(
        footer[1],
        format!(
            "#交易合计：3笔，商家实收共{}元，商家优惠共0.00元",
            yuan(paid)
        )
    );
    assert_eq!(
        footer[2],
        format!(
            "#退款合计：3笔，商家实收退款共{}元，商家优惠退款共0.00元",
            yuan(-refunded)
        )
    );
    assert!(
        footer[3].starts_with("#导出时间：[") && footer[3].ends_with(']'),
        "{}",
        footer[3]
    );
    let exported = (q.date_naive() + TimeDelta::days(1))
        .format("%Y年%m月%d日")
        .to_string();
    assert!(footer[3].contains(&exported), "{}", footer[3]);

    assert_eq!(summary.lines[0], "#支付宝业务汇总查询");
    assert_eq!(summary.lines[1], format!("#账号：[{seller}]"));
    assert_eq!(
        summary.lines[2],
        format!("#起始日期：[{start}]   终止日期：[{end}]")
    );
    let sums = rows(summary, "门店编号");
    let expected_sum = |store: &str| {
        vec![
            store.to_string(),
            String::new(),
            "3".into(),
            "3".into(),
            yuan(paid - refunded),
            yuan(paid - refunded),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            yuan(fees),
            "0.00".into(),
            yuan(paid - refunded + fees),
        ]
    };
    assert_eq!(sums, [expected_sum(""), expected_sum("合计")]);
    assert_eq!(yuan(fees), "-0.44");
    assert_eq!(yuan(paid - refunded + fees), "73.37");
    assert!(summary.lines.iter().any(|l| l == SUMMARY_HEADER));
    assert!(summary.lines.last().unwrap().starts_with("#导出时间：["));

    // Day P's bill holds BILL_OTHER's payment only (its refund was on Q).
    let answer = env
        .bill("trade", &p.format("%Y-%m-%d").to_string())
        .await
        .unwrap();
    assert!(!answer.is_empty_day());
    let entries = unzip(&env.download(&answer.bill_download_url.unwrap()).await);
    assert_eq!(
        rows(&entries[1], "支付宝交易号"),
        [expected_row(&other, None, -fee(500))]
    );

    // The account bill (signcustomer) of Q: the balance's movements.
    let answer = env.bill("signcustomer", &q_date).await.unwrap();
    let entries = unzip(&env.download(&answer.bill_download_url.unwrap()).await);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].name, format!("{seller}_{stamp}_账务明细.csv"));
    assert_eq!(entries[0].lines[0], "#支付宝账务明细查询");
    let account = rows(&entries[0], "账务流水号");
    assert!(account.iter().all(|r| r.len() == 12), "{account:?}");
    let kinds = |what: &str| account.iter().filter(|r| r[10] == what).count();
    // BILL_2's fee is 0.00: no line.
    assert_eq!(
        (
            kinds("在线支付"),
            kinds("收费"),
            kinds("交易退款"),
            kinds("收费退回")
        ),
        (3, 2, 3, 3)
    );
    let income: i64 = account.iter().map(|r| fen(&r[6])).sum();
    let expense: i64 = account.iter().map(|r| fen(&r[7])).sum();
    assert_eq!(income, paid + returned);
    assert_eq!(expense, -(refunded + charged));
    // The balance runs on from day P's (5.00 - 0.03) line by line.
    let mut balance = 500 - 3;
    for r in &account {
        balance += fen(&r[6]) + fen(&r[7]);
        assert_eq!(fen(&r[8]), balance, "{r:?}");
    }
    let footer = &entries[0].lines[entries[0].lines.len() - 3..];
    assert_eq!(footer[0], format!("#支出合计：5笔，共{}元", yuan(expense)));
    assert_eq!(footer[1], format!("#收入合计：6笔，共{}元", yuan(income)));
}

#[tokio::test]
async fn a_day_without_business_is_an_empty_bill_with_headers_and_zero_totals() {
    let env = start().await;
    let seller = env.seller_id().await;
    env.pay_order("EMPTY_1", "1.00", "今天").await;
    let yesterday = (env.now().await.date_naive() - TimeDelta::days(1))
        .format("%Y-%m-%d")
        .to_string();
    for (bill_type, date) in [
        ("trade", yesterday.as_str()),
        ("trade", "2016-01-01"),
        ("trade", "2016-01"),
    ] {
        let answer = env.bill(bill_type, date).await.unwrap();
        assert!(answer.is_empty_day(), "{date}: {answer:?}");
        assert_eq!(
            answer.bill_file_code.as_deref(),
            Some("EMPTY_DATA_WITH_BILL_FILE")
        );
        let entries = unzip(&env.download(&answer.bill_download_url.unwrap()).await);
        let stamp = date.replace('-', "");
        assert_eq!(entries[1].name, format!("{seller}_{stamp}_业务明细.csv"));
        assert!(rows(&entries[1], "支付宝交易号").is_empty());
        let detail = &entries[1].lines;
        assert_eq!(detail[0], "#支付宝业务明细查询");
        assert!(
            detail.contains(&"#交易合计：0笔，商家实收共0.00元，商家优惠共0.00元".to_string()),
            "{detail:?}"
        );
        assert!(
            detail.contains(
                &"#退款合计：0笔，商家实收退款共0.00元，商家优惠退款共0.00元".to_string()
            )
        );
        assert_eq!(
            rows(&entries[0], "门店编号"),
            [[
                "合计", "", "0", "0", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00",
                "0.00"
            ]
            .map(String::from)]
        );
    }
    let answer = env.bill("trade", "2016-01").await.unwrap();
    let entries = unzip(&env.download(&answer.bill_download_url.unwrap()).await);
    assert_eq!(
        entries[1].lines[2],
        "#起始日期：[2016年01月01日 00:00:00]   终止日期：[2016年02月01日 00:00:00]"
    );
    let answer = env.bill("signcustomer", &yesterday).await.unwrap();
    assert!(answer.is_empty_day());
}

#[tokio::test]
async fn bad_bill_types_and_dates_are_invalid_arguments() {
    let env = start().await;
    let cases = [
        ("fund", "2024-01-01", "bill_type"),
        ("TRADE", "2024-01-01", "bill_type"),
        ("trade", "2024-1-01", "bill_date"),
        ("trade", "20240101", "bill_date"),
        ("trade", "2024/01/01", "bill_date"),
        ("trade", "2024-02-30", "bill_date"),
        ("trade", "2024-13", "bill_date"),
        ("trade", "2015-12-31", "bill_date"),
        ("trade", "2015-12", "bill_date"),
        ("trade", "2024-01-01 00:00:00", "bill_date"),
    ];
    for (bill_type, date, field) in cases {
        let (code, sub_code, sub_msg) = business(env.bill(bill_type, date).await);
        assert_eq!(
            (code.as_str(), sub_code.as_str()),
            ("40004", "isv.invalid-arguments"),
            "{bill_type} {date}"
        );
        assert!(sub_msg.contains(field), "{bill_type} {date}: {sub_msg}");
    }
    // Missing fields and wrong types, sent as raw biz_content.
    for (biz, field) in [
        (r#"{"bill_date":"2024-01-01"}"#, "bill_type"),
        (r#"{"bill_type":"trade"}"#, "bill_date"),
        (r#"{"bill_type":"trade","bill_date":20240101}"#, "bill_date"),
    ] {
        let answer = env
            .client
            .execute_raw("alipay.data.dataservice.bill.downloadurl.query", biz, false)
            .await
            .unwrap();
        assert_eq!(
            answer.body["sub_code"], "isv.invalid-arguments",
            "{biz}: {:?}",
            answer.body
        );
        assert!(
            answer.body["sub_msg"].as_str().unwrap().contains(field),
            "{:?}",
            answer.body
        );
    }
    // A future day is not there yet either.
    let (_, sub_code, _) = business(env.bill("trade", "2099-01-01").await);
    assert_eq!(sub_code, "isp.bill_not_exist");
}

#[tokio::test]
async fn a_link_dies_30_seconds_after_it_is_issued() {
    let env = start().await;
    let yesterday = (env.now().await.date_naive() - TimeDelta::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let url = env
        .bill("trade", &yesterday)
        .await
        .unwrap()
        .bill_download_url
        .unwrap();
    env.advance(31).await;
    assert!(env.refused(&url).await.contains("expired"));
    // Within 30 s it works (HEAD does not use it up).
    let url = env
        .bill("trade", &yesterday)
        .await
        .unwrap()
        .bill_download_url
        .unwrap();
    env.advance(29).await;
    let head = env.http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/zip");
    assert!(!unzip(&env.download(&url).await).is_empty());
    assert!(env.refused(&url).await.contains("already used"));
}

#[tokio::test]
async fn the_answer_is_signed_json_in_alipays_shape() {
    let env = start().await;
    let yesterday = (env.now().await.date_naive() - TimeDelta::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let params = signed_params(
        "alipay.data.dataservice.bill.downloadurl.query",
        &format!(r#"{{"bill_type":"trade","bill_date":"{yesterday}"}}"#),
        &[],
    );
    let raw = env.post_form(&params).await;
    assert_eq!(raw.status, 200);
    let v: Value = serde_json::from_str(&raw.body).unwrap();
    let inner = &v["alipay_data_dataservice_bill_downloadurl_query_response"];
    assert_eq!(inner["code"], "10000");
    assert_eq!(inner["bill_file_code"], "EMPTY_DATA_WITH_BILL_FILE");
    assert!(v["sign"].is_string());
    assert!(
        raw.body.starts_with(r#"{"alipay_data_dataservice_bill_downloadurl_query_response":{"code":"10000","msg":"Success","bill_download_url":"http:\/\/127.0.0.1:"#),
        "{}",
        raw.body
    );
    let requests = env.requests().await;
    let last = requests.last().unwrap();
    assert_eq!(
        last["method"],
        "alipay.data.dataservice.bill.downloadurl.query"
    );
    assert_eq!(last["code"], "10000");
}
