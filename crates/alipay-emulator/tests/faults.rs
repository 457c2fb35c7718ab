//! Fault injection: every kind, the error the `alipay-openapi` client reports for it, whether the
//! request was carried out (`process`), counting (`times`), method matching, and clearing.

mod common;

use std::time::Duration;

use alipay_openapi::{
    Amount, Error, PayKind, ResponseError, SignType, SignatureError, TradeQuery, TradeRefund,
};
use common::*;
use serde_json::json;

async fn query(env: &Env, no: &str) -> Result<alipay_openapi::TradeQueryResponse, Error> {
    env.client.execute(&TradeQuery::by_out_trade_no(no)).await
}

fn refund(no: &str, req: &str) -> TradeRefund {
    TradeRefund {
        out_trade_no: no.into(),
        refund_amount: Amount::from_yuan_str("1").unwrap(),
        out_request_no: Some(req.into()),
        refund_reason: None,
    }
}

#[tokio::test]
async fn every_fault_kind_is_reported_as_the_right_client_error() {
    let env = start().await;
    every_fault_kind_through(&env, &env.client).await;
}

/// The in-process gateway (what local mode's own client uses) breaks its answers exactly as the
/// HTTP one does, and the client reports each the same way.
#[tokio::test]
async fn every_fault_kind_is_reported_the_same_in_process() {
    let env = start().await;
    let client = in_process_client_for(&env.emu, Duration::from_secs(5));
    every_fault_kind_through(&env, &client).await;
}

async fn every_fault_kind_through(env: &Env, client: &alipay_openapi::AlipayClient) {
    let query =
        |no: &'static str| async move { client.execute(&TradeQuery::by_out_trade_no(no)).await };
    env.paid(PayKind::Wap, "F_1", "10").await;
    type Check = fn(&Error) -> bool;
    let cases: Vec<(serde_json::Value, Check)> = vec![
        (json!({"kind":"http_500"}), |e| {
            matches!(e, Error::HttpStatus(500))
        }),
        (json!({"kind":"http_502"}), |e| {
            matches!(e, Error::HttpStatus(502))
        }),
        (json!({"kind":"bad_sign"}), |e| {
            matches!(
                e,
                Error::Response(ResponseError::BadSignature(SignatureError::Mismatch(
                    SignType::Rsa2
                )))
            )
        }),
        (json!({"kind":"wrong_key"}), |e| {
            matches!(e, Error::Response(ResponseError::BadSignature(_)))
        }),
        (json!({"kind":"no_sign"}), |e| {
            matches!(e, Error::Response(ResponseError::MissingSignature))
        }),
        (json!({"kind":"malformed_json"}), |e| {
            matches!(e, Error::Response(ResponseError::Malformed(_)))
        }),
        (
            json!({"kind":"other_order"}),
            |e| matches!(e, Error::Response(ResponseError::Malformed(m)) if m.contains("answered about order") && m.contains("F_1_OTHER")),
        ),
        (json!({"kind":"huge_body"}), |e| {
            matches!(e, Error::TooLarge(_))
        }),
        (json!({"kind":"truncated"}), |e| {
            matches!(e, Error::Transport(_))
        }),
        (json!({"kind":"business"}), |e| {
            e.business().is_some_and(|b| {
                b.code == "40004"
                    && b.sub_code.as_deref() == Some("ACQ.SYSTEM_ERROR")
                    && b.sub_msg.as_deref() == Some("系统错误")
            })
        }),
        (
            json!({"kind":"business","sub_code":"ACQ.SELLER_BALANCE_NOT_ENOUGH"}),
            |e| {
                e.business()
                    .is_some_and(|b| b.sub_code.as_deref() == Some("ACQ.SELLER_BALANCE_NOT_ENOUGH"))
            },
        ),
        (json!({"kind":"error_response"}), |e| {
            e.business().is_some_and(|b| {
                b.code == "20000" && b.sub_code.as_deref() == Some("isp.unknow-error")
            })
        }),
        (
            json!({"kind":"error_response","sub_code":"aop.invalid-auth-token"}),
            |e| {
                e.business().is_some_and(|b| {
                    b.code == "20001" && b.sub_code.as_deref() == Some("aop.invalid-auth-token")
                })
            },
        ),
    ];
    for (mut spec, check) in cases {
        spec["method"] = json!("alipay.trade.query");
        env.fault(spec.clone()).await;
        let err = query("F_1").await.unwrap_err();
        assert!(check(&err), "{spec}: {err:?}");
        // A garbled or lost answer never proves that nothing happened; a definite refusal does.
        let definite = ["ACQ.SELLER_BALANCE_NOT_ENOUGH", "aop.invalid-auth-token"]
            .iter()
            .any(|c| spec["sub_code"] == *c);
        assert_eq!(err.outcome_unknown(), !definite, "{spec}");
        // The fault was used up: the next call is answered normally.
        let ok = query("F_1").await.unwrap();
        assert_eq!(ok.out_trade_no.as_deref(), Some("F_1"), "{spec}");
    }
    let log = env.requests().await;
    assert!(log.iter().any(|r| r["fault"] == "huge_body"));
}

