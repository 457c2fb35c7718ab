//! The async client against a local HTTP gateway that verifies our requests and answers with
//! signed bodies, good and bad. Each failure must come back as the right `Error` variant, and a
//! success only after its signature verified.

use std::sync::Arc;
use std::time::Duration;

use alipay_openapi::{
    AlipayClient, Amount, ClientConfig, Error, GatewayRequest, Merchant, PrivateKey, PublicKey,
    ResponseError, SignType, TradeQuery, TradeRefund, TradeStatus, gateway,
};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

const KEYS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/alipay-vectors/keys/"
);

struct Gateway {
    app_public: PublicKey,
    platform: PrivateKey,
    other_platform: PrivateKey,
}

/// Answer according to the order number, so one server covers every case.
async fn gateway_do(
    State(gw): State<Arc<Gateway>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let request = GatewayRequest::from_parts(query.as_deref(), Some(&body)).unwrap();
    let sign_type = request
        .verify(&gw.app_public)
        .expect("the client signs correctly");
    assert_eq!(request.get("charset"), Some("utf-8"));
    assert_eq!(request.get("version"), Some("1.0"));
    assert!(alipay_openapi::time::parse_timestamp(request.get("timestamp").unwrap()).is_some());
    let method = request.get("method").unwrap();
    let biz: serde_json::Value = serde_json::from_str(request.get("biz_content").unwrap()).unwrap();
    let order = biz["out_trade_no"].as_str().unwrap().to_string();
    let key = gateway::response_key(method);
    let sign = |inner: &str, k: &PrivateKey| {
        gateway::signed_response_body(&key, inner, k, sign_type).unwrap()
    };
    let success = gateway::to_alipay_json(&serde_json::json!({
        "code": "10000", "msg": "Success", "out_trade_no": order, "trade_no": "2026112522001400000000000001",
        "trade_status": "TRADE_SUCCESS", "total_amount": "88.80", "fund_change": "Y", "refund_fee": "1.00",
        "notify_url": "https://m.example/n"
    }));
    match order.as_str() {
        "OK" => sign(&success, &gw.platform).into_response(),
        "NOT_EXIST" => sign(
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","out_trade_no":"NOT_EXIST"}"#,
            &gw.platform,
        )
        .into_response(),
        "WRONG_KEY" => sign(&success, &gw.other_platform).into_response(),
        "NO_SIGN" => gateway::response_body(&key, &success, None).into_response(),
        "BAD_SIGN" => gateway::response_body(&key, &success, Some("AAAA")).into_response(),
        "ERROR_RESPONSE" => {
            let inner = r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}"#;
            gateway::signed_response_body("error_response", inner, &gw.platform, sign_type).unwrap().into_response()
        }
        "MALFORMED" => "{\"alipay_trade_query_response\":{\"code\":".into_response(),
        "HTML" => "<html>502 Bad Gateway</html>".into_response(),
        "HTTP_502" => (StatusCode::BAD_GATEWAY, "upstream").into_response(),
        "SLOW" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            sign(&success, &gw.platform).into_response()
        }
        "HUGE" => "x".repeat(2 << 20).into_response(),
        "OTHER_ORDER" => {
            let inner = success.replace("OTHER_ORDER", "SOMEONE_ELSE");
            sign(&inner, &gw.platform).into_response()
        }
        other => panic!("unexpected order {other}"),
    }
}

async fn start() -> (AlipayClient, String) {
    let load_private = |f: &str| {
        PrivateKey::load(f, &std::fs::read_to_string(format!("{KEYS}{f}")).unwrap()).unwrap()
    };
    let gw = Arc::new(Gateway {
        app_public: PublicKey::load(
            "app",
            &std::fs::read_to_string(format!("{KEYS}app-public-spki.pem")).unwrap(),
        )
        .unwrap(),
        platform: load_private("alipay-private-pkcs1.pem"),
        other_platform: load_private("app-private-pkcs1.pem"),
    });
    let app = axum::Router::new()
        .route("/gateway.do", axum::routing::post(gateway_do))
        .with_state(gw);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/gateway.do", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let merchant = Merchant {
        app_id: "2021000000000001".into(),
        private_key: load_private("app-private-pkcs8.b64"),
        sign_type: SignType::Rsa2,
        app_auth_token: None,
    };
    let alipay_public = PublicKey::load(
        "AP_PUB_KEY",
        &std::fs::read_to_string(format!("{KEYS}alipay-public-spki.b64")).unwrap(),
    )
    .unwrap();
    let mut config = ClientConfig::new(merchant, alipay_public, url.clone());
    config.timeout = Duration::from_millis(800);
    (AlipayClient::new(config).unwrap(), url)
}

