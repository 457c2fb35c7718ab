//! The trade and refund rules of ALIPAY-PROTOCOL §5.5 through the `alipay-openapi` client, and
//! the control API's buyer and time actions.

mod common;

use alipay_openapi::{
    Amount, Error, PayKind, RefundQuery, TradeClose, TradePrecreate, TradeQuery, TradeRefund,
    TradeStatus,
};
use common::*;

fn refund(out_trade_no: &str, yuan: &str, request_no: Option<&str>) -> TradeRefund {
    TradeRefund {
        out_trade_no: out_trade_no.into(),
        refund_amount: Amount::from_yuan_str(yuan).unwrap(),
        out_request_no: request_no.map(str::to_string),
        refund_reason: Some("测试退款".into()),
    }
}

fn sub_code(err: &Error) -> String {
    err.business()
        .unwrap_or_else(|| panic!("not a business error: {err:?}"))
        .sub_code
        .clone()
        .unwrap_or_default()
}

fn refund_query(out_trade_no: &str, request_no: &str) -> RefundQuery {
    RefundQuery {
        out_trade_no: out_trade_no.into(),
        out_request_no: request_no.into(),
        query_options: Some(vec!["gmt_refund_pay".into()]),
    }
}

#[tokio::test]
async fn a_link_has_no_trade_until_the_buyer_opens_it() {
    let env = start().await;
    let link = env
        .client
        .payment_link(&order(PayKind::Wap, "LINK_1", "88.80", "书"))
        .unwrap();
    let err = env
        .client
        .execute(&TradeQuery::by_out_trade_no("LINK_1"))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_NOT_EXIST");
    assert!(!err.outcome_unknown());
    // Closing a trade that does not exist yet fails the same way (pitfall 10).
    let err = env
        .client
        .execute(&TradeClose {
            out_trade_no: "LINK_1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_NOT_EXIST");
    // The control API knows no order before the link is opened either.
    assert_eq!(env.act("LINK_1", "pay").await.0, 404);

    let page = env.get(&link).await;
    assert!(page.body.contains("¥</small>88.80"));
    let q = env
        .client
        .execute(&TradeQuery::by_out_trade_no("LINK_1"))
        .await
        .unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::WaitBuyerPay));
    assert_eq!(q.total_amount.unwrap().to_string(), "88.80");
    assert_eq!(q.buyer_pay_amount.unwrap().to_string(), "0.00");
    assert!(q.send_pay_date.is_none());
    let trade_no = q.trade_no.unwrap();
    assert_eq!(trade_no.len(), 28);
    assert_eq!(&trade_no[8..13], "22001");
    let buyer = q.buyer_user_id.unwrap();
    assert!(buyer.starts_with("2088") && buyer.len() == 16);
    assert!(q.buyer_logon_id.unwrap().contains("***"));
}

#[tokio::test]
async fn paying_then_querying_by_either_number() {
    let env = start().await;
    env.paid(PayKind::Page, "PAY_1", "0.01").await;
    let q = env
        .client
        .execute(&TradeQuery::by_out_trade_no("PAY_1"))
        .await
        .unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeSuccess));
    for amount in [
        q.buyer_pay_amount,
        q.receipt_amount,
        q.invoice_amount,
        q.total_amount,
    ] {
        assert_eq!(amount.unwrap().to_string(), "0.01");
    }
    assert_eq!(q.point_amount.unwrap().to_string(), "0.00");
    assert!(alipay_openapi::time::parse_timestamp(&q.send_pay_date.unwrap()).is_some());
    let by_trade_no = env
        .client
        .execute(&TradeQuery {
            trade_no: q.trade_no.clone(),
            query_options: Some(vec!["fund_bill_list".into()]),
            ..TradeQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_trade_no.out_trade_no.as_deref(), Some("PAY_1"));
    let raw = env
        .client
        .execute_raw(
            "alipay.trade.query",
            r#"{"out_trade_no":"PAY_1","query_options":["fund_bill_list"]}"#,
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        raw.body["fund_bill_list"],
        serde_json::json!([{"amount":"0.01","fund_channel":"ALIPAYACCOUNT"}])
    );
    // Neither number: a parameter error that names the rule.
    let raw = env
        .client
        .execute_raw("alipay.trade.query", "{}", false)
        .await
        .unwrap();
    assert_eq!(raw.body["sub_code"], "ACQ.INVALID_PARAMETER");
    assert!(raw.body["sub_msg"].as_str().unwrap().contains("trade_no"));
}