#[tokio::test]
async fn timeout_holds_the_answer_and_still_processes_the_request() {
    let env = start().await;
    env.paid(PayKind::Wap, "F_T", "10").await;
    env.fault(json!({"method":"alipay.trade.refund","kind":"timeout","delay_ms":1500}))
        .await;
    let impatient = client_for(&env.emu, SignType::Rsa2, Duration::from_millis(300));
    let err = impatient.execute(&refund("F_T", "R1")).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    // The refund happened although its answer was lost: the retry says fund_change N.
    let retry = env.client.execute(&refund("F_T", "R1")).await.unwrap();
    assert_eq!(retry.fund_change.as_deref(), Some("N"));
    assert_eq!(retry.refund_fee.unwrap().to_string(), "1.00");
}

#[tokio::test]
async fn in_process_a_timed_out_call_is_still_carried_out_and_logged() {
    let env = start().await;
    env.paid(PayKind::Wap, "F_TI", "10").await;
    env.fault(json!({"method":"alipay.trade.refund","kind":"timeout","delay_ms":1500}))
        .await;
    let impatient = in_process_client_for(&env.emu, Duration::from_millis(300));
    let err = impatient.execute(&refund("F_TI", "R1")).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    // The caller gave up, but the gateway did not: the refund stands, and the retry says so.
    let retry = in_process_client_for(&env.emu, Duration::from_secs(5))
        .execute(&refund("F_TI", "R1"))
        .await
        .unwrap();
    assert_eq!(retry.fund_change.as_deref(), Some("N"));
    let log = env.requests().await;
    let refunds = log
        .iter()
        .filter(|r| r["method"] == "alipay.trade.refund")
        .count();
    assert_eq!(refunds, 2, "both calls are in the request log: {log:?}");
}