async fn query(
    client: &AlipayClient,
    order: &str,
) -> Result<alipay_openapi::TradeQueryResponse, Error> {
    client.execute(&TradeQuery::by_out_trade_no(order)).await
}

#[tokio::test]
async fn verified_success_is_typed() {
    let (client, _) = start().await;
    let answer = query(&client, "OK").await.unwrap();
    assert_eq!(answer.trade_status, Some(TradeStatus::TradeSuccess));
    assert_eq!(answer.total_amount.unwrap().to_string(), "88.80");
    let refund = client
        .execute(&TradeRefund {
            out_trade_no: "OK".into(),
            refund_amount: Amount::from_yuan_str("1").unwrap(),
            out_request_no: Some("R1".into()),
            refund_reason: None,
        })
        .await
        .unwrap();
    assert!(refund.fund_changed());
}

#[tokio::test]
async fn business_failures_carry_the_sub_code_after_verification() {
    let (client, _) = start().await;
    let err = query(&client, "NOT_EXIST").await.unwrap_err();
    let business = err.business().expect("business error");
    assert_eq!(business.code, "40004");
    assert_eq!(business.sub_code.as_deref(), Some("ACQ.TRADE_NOT_EXIST"));
    assert_eq!(business.sub_msg.as_deref(), Some("交易不存在"));
    assert!(!err.outcome_unknown());
    let err = query(&client, "ERROR_RESPONSE").await.unwrap_err();
    assert_eq!(
        err.business().unwrap().sub_code.as_deref(),
        Some("isv.invalid-app-id")
    );
}

#[tokio::test]
async fn untrusted_bodies_are_errors_never_successes() {
    let (client, _) = start().await;
    for (order, check) in [
        (
            "WRONG_KEY",
            (|e: &Error| matches!(e, Error::Response(ResponseError::BadSignature(_))))
                as fn(&Error) -> bool,
        ),
        ("BAD_SIGN", |e| {
            matches!(e, Error::Response(ResponseError::BadSignature(_)))
        }),
        ("NO_SIGN", |e| {
            matches!(e, Error::Response(ResponseError::MissingSignature))
        }),
        ("MALFORMED", |e| {
            matches!(e, Error::Response(ResponseError::Malformed(_)))
        }),
        ("HTML", |e| {
            matches!(e, Error::Response(ResponseError::Malformed(_)))
        }),
        ("HTTP_502", |e| matches!(e, Error::HttpStatus(502))),
        ("SLOW", |e| matches!(e, Error::Timeout(_))),
        ("HUGE", |e| matches!(e, Error::TooLarge(_))),
        (
            "OTHER_ORDER",
            |e| matches!(e, Error::Response(ResponseError::Malformed(m)) if m.contains("SOMEONE_ELSE")),
        ),
    ] {
        let err = query(&client, order).await.unwrap_err();
        assert!(check(&err), "{order}: {err:?}");
        assert!(
            err.outcome_unknown(),
            "{order}: the call may have reached the gateway"
        );
    }
    let err = query(&client, "WRONG_KEY").await.unwrap_err();
    assert!(err.to_string().contains("AP_PUB_KEY"), "{err}");
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (client, _) = start().await;
    let mut config = client.config().clone();
    config.gateway_url = format!("http://{addr}/gateway.do");
    let client = AlipayClient::new(config).unwrap();
    let err = query(&client, "OK").await.unwrap_err();
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
    assert!(!err.outcome_unknown(), "nothing was sent");
    // The request URL carries its signature; the error must not (found by the server's
    // gateway-fault and secrets suites: the message reached logs and tool results).
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("sign="), "{text}");
        assert!(!text.contains("gateway.do?"), "{text}");
    }
}
