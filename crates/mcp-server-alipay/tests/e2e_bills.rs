//! Bills end to end: the real binary in local mode, the embedded gateway's own bill, the tool, the
//! resource and the `reconcile` command. A payment whose notification was lost is reported and
//! settled from the bill; a refund made behind the ledger's back (another system signing with the
//! app's key, as the merchant console would) is reported; today is refused (T+1) and a day without
//! business is answered as such. An independent parser (Python's zipfile, codecs and csv) reads
//! the same bill and agrees with the tool's totals.

mod common;

use std::time::Duration;

use alipay_openapi::{
    AlipayClient, Amount, BillDownloadUrlQuery, ClientConfig, Merchant, PrivateKey, SignType,
    TradeRefund,
};
use chrono::Timelike as _;
use common::*;
use serde_json::{Value, json};

/// The app's client, signing with the local-mode key in `dir`: another system than this server.
fn app_client(dir: &TempDir, gateway: &Gateway) -> AlipayClient {
    let local = dir.path().join("data/local");
    let key = |file: &str| {
        PrivateKey::load(file, &std::fs::read_to_string(local.join(file)).unwrap()).unwrap()
    };
    let platform = key("alipay-private-key.txt");
    AlipayClient::new(ClientConfig::new(
        Merchant {
            app_id: gateway.app_id.clone(),
            private_key: key("app-private-key.txt"),
            sign_type: SignType::Rsa2,
            app_auth_token: None,
        },
        platform.public_key().clone(),
        format!("{}/gateway.do", gateway.base),
    ))
    .unwrap()
}

