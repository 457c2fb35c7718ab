//! Each target's wire format, as its platform documents it: the request an event becomes, and
//! whether an answer is that platform's success. Pure (the time is an argument), so every format
//! and signature is checked against vectors made by an independent implementation.
//!
//! - forward: the verbatim Alipay form, same content type; success is the body `success`.
//! - webhook: our JSON event, `Alipay-Mcp-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//!   (Stripe's scheme); success is any 2xx.
//! - DingTalk: `{"msgtype":"text",…}`; with a secret, `timestamp` (ms) and `sign` =
//!   Base64(HMAC-SHA256(key = secret, "<timestamp>\n<secret>")) in the query; success `errcode` 0.
//! - WeCom: `{"msgtype":"text",…}`; success `errcode` 0.
//! - Feishu: `{"msg_type":"text",…}`; with a secret, `timestamp` (s) and `sign` =
//!   Base64(HMAC-SHA256(key = "<timestamp>\n<secret>", empty message)) in the body; success
//!   `code` 0 (older answers: `StatusCode` 0).

use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use serde_json::json;
use serde_json::value::RawValue;

use super::message;
use super::targets::Target;
use crate::domain::outbox::TargetKind;
use crate::ledger::EventRecord;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The header a webhook's signature travels in.
pub const SIGNATURE_HEADER: &str = "Alipay-Mcp-Signature";
/// The header naming the event, the same on every attempt.
pub const EVENT_ID_HEADER: &str = "Alipay-Mcp-Event-Id";

/// One HTTP POST, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub url: url::Url,
    pub content_type: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The webhook's JSON body: the same bytes on every attempt.
pub fn webhook_body(event: &EventRecord) -> Result<String, String> {
    let data = RawValue::from_string(event.data.clone())
        .map_err(|e| format!("the event's data is not JSON: {e}"))?;
    serde_json::to_string(&json!({
        "id": event.id,
        "type": event.kind.as_str(),
        "created": event.created_ms.div_euclid(1000),
        "data": data,
    }))
    .map_err(|e| e.to_string())
}

/// `t=<unix>,v1=<hex>`: what a receiver recomputes with the shared secret.
pub fn webhook_signature(secret: &str, unix: i64, body: &str) -> String {
    let signed = format!("{unix}.{body}");
    format!(
        "t={unix},v1={}",
        hex(&hmac_sha256(secret.as_bytes(), signed.as_bytes()))
    )
}

/// DingTalk's `sign` for a millisecond `timestamp`.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let signed = format!("{timestamp_ms}\n{secret}");
    base64(&hmac_sha256(secret.as_bytes(), signed.as_bytes()))
}

/// Feishu's `sign` for a `timestamp` in seconds (the string is the key; the message is empty).
pub fn feishu_sign(secret: &str, timestamp: i64) -> String {
    let key = format!("{timestamp}\n{secret}");
    base64(&hmac_sha256(key.as_bytes(), b""))
}

fn json_post(url: url::Url, body: serde_json::Value) -> Outgoing {
    Outgoing {
        url,
        content_type: "application/json; charset=utf-8".into(),
        headers: Vec::new(),
        body: body.to_string().into_bytes(),
    }
}

/// The request `event` becomes for `target` at `now_ms` (Unix milliseconds).
pub fn request(target: &Target, event: &EventRecord, now_ms: i64) -> Result<Outgoing, String> {
    let secret = target.secret.as_ref().map(|s| s.expose());
    match target.kind {
        TargetKind::Forward => {
            let raw = event
                .raw
                .as_ref()
                .ok_or("the notification's body was not kept")?;
            Ok(Outgoing {
                url: target.url.clone(),
                content_type: raw.content_type.clone(),
                headers: Vec::new(),
                body: raw.body.clone(),
            })
        }
        TargetKind::Webhook => {
            let secret = secret.ok_or("AP_WEBHOOK_SECRET is not set")?;
            let body = webhook_body(event)?;
            let signature = webhook_signature(secret, now_ms.div_euclid(1000), &body);
            Ok(Outgoing {
                url: target.url.clone(),
                content_type: "application/json".into(),
                headers: vec![
                    (SIGNATURE_HEADER, signature),
                    (EVENT_ID_HEADER, event.id.clone()),
                ],
                body: body.into_bytes(),
            })
        }
        TargetKind::DingTalk => {
            let mut url = target.url.clone();
            if let Some(secret) = secret {
                url.query_pairs_mut()
                    .append_pair("timestamp", &now_ms.to_string())
                    .append_pair("sign", &dingtalk_sign(secret, now_ms));
            }
            let text = message::text(event)?;
            Ok(json_post(
                url,
                json!({"msgtype": "text", "text": {"content": text}}),
            ))
        }
        TargetKind::WeCom => {
            let text = message::text(event)?;
            Ok(json_post(
                target.url.clone(),
                json!({"msgtype": "text", "text": {"content": text}}),
            ))
        }
        TargetKind::Feishu => {
            let text = message::text(event)?;
            let mut body = json!({"msg_type": "text", "content": {"text": text}});
            if let Some(secret) = secret {
                let timestamp = now_ms.div_euclid(1000);
                body["timestamp"] = json!(timestamp.to_string());
                body["sign"] = json!(feishu_sign(secret, timestamp));
            }
            Ok(json_post(target.url.clone(), body))
        }
    }
}