#[tokio::test]
async fn partial_then_full_refund_with_idempotent_repeats() {
    let env = start().await;
    env.paid(PayKind::Wap, "REF_1", "100.00").await;

    let r1 = env
        .client
        .execute(&refund("REF_1", "30", Some("R1")))
        .await
        .unwrap();
    assert!(r1.fund_changed());
    assert_eq!(r1.refund_fee.unwrap().to_string(), "30.00");
    assert_eq!(r1.send_back_fee.unwrap().to_string(), "30.00");
    let first_pay_time = r1.gmt_refund_pay.clone().unwrap();

    // Same request again: success, no money moved, same figures.
    let again = env
        .client
        .execute(&refund("REF_1", "30", Some("R1")))
        .await
        .unwrap();
    assert_eq!(again.fund_change.as_deref(), Some("N"));
    assert_eq!(again.refund_fee.unwrap().to_string(), "30.00");
    assert_eq!(again.gmt_refund_pay.unwrap(), first_pay_time);

    // Same number, other amount.
    let err = env
        .client
        .execute(&refund("REF_1", "31", Some("R1")))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.DISCORDANT_REPEAT_REQUEST");
    // More than what is left.
    let err = env
        .client
        .execute(&refund("REF_1", "70.01", Some("R2")))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.REASON_TRADE_REFUND_FEE_ERR");
    let body = &err.business().unwrap().body;
    assert_eq!(
        (body["refund_fee"].as_str(), body["send_back_fee"].as_str()),
        (Some("0.00"), Some("0.00"))
    );
    // Partial without out_request_no.
    let err = env
        .client
        .execute(&refund("REF_1", "10", None))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL");

    let q = env
        .client
        .execute(&TradeQuery::by_out_trade_no("REF_1"))
        .await
        .unwrap();
    assert_eq!(
        q.trade_status,
        Some(TradeStatus::TradeSuccess),
        "a partial refund keeps the trade open"
    );

    // The rest: cumulative refund_fee reaches the total, the trade closes.
    let r2 = env
        .client
        .execute(&refund("REF_1", "70", Some("R2")))
        .await
        .unwrap();
    assert!(r2.fund_changed());
    assert_eq!(r2.refund_fee.unwrap().to_string(), "100.00");
    let q = env
        .client
        .execute(&TradeQuery::by_out_trade_no("REF_1"))
        .await
        .unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeClosed));
    assert_eq!(
        q.buyer_pay_amount.unwrap().to_string(),
        "100.00",
        "paid amounts stay"
    );

    // A retry of the full refund after it closed the trade still answers success (N).
    let again = env
        .client
        .execute(&refund("REF_1", "70", Some("R2")))
        .await
        .unwrap();
    assert_eq!(again.fund_change.as_deref(), Some("N"));
    // A new refund on the closed trade is refused.
    let err = env
        .client
        .execute(&refund("REF_1", "1", Some("R3")))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_STATUS_ERROR");

    // Refund queries: found, not found, unknown trade.
    let found = env
        .client
        .execute(&refund_query("REF_1", "R1"))
        .await
        .unwrap();
    assert!(found.refund_succeeded());
    assert_eq!(found.refund_amount.unwrap().to_string(), "30.00");
    assert_eq!(found.total_amount.unwrap().to_string(), "100.00");
    assert_eq!(found.refund_reason.as_deref(), Some("测试退款"));
    assert_eq!(
        found.gmt_refund_pay.as_deref(),
        Some(first_pay_time.as_str())
    );
    let raw = env
        .client
        .execute_raw(
            "alipay.trade.fastpay.refund.query",
            r#"{"out_trade_no":"REF_1","out_request_no":"R9"}"#,
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(raw.body),
        serde_json::json!({"code":"10000","msg":"Success"}),
        "a refund that does not exist is a bare 10000"
    );
    let err = env
        .client
        .execute(&refund_query("NOPE", "R1"))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_NOT_EXIST");

    let view = env.trade("REF_1").await;
    assert_eq!(view["refund_fee"], "100.00");
    assert_eq!(view["refunds"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn full_refund_without_request_number_and_refund_rules_by_state() {
    let env = start().await;
    env.paid(PayKind::Page, "FULL_1", "12.34").await;
    let r = env
        .client
        .execute(&refund("FULL_1", "12.34", None))
        .await
        .unwrap();
    assert!(r.fund_changed());
    assert_eq!(r.refund_fee.unwrap().to_string(), "12.34");
    // The refund is filed under the trade's own number.
    let q = env
        .client
        .execute(&refund_query("FULL_1", "FULL_1"))
        .await
        .unwrap();
    assert!(q.refund_succeeded());

    // Unpaid trade.
    env.open_link(PayKind::Wap, "UNPAID_1", "5").await;
    let err = env
        .client
        .execute(&refund("UNPAID_1", "5", Some("X")))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_STATUS_ERROR");
    // Unknown trade.
    let err = env
        .client
        .execute(&refund("NEVER", "5", Some("X")))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_NOT_EXIST");
    // Finished trade.
    env.paid(PayKind::Wap, "FIN_1", "5").await;
    let (status, v) = env.act("FIN_1", "finish").await;
    assert_eq!(
        (status, v["trade_status"].as_str()),
        (200, Some("TRADE_FINISHED"))
    );
    let err = env
        .client
        .execute(&refund("FIN_1", "1", Some("X")))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_HAS_FINISHED");

    // A bad amount is a parameter error naming the field.
    let raw = env
        .client
        .execute_raw(
            "alipay.trade.refund",
            r#"{"out_trade_no":"FIN_1","refund_amount":"0.001","out_request_no":"Y"}"#,
            false,
        )
        .await
        .unwrap();
    assert_eq!(raw.body["sub_code"], "ACQ.INVALID_PARAMETER");
    assert!(
        raw.body["sub_msg"]
            .as_str()
            .unwrap()
            .contains("refund_amount")
    );
}

#[tokio::test]
async fn close_rules() {
    let env = start().await;
    env.open_link(PayKind::Wap, "CLOSE_1", "3").await;
    let c = env
        .client
        .execute(&TradeClose {
            out_trade_no: "CLOSE_1".into(),
        })
        .await
        .unwrap();
    assert_eq!(c.out_trade_no.as_deref(), Some("CLOSE_1"));
    assert_eq!(c.trade_no.unwrap().len(), 28);
    let q = env
        .client
        .execute(&TradeQuery::by_out_trade_no("CLOSE_1"))
        .await
        .unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeClosed));
    // Closing again, or closing a paid trade: only WAIT_BUYER_PAY closes.
    let err = env
        .client
        .execute(&TradeClose {
            out_trade_no: "CLOSE_1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_STATUS_ERROR");
    env.paid(PayKind::Wap, "CLOSE_2", "3").await;
    let err = env
        .client
        .execute(&TradeClose {
            out_trade_no: "CLOSE_2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_STATUS_ERROR");
    // A closed trade can no longer be paid.
    let (status, v) = env.act("CLOSE_1", "pay").await;
    assert_eq!(status, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("TRADE_CLOSED"));
}

#[tokio::test]
async fn control_actions_scan_pay_close_finish() {
    let env = start().await;
    // Control close of a link never opened: the trade is created closed, the link is dead.
    let url = env
        .client
        .payment_link(&order(PayKind::Page, "CTL_1", "9.99", "x"))
        .unwrap();
    env.get(&url).await;
    let (status, v) = env.act("CTL_1", "close").await;
    assert_eq!(
        (status, v["trade_status"].as_str()),
        (200, Some("TRADE_CLOSED"))
    );
    let (status, _) = env.act("CTL_1", "close").await;
    assert_eq!(status, 200, "closing a closed trade is a no-op");
    assert_eq!(env.act("CTL_1", "scan").await.0, 409);
    assert_eq!(env.act("CTL_1", "finish").await.0, 409);

    // Precreate → scan → pay → finish; pay twice is a conflict.
    env.client
        .execute(&TradePrecreate {
            out_trade_no: "CTL_2".into(),
            total_amount: Amount::from_yuan_str("1").unwrap(),
            subject: "扫码".into(),
            body: None,
            timeout_express: None,
            time_expire: None,
        })
        .await
        .unwrap();
    let (status, v) = env.act("CTL_2", "scan").await;
    assert_eq!(
        (status, v["trade_status"].as_str()),
        (200, Some("WAIT_BUYER_PAY"))
    );
    assert_eq!(
        env.act("CTL_2", "finish").await.0,
        409,
        "unpaid cannot finish"
    );
    let (status, v) = env.act("CTL_2", "pay").await;
    assert_eq!(
        (status, v["trade_status"].as_str()),
        (200, Some("TRADE_SUCCESS"))
    );
    assert_eq!(v["total_amount"], "1.00");
    assert_eq!(v["method"], "alipay.trade.precreate");
    let (status, v) = env.act("CTL_2", "pay").await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(
        env.act("CTL_2", "close").await.0,
        409,
        "a paid trade is refunded, not closed"
    );
    let (status, v) = env.act("CTL_2", "finish").await;
    assert_eq!(
        (status, v["trade_status"].as_str()),
        (200, Some("TRADE_FINISHED"))
    );

    let (status, v) = env
        .control(
            reqwest::Method::GET,
            &format!("/__emulator/apps/{APP_ID}/trades"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["trades"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn precreate_answers_a_cashier_url_and_guards_its_number() {
    let env = start().await;
    let pre = |no: &str, yuan: &str, subject: &str| TradePrecreate {
        out_trade_no: no.into(),
        total_amount: Amount::from_yuan_str(yuan).unwrap(),
        subject: subject.into(),
        body: None,
        timeout_express: Some("15m".into()),
        time_expire: None,
    };
    let first = env
        .client
        .execute(&pre("PRE_1", "8.88", "咖啡"))
        .await
        .unwrap();
    let qr = first.qr_code.unwrap();
    assert!(qr.starts_with(&format!("{}/qr/bax0", env.base())), "{qr}");
    // No trade before the scan.
    let err = env
        .client
        .execute(&TradeQuery::by_out_trade_no("PRE_1"))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_NOT_EXIST");
    // The same precreate again: the same code.
    let again = env
        .client
        .execute(&pre("PRE_1", "8.88", "咖啡"))
        .await
        .unwrap();
    assert_eq!(again.qr_code.as_deref(), Some(qr.as_str()));
    // Other content under the same number.
    let err = env
        .client
        .execute(&pre("PRE_1", "9.99", "咖啡"))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.CONTEXT_INCONSISTENT");

    // Opening the code is the scan.
    let page = env.get(&qr).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("咖啡") && page.body.contains("¥</small>8.88"));
    let q = env
        .client
        .execute(&TradeQuery::by_out_trade_no("PRE_1"))
        .await
        .unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::WaitBuyerPay));

    env.act("PRE_1", "pay").await;
    let err = env
        .client
        .execute(&pre("PRE_1", "8.88", "咖啡"))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_HAS_SUCCESS");
    // A page-pay link cannot reuse a precreate's number.
    let link = env
        .client
        .payment_link(&order(PayKind::Page, "PRE_2", "1", "x"))
        .unwrap();
    env.client.execute(&pre("PRE_2", "1", "x")).await.unwrap();
    let page = env.get(&link).await;
    assert!(
        page.body.contains("错误代码 ACQ.CONTEXT_INCONSISTENT"),
        "{}",
        page.body
    );
}
