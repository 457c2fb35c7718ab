//! `/gateway.do`'s common pipeline with hand-made requests: the checks of ALIPAY-PROTOCOL §5.2 in
//! order with Alipay's codes, the answer format (§5.3), and the request log.

mod common;

use std::time::Duration;

use alipay_emulator::AppConfig;
use alipay_openapi::response::{VerifiedResponse, extract_response, verify_response};
use alipay_openapi::{PayKind, SignType, TradeQuery};
use common::*;

const QUERY: &str = "alipay.trade.query";
const BIZ: &str = r#"{"out_trade_no":"NOPE_1"}"#;

fn verified(env: &Env, raw: &Raw, method: &str) -> VerifiedResponse {
    verify_response(
        &raw.body,
        method,
        &env.emu.alipay_public_key(),
        SignType::Rsa2,
    )
    .unwrap_or_else(|e| panic!("{e}: {}", raw.body))
}

/// Params as given (no signing), then the answer's sub_code.
async fn sub_code_of(env: &Env, params: &[(&str, &str)]) -> (bool, String, String) {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let raw = env.post_form(&params).await;
    assert_eq!(raw.status, 200);
    let v = verified(env, &raw, QUERY);
    (
        v.is_error_response,
        v.body["code"].as_str().unwrap().to_string(),
        v.body["sub_code"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn checks_run_in_alipays_order_first_failure_wins() {
    let env = start().await;
    let ts = alipay_openapi::time::timestamp_now();
    // Each step fixes the previous step's problem and leaves every later one broken.
    // (parameters, under error_response, code, sub_code)
    type Step<'a> = (Vec<(&'a str, &'a str)>, bool, &'a str, &'a str);
    let steps: Vec<Step<'_>> = vec![
        (
            vec![("biz_content", "x")],
            true,
            "40001",
            "isv.missing-method",
        ),
        (
            vec![("method", QUERY)],
            false,
            "40001",
            "isv.missing-app-id",
        ),
        (
            vec![("method", QUERY), ("app_id", "2021999999999999")],
            false,
            "40002",
            "isv.invalid-app-id",
        ),
        (
            vec![("method", QUERY), ("app_id", APP_ID)],
            false,
            "40001",
            "isv.missing-signature",
        ),
        (
            vec![("method", QUERY), ("app_id", APP_ID), ("sign", "AAAA")],
            false,
            "40001",
            "isv.missing-signature-type",
        ),
        (
            vec![
                ("method", QUERY),
                ("app_id", APP_ID),
                ("sign", "AAAA"),
                ("sign_type", "MD5"),
            ],
            false,
            "40002",
            "isv.invalid-signature-type",
        ),
        (
            vec![
                ("method", QUERY),
                ("app_id", APP_ID),
                ("sign", "AAAA"),
                ("sign_type", "RSA2"),
            ],
            false,
            "40001",
            "isv.missing-timestamp",
        ),
        (
            vec![
                ("method", QUERY),
                ("app_id", APP_ID),
                ("sign", "AAAA"),
                ("sign_type", "RSA2"),
                ("timestamp", "2026/11/25 10:00:00"),
            ],
            false,
            "40002",
            "isv.invalid-timestamp",
        ),
        (
            vec![
                ("method", QUERY),
                ("app_id", APP_ID),
                ("sign", "AAAA"),
                ("sign_type", "RSA2"),
                ("timestamp", &ts),
            ],
            false,
            "40001",
            "isv.missing-version",
        ),
        (
            vec![
                ("method", QUERY),
                ("app_id", APP_ID),
                ("sign", "AAAA"),
                ("sign_type", "RSA2"),
                ("timestamp", &ts),
                ("version", "1.0"),
                ("charset", "latin1"),
            ],
            false,
            "40002",
            "isv.invalid-charset",
        ),
        (
            vec![
                ("method", QUERY),
                ("app_id", APP_ID),
                ("sign", "AAAA"),
                ("sign_type", "RSA2"),
                ("timestamp", &ts),
                ("version", "1.0"),
                ("charset", "utf-8"),
            ],
            false,
            "40002",
            "isv.invalid-signature",
        ),
    ];
    for (params, error_response, code, sub_code) in steps {
        let got = sub_code_of(&env, &params).await;
        assert_eq!(
            got,
            (error_response, code.to_string(), sub_code.to_string()),
            "{params:?}"
        );
    }

    // Signed correctly but an unknown method: under error_response.
    let raw = env
        .post_form(&signed_params("alipay.trade.nope", BIZ, &[]))
        .await;
    let v = verified(&env, &raw, "alipay.trade.nope");
    assert!(v.is_error_response);
    assert_eq!(v.body["sub_code"], "isv.invalid-method");
    assert!(raw.body.starts_with(r#"{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-method","sub_msg":"不存在的方法名"},"sign":""#), "{}", raw.body);

    // Signed correctly, biz_content not a JSON object.
    for bad in ["not json", "[1]"] {
        let raw = env.post_form(&signed_params(QUERY, bad, &[])).await;
        let v = verified(&env, &raw, QUERY);
        assert_eq!(
            (v.body["code"].as_str(), v.body["sub_code"].as_str()),
            (Some("40002"), Some("isv.invalid-parameter")),
            "{bad}"
        );
    }

    // Everything right: the business answer.
    let raw = env.post_form(&signed_params(QUERY, BIZ, &[])).await;
    let v = verified(&env, &raw, QUERY);
    assert_eq!(v.body["sub_code"], "ACQ.TRADE_NOT_EXIST");
}

#[tokio::test]
async fn invalid_signature_echoes_the_sign_content_escaped() {
    let env = start().await;
    let mut params = signed_params(QUERY, BIZ, &[("notify_url", "")]);
    // Tamper after signing: the gateway's content now differs from what was signed.
    params
        .iter_mut()
        .find(|(k, _)| k == "biz_content")
        .unwrap()
        .1 = r#"{"out_trade_no":"OTHER"}"#.into();
    let raw = env.post_form(&params).await;
    let v = verified(&env, &raw, QUERY);
    assert_eq!(v.body["code"], "40002");
    assert_eq!(v.body["sub_code"], "isv.invalid-signature");
    let ts = params
        .iter()
        .find(|(k, _)| k == "timestamp")
        .unwrap()
        .1
        .clone();
    // Sorted, `sign` and the empty notify_url left out, `&` and `"` HTML-escaped.
    let expected = format!(
        "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：app_id={APP_ID}&amp;biz_content={{&quot;out_trade_no&quot;:&quot;OTHER&quot;}}&amp;charset=utf-8&amp;method=alipay.trade.query&amp;sign_type=RSA2&amp;timestamp={ts}&amp;version=1.0"
    );
    assert_eq!(v.body["sub_msg"], expected.as_str());
}

#[tokio::test]
async fn empty_values_are_dropped_from_the_sign_content() {
    let env = start().await;
    // Signed without the empty parameter, sent with it: accepted (the documented gateway rule).
    let mut params = signed_params(QUERY, BIZ, &[]);
    params.push(("return_url".into(), String::new()));
    let v = verified(&env, &env.post_form(&params).await, QUERY);
    assert_eq!(v.body["sub_code"], "ACQ.TRADE_NOT_EXIST");

    // Signed *with* `return_url=` (what the Node SDK does): the gateway's content differs.
    let mut params: Vec<(String, String)> = signed_params(QUERY, BIZ, &[]);
    params.retain(|(k, _)| k != "sign");
    params.push(("return_url".into(), String::new()));
    let content_with_empty = {
        let mut pairs: Vec<_> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.sort();
        pairs.join("&")
    };
    let sign = app_private()
        .sign(SignType::Rsa2, &content_with_empty)
        .unwrap();
    params.push(("sign".into(), sign));
    let v = verified(&env, &env.post_form(&params).await, QUERY);
    assert_eq!(v.body["sub_code"], "isv.invalid-signature");
}

#[tokio::test]
async fn answers_are_formatted_and_signed_like_alipays() {
    let env = start().await;
    let raw = env.post_form(&signed_params(QUERY, BIZ, &[])).await;
    assert_eq!(raw.headers["content-type"], "text/html;charset=utf-8");
    let trace = raw.headers["trace_id"].to_str().unwrap();
    assert!(
        trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
        "{trace}"
    );
    // Key order, raw UTF-8, compact.
    assert!(raw.body.starts_with(r#"{"alipay_trade_query_response":{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","buyer_pay_amount":"0.00","invoice_amount":"0.00","out_trade_no":"NOPE_1","point_amount":"0.00","receipt_amount":"0.00"},"sign":""#), "{}", raw.body);
    // The signature covers exactly the inner text.
    let extracted = extract_response(&raw.body, QUERY).unwrap();
    env.emu
        .alipay_public_key()
        .verify(
            SignType::Rsa2,
            extracted.signed_content,
            extracted.sign.as_deref().unwrap(),
        )
        .unwrap();

    // `/` is written `\/` (precreate's qr_code is a URL) and still verifies.
    let raw = env
        .post_form(&signed_params(
            "alipay.trade.precreate",
            r#"{"out_trade_no":"P_SLASH","total_amount":"1.00","subject":"扫码"}"#,
            &[],
        ))
        .await;
    assert!(
        raw.body.contains(r#""qr_code":"http:\/\/127.0.0.1:"#),
        "{}",
        raw.body
    );
    let v = verified(&env, &raw, "alipay.trade.precreate");
    assert!(
        v.body["qr_code"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
}

#[tokio::test]
async fn get_requests_and_merged_query_and_body_work() {
    let env = start().await;
    let params = signed_params(QUERY, BIZ, &[]);
    let url = format!("{}?{}", env.emu.gateway_url(), form(&params));
    let v = verified(&env, &env.get(&url).await, QUERY);
    assert_eq!(v.body["sub_code"], "ACQ.TRADE_NOT_EXIST");

    // Common params in the query, biz_content in the body (what the SDKs send).
    let (common, body): (Vec<_>, Vec<_>) =
        params.into_iter().partition(|(k, _)| k != "biz_content");
    let raw = env
        .http
        .post(format!("{}?{}", env.emu.gateway_url(), form(&common)))
        .header(
            "content-type",
            "application/x-www-form-urlencoded;charset=utf-8",
        )
        .body(form(&body))
        .send()
        .await
        .unwrap();
    let raw = Raw {
        status: raw.status().as_u16(),
        headers: raw.headers().clone(),
        body: raw.text().await.unwrap(),
    };
    assert_eq!(
        verified(&env, &raw, QUERY).body["sub_code"],
        "ACQ.TRADE_NOT_EXIST"
    );

    // The same parameter twice with different values: which one was signed? Refused.
    let mut twice = signed_params(QUERY, BIZ, &[]);
    twice.push(("app_id".into(), "2021000000000002".into()));
    let raw = env.post_form(&twice).await;
    let v = verified(&env, &raw, QUERY);
    assert!(v.is_error_response);
    assert_eq!(v.body["sub_code"], "isv.invalid-parameter");
    assert!(v.body["sub_msg"].as_str().unwrap().contains("app_id"));
}

#[tokio::test]
async fn legacy_rsa_requests_are_answered_with_sha1_signatures() {
    let env = start().await;
    let client = client_for(&env.emu, SignType::Rsa, Duration::from_secs(5));
    let err = client
        .execute(&TradeQuery::by_out_trade_no("NOPE_RSA"))
        .await
        .unwrap_err();
    assert_eq!(
        err.business().unwrap().sub_code.as_deref(),
        Some("ACQ.TRADE_NOT_EXIST"),
        "verified with SHA1withRSA: {err}"
    );
}

#[tokio::test]
async fn app_knobs_sign_type_permissions_and_timestamp_skew() {
    let mut config = config();
    config.apps[0].sign_type = Some(SignType::Rsa2);
    config.apps[0].disabled_methods = vec!["alipay.trade.close".into()];
    config.timestamp_skew = Some(Duration::from_secs(600));
    let env = start_with(config).await;

    let client = client_for(&env.emu, SignType::Rsa, Duration::from_secs(5));
    let err = client
        .execute(&TradeQuery::by_out_trade_no("X"))
        .await
        .unwrap_err();
    assert_eq!(
        err.business().unwrap().sub_code.as_deref(),
        Some("isv.missing-signature-config")
    );

    let err = env
        .client
        .execute(&alipay_openapi::TradeClose {
            out_trade_no: "X".into(),
        })
        .await
        .unwrap_err();
    let e = err.business().unwrap();
    assert_eq!(
        (e.code.as_str(), e.sub_code.as_deref()),
        ("40006", Some("isv.insufficient-isv-permissions"))
    );

    // A UTC wall-clock timestamp (an SDK on a UTC host) is 8 hours off Beijing time.
    let utc = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let params = with_param(signed_params(QUERY, BIZ, &[]), "timestamp", &utc);
    let v = verified(&env, &env.post_form(&params).await, QUERY);
    assert_eq!(v.body["sub_code"], "isv.invalid-timestamp");
    assert!(v.body["sub_msg"].as_str().unwrap().contains("UTC+8"));

    // The default config only checks the layout.
    let lenient = start().await;
    let v = verified(&lenient, &lenient.post_form(&params).await, QUERY);
    assert_eq!(v.body["sub_code"], "ACQ.TRADE_NOT_EXIST");
}

#[tokio::test]
async fn gbk_is_accepted_for_ascii_requests_only() {
    let env = start().await;
    let params = with_param(signed_params(QUERY, BIZ, &[]), "charset", "GBK");
    let v = verified(&env, &env.post_form(&params).await, QUERY);
    assert_eq!(v.body["sub_code"], "ACQ.TRADE_NOT_EXIST");
    let params = with_param(
        signed_params(QUERY, r#"{"out_trade_no":"中文"}"#, &[]),
        "charset",
        "GBK",
    );
    let v = verified(&env, &env.post_form(&params).await, QUERY);
    assert_eq!(v.body["sub_code"], "isv.invalid-charset");
}

#[tokio::test]
async fn page_api_check_failures_render_alipays_error_page() {
    let env = start().await;
    let url = env
        .client
        .payment_link(&order(PayKind::Wap, "W_BAD_SIGN", "1.00", "标题"))
        .unwrap();
    let tampered = url.replace("W_BAD_SIGN", "W_OTHER");
    let page = env.get(&tampered).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.body.contains("错误代码 isv.invalid-signature"),
        "{}",
        page.body
    );
    // The page shows the content the gateway built (escaped once, for HTML).
    assert!(page.body.contains("错误原因: 验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：alipay_sdk=alipay-sdk-nodejs-4.0.0&amp;app_id="), "{}", page.body);
    assert!(page.body.contains("W_OTHER"));
}

#[tokio::test]
async fn request_log_records_every_hit_with_verdict_and_sign_content() {
    let env = start().await;
    let _ = env.post_form(&signed_params(QUERY, BIZ, &[])).await;
    let mut bad = signed_params(QUERY, BIZ, &[]);
    bad.iter_mut().find(|(k, _)| k == "sign").unwrap().1 = "AAAA".into();
    let _ = env.post_form(&bad).await;
    env.open_link(PayKind::Page, "LOGGED_1", "2.00").await;
    let log = env.requests().await;
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[0]["method"], QUERY);
    assert_eq!(log[0]["app_id"], APP_ID);
    assert_eq!(log[0]["out_trade_no"], "NOPE_1");
    assert_eq!(log[0]["verdict"], "ok");
    assert_eq!(log[0]["code"], "40004");
    assert_eq!(log[0]["sub_code"], "ACQ.TRADE_NOT_EXIST");
    assert!(
        log[0]["sign_content"]
            .as_str()
            .unwrap()
            .starts_with(&format!("app_id={APP_ID}&biz_content="))
    );
    assert_eq!(log[1]["verdict"], "isv.invalid-signature");
    assert_eq!(log[1]["code"], "40002");
    assert_eq!(log[2]["method"], "alipay.trade.page.pay");
    assert_eq!(log[2]["http_method"], "GET");
    assert_eq!(
        (log[2]["verdict"].as_str(), log[2]["code"].as_str()),
        (Some("ok"), Some("10000"))
    );

    let (status, v) = env
        .control(reqwest::Method::DELETE, "/__emulator/requests", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(env.requests().await.is_empty());
}

#[tokio::test]
async fn keys_apps_and_unknown_control_paths() {
    let env = start().await;
    let (status, v) = env
        .control(reqwest::Method::GET, "/__emulator/keys", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["alipay_public_key"],
        env.emu.alipay_public_key().to_spki_base64().as_str()
    );
    assert!(
        v["alipay_public_key_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n")
    );
    let (_, v) = env
        .control(reqwest::Method::GET, "/__emulator/apps", None)
        .await;
    assert_eq!(v["apps"][0]["app_id"], APP_ID);
    assert_eq!(
        v["apps"][0]["seller_id"],
        alipay_emulator::derived_seller_id(APP_ID).as_str()
    );
    let (status, v) = env
        .control(reqwest::Method::GET, "/__emulator/apps/nope/trades/X", None)
        .await;
    assert_eq!(status, 404);
    assert!(v["error"].as_str().unwrap().contains("not registered"));
    let (status, _) = env.act("NEVER_SEEN", "pay").await;
    assert_eq!(status, 404);
    let (status, v) = env.act("NEVER_SEEN", "dance").await;
    assert_eq!(status, 404, "{v}");
}

#[tokio::test]
async fn start_refuses_bad_app_configs() {
    let mut config = config();
    config.apps.push(AppConfig::new(APP_ID, app_public()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = alipay_emulator::Emulator::start(config, listener)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("registered twice"), "{err}");

    let mut config = common::config();
    config.apps[0].seller_id = "12345".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = alipay_emulator::Emulator::start(config, listener)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("seller_id"), "{err}");
}