/// At most this much of an answer is quoted in a failure's detail.
const QUOTE_CHARS: usize = 120;

fn quote(body: &str) -> String {
    let cut: String = body.trim().chars().take(QUOTE_CHARS).collect();
    format!("{cut:?}")
}

/// Whether `status` and `body` are `kind`'s success; otherwise what was wrong, in a few words.
pub fn judge(kind: TargetKind, status: u16, body: &str) -> Result<(), String> {
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    let code = |fields: &[&str]| -> Result<(), String> {
        let answer: serde_json::Value = serde_json::from_str(body)
            .map_err(|_| format!("HTTP {status}, but the answer is not JSON: {}", quote(body)))?;
        let found = fields.iter().find_map(|f| answer.get(*f)?.as_i64());
        match found {
            Some(0) => Ok(()),
            Some(code) => {
                let msg = ["errmsg", "msg", "StatusMessage"]
                    .iter()
                    .find_map(|f| answer.get(*f)?.as_str())
                    .unwrap_or("");
                Err(format!("{} {code}: {}", fields[0], quote(msg)))
            }
            None => Err(format!(
                "HTTP {status}, but no {}: {}",
                fields[0],
                quote(body)
            )),
        }
    };
    match kind {
        TargetKind::Forward if body.trim() == "success" => Ok(()),
        TargetKind::Forward => Err(format!("answered {} instead of success", quote(body))),
        TargetKind::Webhook => Ok(()),
        TargetKind::DingTalk | TargetKind::WeCom => code(&["errcode"]),
        TargetKind::Feishu => code(&["code", "StatusCode"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::domain::OutTradeNo;
    use crate::domain::outbox::EventKind;
    use crate::ledger::RawForm;

    // Vectors made with Python's hmac, hashlib and base64 modules (not this code):
    //   base64(hmac(secret, f"{ts}\n{secret}"))              DingTalk
    //   base64(hmac(f"{ts}\n{secret}", b""))                 Feishu
    //   hmac(secret, f"{t}.{body}").hexdigest()               webhook
    #[test]
    fn signatures_match_an_independent_implementation() {
        assert_eq!(
            dingtalk_sign("SEC0123456789abcdef0123456789abcdef", 1_764_590_000_123),
            "Ver4+NaVKKDM/bFfi67YPok+Kw87Se2r2IC50GikbTE="
        );
        assert_eq!(
            feishu_sign("WYDI1R5kaqfQpTxMUBzMbfwBJcZgw4e6", 1_764_590_000),
            "dSY2NtPLx/XqiiYJFSeUstcw6+bQFICLXchrQ60h78M="
        );
        let body =
            r#"{"id":"evt_1","type":"payment.succeeded","created":1764590000,"data":{"a":1}}"#;
        assert_eq!(
            webhook_signature("whsec_0123456789abcdef", 1_764_590_001, body),
            "t=1764590001,v1=9fdcab8bf07024f94b7e393a1095024ffa7839953fd794c7d846ed4111b582f7"
        );
    }

    fn event(kind: EventKind) -> EventRecord {
        EventRecord {
            id: "evt_1".into(),
            kind,
            out_trade_no: OutTradeNo::parse("ORD1").unwrap(),
            data: r#"{"outTradeNo":"ORD1","orderKind":"webPage","title":"A4 插画","totalAmount":"12.30","tradeStatus":"TRADE_SUCCESS","tradeNo":"2026120122001","refundedAmount":"0.00","expiresAt":"2026-12-01 12:30:00","appId":"2021000000000001","env":"local","occurredAt":"2026-12-01 12:00:00"}"#.into(),
            created_ms: 1_764_590_000_999,
            raw: Some(RawForm {
                content_type: "application/x-www-form-urlencoded; charset=utf-8".into(),
                body: b"a=1&sign=x%2By".to_vec(),
            }),
        }
    }

    fn target(kind: TargetKind, url: &str, secret: Option<&str>) -> Target {
        Target {
            kind,
            url: url::Url::parse(url).unwrap(),
            secret: secret.map(|s| Secret::new(s.into())),
        }
    }

    #[test]
    fn the_forward_is_the_verbatim_form() {
        let e = event(EventKind::AlipayNotification);
        let out = request(
            &target(TargetKind::Forward, "http://shop/notify", None),
            &e,
            0,
        )
        .unwrap();
        assert_eq!(out.body, e.raw.as_ref().unwrap().body);
        assert_eq!(out.content_type, e.raw.unwrap().content_type);
        assert!(out.headers.is_empty());
    }

    #[test]
    fn the_webhook_is_signed_json() {
        let e = event(EventKind::PaymentSucceeded);
        let out = request(
            &target(
                TargetKind::Webhook,
                "https://shop/hook",
                Some("whsec_0123456789abcdef"),
            ),
            &e,
            1_764_590_005_500,
        )
        .unwrap();
        let body = String::from_utf8(out.body).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], "evt_1");
        assert_eq!(v["type"], "payment.succeeded");
        assert_eq!(v["created"], 1_764_590_000);
        assert_eq!(v["data"]["totalAmount"], "12.30");
        assert_eq!(
            out.headers[0],
            (
                SIGNATURE_HEADER,
                webhook_signature("whsec_0123456789abcdef", 1_764_590_005, &body)
            )
        );
        assert_eq!(out.headers[1], (EVENT_ID_HEADER, "evt_1".to_string()));
    }

    #[test]
    fn the_robots_get_their_documented_shapes() {
        let e = event(EventKind::PaymentSucceeded);
        let ding = request(
            &target(
                TargetKind::DingTalk,
                "https://oapi.dingtalk.com/robot/send?access_token=t",
                Some("SEC0123456789abcdef0123456789abcdef"),
            ),
            &e,
            1_764_590_000_123,
        )
        .unwrap();
        assert_eq!(
            ding.url.as_str(),
            "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1764590000123&sign=Ver4%2BNaVKKDM%2FbFfi67YPok%2BKw87Se2r2IC50GikbTE%3D"
        );
        let v: serde_json::Value = serde_json::from_slice(&ding.body).unwrap();
        assert_eq!(v["msgtype"], "text");
        assert!(v["text"]["content"].as_str().unwrap().contains("12.30"));

        let wecom = request(
            &target(
                TargetKind::WeCom,
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
                None,
            ),
            &e,
            0,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&wecom.body).unwrap();
        assert_eq!(v["msgtype"], "text");
        assert!(v["text"]["content"].as_str().unwrap().contains("ORD1"));

        let feishu = request(
            &target(
                TargetKind::Feishu,
                "https://open.feishu.cn/open-apis/bot/v2/hook/x",
                Some("WYDI1R5kaqfQpTxMUBzMbfwBJcZgw4e6"),
            ),
            &e,
            1_764_590_000_456,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&feishu.body).unwrap();
        assert_eq!(v["msg_type"], "text");
        assert_eq!(v["timestamp"], "1764590000");
        assert_eq!(v["sign"], "dSY2NtPLx/XqiiYJFSeUstcw6+bQFICLXchrQ60h78M=");
        assert!(v["content"]["text"].as_str().unwrap().contains("A4 插画"));
    }

    #[test]
    fn answers_are_judged_as_each_platform_documents() {
        use TargetKind::*;
        assert_eq!(judge(Forward, 200, "success"), Ok(()));
        assert!(
            judge(Forward, 200, "fail")
                .unwrap_err()
                .contains("\"fail\"")
        );
        assert_eq!(judge(Forward, 500, "success"), Err("HTTP 500".into()));
        assert_eq!(judge(Webhook, 204, ""), Ok(()));
        assert_eq!(judge(Webhook, 302, ""), Err("HTTP 302".into()));
        assert_eq!(
            judge(DingTalk, 200, r#"{"errcode":0,"errmsg":"ok"}"#),
            Ok(())
        );
        assert_eq!(
            judge(
                DingTalk,
                200,
                r#"{"errcode":310000,"errmsg":"keywords not in content"}"#
            ),
            Err("errcode 310000: \"keywords not in content\"".into())
        );
        assert_eq!(judge(WeCom, 200, r#"{"errcode":0,"errmsg":"ok"}"#), Ok(()));
        assert!(
            judge(WeCom, 200, "<html>")
                .unwrap_err()
                .contains("not JSON")
        );
        assert_eq!(
            judge(Feishu, 200, r#"{"code":0,"msg":"success","data":{}}"#),
            Ok(())
        );
        assert_eq!(
            judge(Feishu, 200, r#"{"StatusCode":0,"StatusMessage":"success"}"#),
            Ok(())
        );
        assert_eq!(
            judge(Feishu, 200, r#"{"code":19021,"msg":"sign match fail"}"#),
            Err("code 19021: \"sign match fail\"".into())
        );
    }
}
