//! Reading `biz_content`: each field's type, length and format, with a `sub_msg` that names the
//! field and the rule it broke (`ACQ.INVALID_PARAMETER`, ALIPAY-PROTOCOL §5.4–§5.5).

use alipay_openapi::{Amount, GatewayRequest, SignType};
use serde_json::{Map, Value};

use crate::codes::Failure;
use crate::model::Product;
use crate::trades::{NewOrder, RefundInput, TradeRef};

type Biz = Map<String, Value>;

fn invalid(detail: String) -> Failure {
    Failure::acq_invalid_parameter(&detail)
}

/// A string field of at most `max` characters; absent, null or empty → `None`.
pub(crate) fn string(biz: &Biz, name: &str, max: usize) -> Result<Option<String>, Failure> {
    match biz.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            let len = s.chars().count();
            if len > max {
                Err(invalid(format!("{name} 长度 {len} 超过上限 {max}")))
            } else {
                Ok(Some(s.clone()))
            }
        }
        Some(other) => Err(invalid(format!(
            "{name} 必须是字符串，收到 {}",
            type_name(other)
        ))),
    }
}

fn required(biz: &Biz, name: &str, max: usize) -> Result<String, Failure> {
    string(biz, name, max)?.ok_or_else(|| invalid(format!("缺少必选参数 {name}")))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "布尔值",
        Value::Number(_) => "数字",
        Value::String(_) => "字符串",
        Value::Array(_) => "数组",
        Value::Object(_) => "对象",
    }
}

/// `out_trade_no`: 1–64 characters, letters, digits, `_`, `-`, `.` (Alipay documents letters,
/// digits and underscores; the others are tolerated as real gateways do).
fn check_out_trade_no(no: &str) -> Result<(), Failure> {
    match no
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        Some(c) => Err(invalid(format!(
            "out_trade_no 含有不允许的字符 {c:?}（只能包含字母、数字、下划线）"
        ))),
        None => Ok(()),
    }
}

/// A money field (JSON number or string, ≤ 2 decimals, 0.01–100000000).
fn amount(biz: &Biz, name: &str) -> Result<Amount, Failure> {
    let value = biz
        .get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| invalid(format!("缺少必选参数 {name}")))?;
    Amount::from_json(value).map_err(|e| invalid(format!("{name} 金额格式错误：{e}")))
}

/// `trade_no` or `out_trade_no`, at least one.
pub(crate) fn trade_ref(biz: &Biz) -> Result<TradeRef, Failure> {
    let target = TradeRef {
        out_trade_no: string(biz, "out_trade_no", 64)?,
        trade_no: string(biz, "trade_no", 64)?,
    };
    if target.out_trade_no.is_none() && target.trade_no.is_none() {
        return Err(invalid("out_trade_no 和 trade_no 不能同时为空".into()));
    }
    Ok(target)
}

/// `query_options`: an array of strings (absent → empty).
pub(crate) fn query_options(biz: &Biz) -> Result<Vec<String>, Failure> {
    match biz.get("query_options") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid("query_options 的每一项必须是字符串".into()))
            })
            .collect(),
        Some(other) => Err(invalid(format!(
            "query_options 必须是字符串数组，收到 {}",
            type_name(other)
        ))),
    }
}

/// `alipay.trade.refund`'s fields.
pub(crate) fn refund(biz: &Biz) -> Result<RefundInput, Failure> {
    let target = trade_ref(biz)?;
    let amount = amount(biz, "refund_amount")?;
    Ok(RefundInput {
        target,
        amount,
        out_request_no: string(biz, "out_request_no", 64)?,
        reason: string(biz, "refund_reason", 256)?,
    })
}

/// `alipay.trade.fastpay.refund.query`'s `out_request_no` (required).
pub(crate) fn out_request_no(biz: &Biz) -> Result<String, Failure> {
    required(biz, "out_request_no", 64)
}

/// A URL parameter (`notify_url`, `return_url`): absent, or an http(s) URL of at most 256
/// characters.
fn url_param(request: &GatewayRequest, name: &str) -> Result<Option<String>, Failure> {
    let Some(value) = request.non_empty(name) else {
        return Ok(None);
    };
    if value.chars().count() > 256 {
        return Err(Failure::invalid_parameter(&format!("{name} 长度超过 256")));
    }
    match reqwest::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(Some(value.to_string()))
        }
        _ => Err(Failure::invalid_parameter(&format!(
            "{name} 必须是 http(s) 地址，收到 {value}"
        ))),
    }
}