async fn gateway_now(gateway: &Gateway) -> chrono::NaiveDateTime {
    let clock: Value = reqwest::get(format!("{}/__emulator/clock", gateway.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    chrono::NaiveDateTime::parse_from_str(clock["now"].as_str().unwrap(), "%Y-%m-%d %H:%M:%S")
        .unwrap()
}

async fn advance(gateway: &Gateway, seconds: i64) {
    let r = reqwest::Client::new()
        .post(format!("{}/__emulator/clock", gateway.base))
        .body(json!({ "advance_seconds": seconds }).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// Python's standard library reads the bill: (payments, gross, refunds, refunded, fees) in fen.
fn python_totals(zip: &[u8], dir: &TempDir) -> Value {
    let path = dir.path().join("bill.zip");
    std::fs::write(&path, zip).unwrap();
    let script = r##"
import csv, io, json, sys, zipfile
from decimal import Decimal
z = zipfile.ZipFile(sys.argv[1])
def name(info):
    # No UTF-8 flag: Python decoded the name as cp437; the bytes are GBK.
    return info.filename.encode("cp437").decode("gbk") if info.flag_bits & 0x800 == 0 else info.filename
entries = {name(i): i for i in z.infolist()}
detail = next(n for n in entries if n.endswith("业务明细.csv") and "汇总" not in n)
text = z.read(entries[detail]).decode("gbk")
rows = [r for r in csv.reader(io.StringIO(text)) if r and not r[0].startswith("#")]
header, rows = [c.strip() for c in rows[0]], rows[1:]
col = {h: i for i, h in enumerate(header)}
fen = lambda s: int(Decimal(s.strip()) * 100)
out = {"payments": 0, "gross": 0, "refunds": 0, "refunded": 0, "fees": 0, "refundNos": []}
for r in rows:
    kind = r[col["业务类型"]].strip()
    if kind == "交易":
        out["payments"] += 1
        out["gross"] += fen(r[col["订单金额（元）"]])
    elif kind == "退款":
        out["refunds"] += 1
        out["refunded"] -= fen(r[col["订单金额（元）"]])
        out["refundNos"].append(r[col["退款批次号/请求号"]].strip())
    out["fees"] -= fen(r[col["服务费（元）"]] or "0")
out["refundNos"].sort()
print(json.dumps(out))
"##;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn yuan_fen(text: &Value) -> i64 {
    let s = text.as_str().unwrap();
    let (whole, frac) = s.split_once('.').unwrap();
    whole.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_bill_is_reconciled_against_the_ledger() {
    let dir = TempDir::new("bills");
    let mut env = local_env(dir.path(), free_port());
    // Every notification is lost: the ledger hears of payments only by asking.
    env.insert(
        "AP_NOTIFY_URL".into(),
        format!("http://127.0.0.1:{}/lost", free_port()),
    );
    env.insert("AP_NOTIFY_LISTEN".into(), "off".into());
    env.insert("AP_TIMEOUT_MS".into(), "1000".into());
    let client = connect(&env).await;

    // Start the business day at 01:00 Beijing on the gateway's clock, far from midnight.
    let created = call(
        &client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo": "BILL_WARMUP", "totalAmount": "0.01", "orderTitle": "warm-up"}),
    )
    .await;
    let gateway = Gateway::from_link(&link_of(&created));
    let now = gateway_now(&gateway).await;
    let next_one_am = (now.date() + chrono::Days::new(1))
        .and_hms_opt(1, 0, 0)
        .unwrap();
    advance(&gateway, (next_one_am - now).num_seconds()).await;
    let day = next_one_am.format("%Y-%m-%d").to_string();
    assert_eq!(gateway_now(&gateway).await.hour(), 1);

    // A: paid, and the ledger knows (by query). B: paid, the ledger never heard. C: never paid.
    for (no, amount) in [("BILL_A", "10.00"), ("BILL_B", "5.00"), ("BILL_C", "2.00")] {
        let created = call(
            &client,
            "create-web-page-alipay-payment",
            json!({"outTradeNo": no, "totalAmount": amount, "orderTitle": format!("bill, {no}")}),
        )
        .await;
        gateway.open(&link_of(&created)).await;
    }
    gateway.pay("BILL_A").await;
    gateway.pay("BILL_B").await;
    let queried = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo": "BILL_A"}),
    )
    .await;
    assert!(
        text(&queried).contains("TRADE_SUCCESS"),
        "{}",
        text(&queried)
    );
    let refund = call(
        &client,
        "refund-alipay-payment",
        json!({"outTradeNo": "BILL_A", "refundAmount": "3.00", "outRequestNo": "RF_TOOL"}),
    )
    .await;
    assert!(!is_error(&refund), "{}", text(&refund));
    // A refund made behind the ledger's back, as in the merchant console.
    app_client(&dir, &gateway)
        .execute(&TradeRefund {
            out_trade_no: "BILL_A".into(),
            refund_amount: Amount::from_yuan_str("1.00").unwrap(),
            out_request_no: Some("RF_CONSOLE".into()),
            refund_reason: None,
        })
        .await
        .unwrap();

    // A refund whose answer was lost, and whose every lookup failed: unknown in the ledger.
    gateway
        .fault(json!({"method": "alipay.trade.refund", "kind": "timeout", "delay_ms": 1500, "process": true}))
        .await;
    gateway
        .fault(
            json!({"method": "alipay.trade.fastpay.refund.query", "kind": "http_500", "times": 20}),
        )
        .await;
    let lost = call(
        &client,
        "refund-alipay-payment",
        json!({"outTradeNo": "BILL_A", "refundAmount": "1.00", "outRequestNo": "RF_LOST"}),
    )
    .await;
    assert_eq!(structured(&lost)["outcomeUnknown"], true, "{}", text(&lost));
    gateway.clear_faults().await;

    // Today has no bill yet: T+1, on the gateway's clock.
    let today = call(&client, "reconcile-alipay-bill", json!({"date": day})).await;
    assert!(is_error(&today), "{}", text(&today));
    assert_eq!(structured(&today)["error"]["kind"], "not_yet");
    assert!(text(&today).contains("T+1"), "{}", text(&today));

    advance(&gateway, 24 * 3600).await;
    let reconciled = call(&client, "reconcile-alipay-bill", json!({"date": day})).await;
    assert!(!is_error(&reconciled), "{}", text(&reconciled));
    let out = structured(&reconciled).clone();
    let totals = &out["totals"];
    // 10.00 + 5.00 paid; 3.00 + 1.00 + 1.00 refunded; fees 0.6% half up, returned on refunds:
    // 0.06 + 0.03 − 0.02 − 0.01 − 0.01.
    assert_eq!(totals["grossAmount"], "15.00");
    assert_eq!(totals["refundAmount"], "5.00");
    assert_eq!(totals["feeAmount"], "0.05");
    assert_eq!(totals["netAmount"], "9.95");
    assert_eq!(
        (
            totals["paymentCount"].as_u64(),
            totals["refundCount"].as_u64()
        ),
        (Some(2), Some(3))
    );
    assert_eq!(out["summaryAgrees"], true);
    // In the bill's row order, which for rows of the same second is the gateway's: sorted here.
    let mut kinds: Vec<(String, String)> = out["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                format!(
                    "{} {}",
                    d["outTradeNo"].as_str().unwrap(),
                    d["outRequestNo"].as_str().unwrap_or("-")
                ),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("paidNotRecorded".to_string(), "BILL_B -".to_string()),
            ("refundNotSettled".to_string(), "BILL_A RF_LOST".to_string()),
            ("unknownRefund".to_string(), "BILL_A RF_CONSOLE".to_string()),
        ],
        "{}",
        text(&reconciled)
    );
    let lost = out["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "paidNotRecorded")
        .unwrap();
    assert_eq!(lost["settled"], true);
    assert!(
        text(&reconciled).contains("BILL_B"),
        "{}",
        text(&reconciled)
    );

    // The bill settled B as paid, with source bill.
    let db = rusqlite::Connection::open(dir.path().join("data/local/ledger.db")).unwrap();
    let (status, source, paid_at): (String, String, String) = db
        .query_row(
            "SELECT trade_status, status_source, paid_at FROM orders WHERE out_trade_no = 'BILL_B'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (status.as_str(), source.as_str()),
        ("TRADE_SUCCESS", "bill")
    );
    assert!(paid_at.starts_with(&day), "{paid_at}");
    // And the lost refund as made, on the bill's day.
    let (state, detail, succeeded_at): (String, String, String) = db
        .query_row(
            "SELECT state, detail, succeeded_at FROM refunds WHERE out_request_no = 'RF_LOST'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(state, "succeeded");
    assert_eq!(detail, format!("confirmed by the bill of {day}"));
    assert!(succeeded_at.starts_with(&day), "{succeeded_at}");

    // An independent parser reads the same bill and agrees with the tool.
    let app = app_client(&dir, &gateway);
    let answer = app
        .execute(&BillDownloadUrlQuery::trade(day.as_str()))
        .await
        .unwrap();
    let zip = reqwest::get(answer.bill_download_url.unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let python = python_totals(&zip, &dir);
    assert_eq!(python["payments"], 2);
    assert_eq!(python["refunds"], 3);
    assert_eq!(
        python["gross"].as_i64().unwrap(),
        yuan_fen(&totals["grossAmount"])
    );
    assert_eq!(
        python["refunded"].as_i64().unwrap(),
        yuan_fen(&totals["refundAmount"])
    );
    assert_eq!(
        python["fees"].as_i64().unwrap(),
        yuan_fen(&totals["feeAmount"])
    );
    assert_eq!(
        python["refundNos"],
        json!(["RF_CONSOLE", "RF_LOST", "RF_TOOL"])
    );

    // Again: B and the lost refund are no longer discrepancies; the console refund still is.
    let again = call(&client, "reconcile-alipay-bill", json!({"date": day})).await;
    assert_eq!(
        structured(&again)["discrepancyCount"],
        1,
        "{}",
        text(&again)
    );

    // The resource answers the same.
    let resource = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(format!(
            "alipay://bills/{day}"
        )))
        .await
        .unwrap();
    let rmcp::model::ResourceContents::TextResourceContents { text: body, .. } =
        &resource.contents[0]
    else {
        panic!("text resource");
    };
    let from_resource: Value = serde_json::from_str(body).unwrap();
    assert_eq!(from_resource["totals"], *totals);

    // A day without business.
    let quiet = (next_one_am.date() - chrono::Days::new(2))
        .format("%Y-%m-%d")
        .to_string();
    let empty = call(&client, "reconcile-alipay-bill", json!({"date": quiet})).await;
    assert!(!is_error(&empty), "{}", text(&empty));
    assert_eq!(structured(&empty)["empty"], true);
    assert_eq!(structured(&empty)["discrepancyCount"], 0);
    assert_eq!(structured(&empty)["totals"]["grossAmount"], "0.00");

    // The command for cron, beside the running server: exit 1 with the discrepancy, as JSON.
    let cli = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("reconcile")
            .args(args)
            .env_clear()
            .envs(&env)
            .output()
            .unwrap()
    };
    let run = cli(&["--date", &day, "--json"]);
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["discrepancyCount"], 1);
    assert_eq!(report["discrepancies"][0]["kind"], "unknownRefund");
    let run = cli(&["--date", &quiet]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("当天没有交易"));
    let tomorrow = (next_one_am.date() + chrono::Days::new(1))
        .format("%Y-%m-%d")
        .to_string();
    let run = cli(&["--date", &tomorrow]);
    assert_eq!(run.status.code(), Some(2));
    assert!(run.stdout.is_empty());
    assert!(String::from_utf8_lossy(&run.stderr).contains("T+1"));
    let run = cli(&["--date", "2026-13-01"]);
    assert_eq!(run.status.code(), Some(2));

    // The next day, reconciled in its turn: what the bill of the first day settled is not expected
    // again (a settled refund keeps the bill's day, not the day it was settled).
    advance(&gateway, 24 * 3600).await;
    let next = call(&client, "reconcile-alipay-bill", json!({"date": tomorrow})).await;
    assert!(!is_error(&next), "{}", text(&next));
    assert_eq!(structured(&next)["discrepancyCount"], 0, "{}", text(&next));
    tokio::time::sleep(Duration::from_millis(10)).await;
    client.cancel().await.unwrap();
}