#[tokio::test]
async fn the_in_process_gateway_answers_only_for_its_own_address() {
    let env = start().await;
    let gateway = env.emu.in_process();
    let url = "http://127.0.0.1:1/gateway.do?sign=SECRET";
    let err = alipay_openapi::Transport::post(&gateway, url, String::new(), 1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

#[tokio::test]
async fn process_decides_whether_the_gateway_acted() {
    let env = start().await;
    env.paid(PayKind::Wap, "F_P", "10").await;
    let refunds = |v: serde_json::Value| v["refunds"].as_array().unwrap().len();

    // Refusals do not act by default.
    env.fault(json!({"method":"alipay.trade.refund","kind":"http_500"}))
        .await;
    assert!(matches!(
        env.client.execute(&refund("F_P", "R1")).await,
        Err(Error::HttpStatus(500))
    ));
    assert_eq!(refunds(env.trade("F_P").await), 0);
    env.fault(json!({"method":"alipay.trade.refund","kind":"business"}))
        .await;
    assert!(env.client.execute(&refund("F_P", "R1")).await.is_err());
    assert_eq!(refunds(env.trade("F_P").await), 0);
    // …unless told to.
    env.fault(json!({"method":"alipay.trade.refund","kind":"business","process":true}))
        .await;
    assert!(env.client.execute(&refund("F_P", "R1")).await.is_err());
    assert_eq!(refunds(env.trade("F_P").await), 1);

    // Lost answers act by default (the answer is lost, not the refund)…
    env.fault(json!({"method":"alipay.trade.refund","kind":"bad_sign"}))
        .await;
    assert!(env.client.execute(&refund("F_P", "R2")).await.is_err());
    assert_eq!(refunds(env.trade("F_P").await), 2);
    // …unless told not to.
    env.fault(json!({"method":"alipay.trade.refund","kind":"truncated","process":false}))
        .await;
    assert!(matches!(
        env.client.execute(&refund("F_P", "R3")).await,
        Err(Error::Transport(_))
    ));
    assert_eq!(refunds(env.trade("F_P").await), 2);
}

#[tokio::test]
async fn times_method_matching_listing_and_clearing() {
    let env = start().await;
    env.fault(json!({"method":"alipay.trade.refund","kind":"http_502","times":2}))
        .await;
    // Another method is not affected.
    assert!(query(&env, "NONE").await.unwrap_err().business().is_some());
    for _ in 0..2 {
        assert!(matches!(
            env.client.execute(&refund("NONE", "R")).await,
            Err(Error::HttpStatus(502))
        ));
    }
    let err = env.client.execute(&refund("NONE", "R")).await.unwrap_err();
    assert_eq!(
        err.business().unwrap().sub_code.as_deref(),
        Some("ACQ.TRADE_NOT_EXIST")
    );

    // Any method, listed, then cleared.
    env.fault(json!({"kind":"no_sign","times":5})).await;
    let (_, v) = env
        .control(reqwest::Method::GET, "/__emulator/faults", None)
        .await;
    assert_eq!(v["faults"][0]["remaining"], 5);
    assert_eq!(v["faults"][0]["process"], true);
    assert!(matches!(
        query(&env, "NONE").await,
        Err(Error::Response(ResponseError::MissingSignature))
    ));
    let (status, _) = env
        .control(reqwest::Method::DELETE, "/__emulator/faults", None)
        .await;
    assert_eq!(status, 200);
    assert!(query(&env, "NONE").await.unwrap_err().business().is_some());

    // Bad specs are refused with a reason.
    for (spec, words) in [
        (json!({"kind":"explode"}), "unknown variant"),
        (
            json!({"kind":"http_500","method":"alipay.trade.wap.pay"}),
            "not a JSON API",
        ),
        (json!({"kind":"http_500","times":0}), "times"),
        (json!({"kind":"http_500","colour":"red"}), "unknown field"),
    ] {
        let (status, v) = env
            .control(
                reqwest::Method::POST,
                "/__emulator/faults",
                Some(spec.clone()),
            )
            .await;
        assert_eq!(status, 400, "{spec}");
        assert!(v["error"].as_str().unwrap().contains(words), "{spec}: {v}");
    }
}

#[tokio::test]
async fn a_held_answer_is_released_at_shutdown() {
    let env = start().await;
    env.fault(json!({"method":"alipay.trade.query","kind":"timeout","delay_ms":600000}))
        .await;
    let patient = client_for(&env.emu, SignType::Rsa2, Duration::from_secs(120));
    let call =
        tokio::spawn(async move { patient.execute(&TradeQuery::by_out_trade_no("HELD")).await });
    // Shut down once the request is in (it is logged before the answer is held).
    eventually(Duration::from_secs(10), || async {
        (!env.requests().await.is_empty()).then_some(())
    })
    .await;
    env.emu.shutdown().await;
    let answer = call.await.unwrap();
    assert_eq!(
        answer
            .unwrap_err()
            .business()
            .and_then(|b| b.sub_code.clone())
            .as_deref(),
        Some("ACQ.TRADE_NOT_EXIST"),
        "the held answer was sent, not cut"
    );
}
