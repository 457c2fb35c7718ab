//! Known-answer vectors made with the official Alipay Node SDK 4.14.0 (`testdata/alipay-vectors/`).
//! These are the tests that catch a symmetric bug: our client and our emulator share this crate,
//! so only an outside answer proves the bytes are right.

use std::path::{Path, PathBuf};

use alipay_openapi::{
    Amount, AmountStyle, ApiRequest, GatewayRequest, Merchant, NODE_SDK_ID, PayKind, PayOrder,
    PrivateKey, PublicKey, RefundQuery, RequestOptions, SignType, SignedFields, TradeQuery,
    TradeRefund, response, sign_content,
};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/alipay-vectors");
    assert!(
        dir.join("README.md").is_file(),
        "the vector copy is missing at {}: it must be in the repository (copied from ../shared/vectors)",
        dir.display()
    );
    dir
}

fn load(name: &str) -> Vec<Value> {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).unwrap();
    let cases = json["cases"].as_array().expect("cases").clone();
    assert!(!cases.is_empty(), "{name} has no cases");
    cases
}

fn key_text(rel: &str) -> String {
    std::fs::read_to_string(vectors_dir().join(rel)).unwrap()
}

fn sign_type(case: &Value) -> SignType {
    case["sign_type"].as_str().unwrap().parse().unwrap()
}

#[test]
fn request_signing_matches_the_node_sdk_byte_for_byte() {
    for case in load("request-signing.json") {
        let name = case["name"].as_str().unwrap();
        let params = case["params"].as_object().unwrap();
        let content = sign_content(
            params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap())),
        );
        assert_eq!(
            content,
            case["sign_content"].as_str().unwrap(),
            "{name}: sign content"
        );

        let key = PrivateKey::load(
            "vector key",
            &key_text(case["private_key"].as_str().unwrap()),
        )
        .unwrap();
        let sign = key.sign(sign_type(&case), &content).unwrap();
        assert_eq!(sign, case["sign"].as_str().unwrap(), "{name}: signature");

        // The merchant-side builder produces the same parameters and signature from the typed parts.
        let merchant = Merchant {
            app_id: params["app_id"].as_str().unwrap().into(),
            private_key: key,
            sign_type: sign_type(&case),
            app_auth_token: params
                .get("app_auth_token")
                .and_then(Value::as_str)
                .map(Into::into),
        };
        let signed = merchant
            .sign_request(
                params["method"].as_str().unwrap(),
                params["biz_content"].as_str().unwrap(),
                RequestOptions {
                    notify_url: params.get("notify_url").and_then(Value::as_str),
                    return_url: params.get("return_url").and_then(Value::as_str),
                },
                params["timestamp"].as_str().unwrap(),
                None,
            )
            .unwrap();
        let sent: Vec<(&str, &str)> = signed.params().collect();
        assert_eq!(
            sent.len(),
            params.len() + 1,
            "{name}: every parameter and sign"
        );
        for (k, v) in params {
            assert!(
                sent.contains(&(k.as_str(), v.as_str().unwrap())),
                "{name}: {k}"
            );
        }
        assert!(
            sent.contains(&("sign", case["sign"].as_str().unwrap())),
            "{name}: builder sign"
        );
    }
}

#[test]
fn typed_requests_write_the_vector_biz_content() {
    let cases = load("request-signing.json");
    let biz = |name: &str| -> String {
        let case = cases.iter().find(|c| c["name"] == name).unwrap();
        case["params"]["biz_content"].as_str().unwrap().to_string()
    };
    assert_eq!(
        TradeQuery::by_out_trade_no("ORDER-20261125-0001").biz_content(),
        biz("trade query, RSA (SHA1)")
    );
    let refund = TradeRefund {
        out_trade_no: "ORDER-20261125-0001".into(),
        refund_amount: Amount::from_yuan_str("10").unwrap(),
        out_request_no: Some("R-0001".into()),
        refund_reason: Some("客戶取消部分需求".into()),
    };
    assert_eq!(refund.biz_content(), biz("refund, RSA2"));
    let refund_query = RefundQuery {
        out_trade_no: "ORDER-20261125-0001".into(),
        out_request_no: "R-0001".into(),
        query_options: Some(vec!["gmt_refund_pay".into()]),
    };
    assert_eq!(
        refund_query.biz_content(),
        biz("refund query, RSA2, app_auth_token")
    );
    let order = PayOrder {
        kind: PayKind::Page,
        out_trade_no: "ORDER-20261125-0001".into(),
        total_amount: Amount::from_yuan_str("88.88").unwrap(),
        subject: "定製插畫：貓咪肖像".into(),
        body: None,
        timeout_express: None,
        query_options: None,
        amount_style: AmountStyle::String,
        time_expire: None,
    };
    assert_eq!(order.biz_content(), biz("page pay, RSA2, Chinese title"));
}