/// The order of a pay request (§5.4): `out_trade_no`, `total_amount`, `subject` required;
/// `product_code` if given must match the API; `body` ≤ 128; `passback_params` kept as sent.
pub(crate) fn new_order(
    request: &GatewayRequest,
    biz: &Biz,
    product: Product,
    sign_type: SignType,
) -> Result<NewOrder, Failure> {
    let out_trade_no = required(biz, "out_trade_no", 64)?;
    check_out_trade_no(&out_trade_no)?;
    let total = amount(biz, "total_amount")?;
    let subject = required(biz, "subject", 256)?;
    if let Some(code) = string(biz, "product_code", 64)? {
        let allowed: &[&str] = match product {
            Product::Wap => &["QUICK_WAP_WAY", "QUICK_WAP_PAY"],
            Product::Page => &["FAST_INSTANT_TRADE_PAY"],
            Product::Precreate => &["FACE_TO_FACE_PAYMENT", "QR_CODE_OFFLINE"],
        };
        if !allowed.contains(&code.as_str()) {
            return Err(invalid(format!(
                "product_code {code} 与接口 {} 不匹配，应为 {}",
                product.method(),
                allowed[0]
            )));
        }
    }
    let body = string(biz, "body", 128)?;
    if let Some(t) = string(biz, "timeout_express", 8)? {
        check_timeout_express(&t)?;
    }
    Ok(NewOrder {
        out_trade_no,
        product,
        total,
        subject,
        body,
        passback_params: string(biz, "passback_params", 512)?,
        notify_url: url_param(request, "notify_url")?,
        return_url: if product == Product::Precreate {
            None
        } else {
            url_param(request, "return_url")?
        },
        sign_type,
    })
}

/// `1m`–`15d`: a number and a unit `m`, `h`, `d` (or `1c`, "today").
fn check_timeout_express(text: &str) -> Result<(), Failure> {
    let bad = || {
        invalid(format!(
            "timeout_express {text} 格式错误，取值范围 1m～15d（单位 m/h/d，或 1c）"
        ))
    };
    if text == "1c" {
        return Ok(());
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u32 = number.parse().map_err(|_| bad())?;
    let minutes = match unit {
        "m" => n,
        "h" => n.saturating_mul(60),
        "d" => n.saturating_mul(1440),
        _ => return Err(bad()),
    };
    if (1..=15 * 1440).contains(&minutes) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// The `out_trade_no` a request names, for logs and `other_order` (no validation).
pub(crate) fn named_order(biz: &Biz) -> Option<String> {
    biz.get("out_trade_no")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn biz(v: Value) -> Biz {
        v.as_object().cloned().unwrap()
    }

    fn request(query: &str) -> GatewayRequest {
        GatewayRequest::from_parts(Some(query), None).unwrap()
    }

    #[test]
    fn orders_are_validated_field_by_field() {
        let ok = biz(
            json!({"out_trade_no":"A_1","total_amount":88.8,"subject":"书","product_code":"QUICK_WAP_WAY"}),
        );
        let order = new_order(&request(""), &ok, Product::Wap, SignType::Rsa2).unwrap();
        assert_eq!(order.total.fen(), 8880);

        let cases = [
            (
                json!({"total_amount":"1","subject":"s"}),
                "缺少必选参数 out_trade_no",
            ),
            (
                json!({"out_trade_no":"a b","total_amount":"1","subject":"s"}),
                "不允许的字符",
            ),
            (
                json!({"out_trade_no":"x".repeat(65),"total_amount":"1","subject":"s"}),
                "超过上限 64",
            ),
            (
                json!({"out_trade_no":"A","total_amount":"0.001","subject":"s"}),
                "total_amount 金额格式错误",
            ),
            (
                json!({"out_trade_no":"A","total_amount":"1"}),
                "缺少必选参数 subject",
            ),
            (
                json!({"out_trade_no":"A","total_amount":"1","subject":7}),
                "subject 必须是字符串",
            ),
            (
                json!({"out_trade_no":"A","total_amount":"1","subject":"s","product_code":"FAST_INSTANT_TRADE_PAY"}),
                "不匹配",
            ),
            (
                json!({"out_trade_no":"A","total_amount":"1","subject":"s","body":"b".repeat(129)}),
                "body 长度 129",
            ),
            (
                json!({"out_trade_no":"A","total_amount":"1","subject":"s","timeout_express":"16d"}),
                "timeout_express",
            ),
        ];
        for (value, expected) in cases {
            let err = new_order(
                &request(""),
                &biz(value.clone()),
                Product::Wap,
                SignType::Rsa2,
            )
            .unwrap_err();
            assert_eq!(err.sub_code, "ACQ.INVALID_PARAMETER", "{value}");
            assert!(err.sub_msg.contains(expected), "{value}: {}", err.sub_msg);
        }
        let err = new_order(
            &request("notify_url=ftp%3A%2F%2Fx"),
            &ok,
            Product::Wap,
            SignType::Rsa2,
        )
        .unwrap_err();
        assert!(err.sub_msg.contains("notify_url"), "{}", err.sub_msg);
    }

    #[test]
    fn trade_refs_and_options() {
        assert!(trade_ref(&biz(json!({}))).is_err());
        let r = trade_ref(&biz(json!({"trade_no":"2026"}))).unwrap();
        assert_eq!(r.trade_no.as_deref(), Some("2026"));
        assert_eq!(
            query_options(&biz(json!({"query_options":["a","b"]}))).unwrap(),
            vec!["a", "b"]
        );
        assert!(query_options(&biz(json!({"query_options":"a"}))).is_err());
        for ok in ["1m", "90m", "2h", "15d", "1c"] {
            assert!(check_timeout_express(ok).is_ok(), "{ok}");
        }
        for bad in ["0m", "16d", "1x", "m", ""] {
            assert!(check_timeout_express(bad).is_err(), "{bad}");
        }
    }
}