#[test]
fn page_pay_urls_verify_and_tampered_ones_fail() {
    let app_public =
        PublicKey::load("app public key", &key_text("keys/app-public-spki.b64")).unwrap();
    for case in load("page-pay-urls.json") {
        let method = case["method"].as_str().unwrap();
        let url = case["url"].as_str().unwrap();
        let request = GatewayRequest::from_url(url).unwrap();
        assert_eq!(
            request.verify(&app_public).is_ok(),
            case["valid"].as_bool().unwrap(),
            "{method}"
        );
        let tampered = GatewayRequest::from_url(case["tampered_url"].as_str().unwrap()).unwrap();
        assert_eq!(
            tampered.verify(&app_public).is_ok(),
            case["tampered_valid"].as_bool().unwrap(),
            "{method} tampered"
        );
        let keys: Vec<&str> = request.params().map(|(k, _)| k).collect();
        let expected: Vec<&str> = case["query_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(keys, expected, "{method}: parameter order");
    }
}

/// Our link builder, given the vector's parts, writes the Node SDK's URL exactly: parameter order,
/// `+` for spaces in the query part, `encodeURIComponent` for the tail.
#[test]
fn payment_links_are_byte_identical_to_the_node_sdk() {
    let app_key = PrivateKey::load("app key", &key_text("keys/app-private-pkcs8.b64")).unwrap();
    for case in load("page-pay-urls.json") {
        let url = case["url"].as_str().unwrap();
        let request = GatewayRequest::from_url(url).unwrap();
        let biz: Value = serde_json::from_str(request.get("biz_content").unwrap()).unwrap();
        let kind = PayKind::from_method(case["method"].as_str().unwrap()).unwrap();
        assert_eq!(biz["product_code"], kind.product_code());
        let order = PayOrder {
            kind,
            out_trade_no: biz["out_trade_no"].as_str().unwrap().into(),
            total_amount: Amount::from_json(&biz["total_amount"]).unwrap(),
            subject: biz["subject"].as_str().unwrap().into(),
            body: None,
            timeout_express: None,
            query_options: None,
            amount_style: AmountStyle::String,
            time_expire: None,
        };
        assert_eq!(order.biz_content(), request.get("biz_content").unwrap());
        let merchant = Merchant {
            app_id: request.get("app_id").unwrap().into(),
            private_key: app_key.clone(),
            sign_type: SignType::Rsa2,
            app_auth_token: None,
        };
        let signed = merchant
            .sign_request(
                kind.method(),
                &order.biz_content(),
                RequestOptions {
                    notify_url: request.get("notify_url"),
                    return_url: request.get("return_url"),
                },
                request.get("timestamp").unwrap(),
                Some(NODE_SDK_ID),
            )
            .unwrap();
        let gateway = url.split('?').next().unwrap();
        assert_eq!(signed.page_url(gateway), url);
    }
}

#[test]
fn responses_extract_the_exact_signed_text_and_verify_as_given() {
    for case in load("responses.json") {
        let name = case["name"].as_str().unwrap();
        let body = case["body"].as_str().unwrap();
        let method = case["method"].as_str().unwrap();
        let raw = response::extract_response(body, method).unwrap();
        assert_eq!(
            raw.signed_content,
            case["signed_content"].as_str().unwrap(),
            "{name}"
        );
        let key = PublicKey::load(
            "AP_PUB_KEY",
            &key_text(case["alipay_public_key"].as_str().unwrap()),
        )
        .unwrap();
        let verified = response::verify_response(body, method, &key, sign_type(&case));
        assert_eq!(
            verified.is_ok(),
            case["valid"].as_bool().unwrap(),
            "{name}: {verified:?}"
        );
        // The other algorithm never verifies the same bytes.
        let other = match sign_type(&case) {
            SignType::Rsa2 => SignType::Rsa,
            SignType::Rsa => SignType::Rsa2,
            t => unreachable!("{name}: the vectors sign with RSA2 or RSA, not {t}"),
        };
        assert!(
            response::verify_response(body, method, &key, other).is_err(),
            "{name}: wrong algorithm"
        );
    }
}

#[test]
fn notifications_build_the_signed_content_and_verify_as_given() {
    let mut valid_seen = 0;
    for case in load("notifications.json") {
        let name = case["name"].as_str().unwrap();
        let key = PublicKey::load(
            "AP_PUB_KEY",
            &key_text(case["alipay_public_key"].as_str().unwrap()),
        )
        .unwrap();
        let from_form =
            SignedFields::from_form(case["form_urlencoded"].as_str().unwrap().as_bytes()).unwrap();
        let from_fields = SignedFields::from_pairs(
            case["fields"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
        )
        .unwrap();
        for fields in [from_form, from_fields] {
            let valid = case["valid"].as_bool().unwrap();
            // For a forged case the vector gives the content Alipay signed; ours, built from the
            // altered fields, differs from it, which is why the check must fail.
            assert_eq!(
                fields.signed_content() == case["signed_content"].as_str().unwrap(),
                valid,
                "{name}"
            );
            assert_eq!(fields.verify(&key, SignType::Rsa2).is_ok(), valid, "{name}");
            let typed = fields
                .clone()
                .verify_trade_notification(&key, SignType::Rsa2);
            assert_eq!(typed.is_ok(), valid, "{name}: typed");
            if let Ok(n) = typed {
                valid_seen += 1;
                assert_eq!(n.out_trade_no, fields.get("out_trade_no").unwrap());
                assert_eq!(
                    n.total_amount.to_string(),
                    fields.get("total_amount").unwrap()
                );
                assert!(n.trade_status.is_paid());
            }
        }
    }
    assert!(valid_seen >= 2);
}
