//! Reading `biz_content`: each field's type, length and format, with a `sub_msg` that names the
//! field and the rule it broke (`ACQ.INVALID_PARAMETER`, ALIPAY-PROTOCOL §5.4–§5.5).

use alipay_openapi::time::{MAX_EXPIRY_MINUTES, format_timestamp, parse_timestamp};
use alipay_openapi::{Amount, GatewayRequest, SignType};
use chrono::{DateTime, Days, FixedOffset, NaiveTime, TimeDelta, TimeZone as _};
use serde_json::{Map, Value};

use crate::codes::Failure;
use crate::model::{Agent, Product};
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

/// The two moments of a pay request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moments {
    /// When the merchant says it made the request. A precreate is handled at once (the
    /// emulator's now); a page link carries its `timestamp` and may be opened long after it was
    /// signed, which makes its `time_expire` expired, not invalid.
    pub issued: DateTime<FixedOffset>,
    /// The emulator's clock as the request is handled. The 15-day limit is held against it (it
    /// is Alipay's rule on Alipay's clock), and `timeout_express` counts from it (the first
    /// request Alipay sees).
    pub now: DateTime<FixedOffset>,
}

/// The order of a pay request (§5.4): `out_trade_no`, `total_amount`, `subject` required;
/// `product_code` if given must match the API; `body` ≤ 128; `passback_params` kept as sent;
/// `timeout_express` and `time_expire` checked and turned into the order's expiry.
pub(crate) fn new_order(
    request: &GatewayRequest,
    biz: &Biz,
    product: Product,
    sign_type: SignType,
    at: Moments,
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
            // `agent_order` reads 智易收 orders; this arm is for completeness.
            Product::AgentPay => &[],
        };
        if !allowed.contains(&code.as_str()) {
            return Err(invalid(format!(
                "product_code {code} 与接口 {} 不匹配，应为 {}",
                product.method(),
                allowed.first().unwrap_or(&"空")
            )));
        }
    }
    let body = string(biz, "body", 128)?;
    let timeout = match string(biz, "timeout_express", 8)? {
        Some(t) => Some(check_timeout_express(&t)?),
        None => None,
    };
    // `time_expire` wins over `timeout_express` when both are sent (§3.1 of the research note).
    let expire_at = match time_expire(biz, at)? {
        Some(at) => Some(at),
        None => timeout.and_then(|t| timeout_expiry(t, product, &at.now)),
    };
    Ok(NewOrder {
        out_trade_no,
        product,
        total,
        subject,
        body,
        passback_params: string(biz, "passback_params", 512)?,
        notify_url: url_param(request, "notify_url")?,
        return_url: if matches!(product, Product::Wap | Product::Page) {
            url_param(request, "return_url")?
        } else {
            None
        },
        sign_type,
        expire_at,
        agent: None,
    })
}

/// The order of `alipay.aipay.trade.precreate` (智易收): `out_trade_no` as for every create;
/// `amount` a yuan string (not a number) with at most two decimals, 0.01–100000000;
/// `agent_name` (≤ 128) and `agent_id` required; `request_channel_source` kept as sent;
/// `time_expire` as for the other creates; `notify_url` from the common parameters. The
/// order's `subject` is the agent's name (this API has no subject), and it takes no
/// `return_url` (the buyer gets `pay_url` from the merchant, not through a redirect).
pub(crate) fn agent_order(
    request: &GatewayRequest,
    biz: &Biz,
    sign_type: SignType,
    at: Moments,
) -> Result<NewOrder, Failure> {
    let out_trade_no = required(biz, "out_trade_no", 64)?;
    check_out_trade_no(&out_trade_no)?;
    let total = yuan_string(biz, "amount")?;
    let agent_name = required(biz, "agent_name", 128)?;
    let agent_id = required(biz, "agent_id", 128)?;
    let request_channel_source = string(biz, "request_channel_source", 64)?;
    let expire_at = time_expire(biz, at)?;
    Ok(NewOrder {
        out_trade_no,
        product: Product::AgentPay,
        total,
        subject: agent_name.clone(),
        body: None,
        passback_params: None,
        notify_url: url_param(request, "notify_url")?,
        return_url: None,
        sign_type,
        expire_at,
        agent: Some(Agent {
            agent_id,
            agent_name,
            request_channel_source,
        }),
    })
}

/// A money field that must be a JSON string of plain decimal yuan (`"88.80"`, `"5"`): at most
/// two decimals, 0.01–100000000; a number, an exponent or a sign is refused.
fn yuan_string(biz: &Biz, name: &str) -> Result<Amount, Failure> {
    let text = match biz.get(name) {
        None | Some(Value::Null) => return Err(invalid(format!("缺少必选参数 {name}"))),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(invalid(format!("缺少必选参数 {name}")));
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(invalid(format!(
                "{name} 必须是字符串，收到 {}",
                type_name(other)
            )));
        }
    };
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(invalid(format!(
            "{name} 金额格式错误：{text} 不是以元为单位的数字"
        )));
    }
    Amount::from_yuan_str(text).map_err(|e| invalid(format!("{name} 金额格式错误：{e}")))
}

/// A valid `timeout_express`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timeout {
    /// `Nm`, `Nh`, `Nd`, in minutes.
    Minutes(u32),
    /// `1c`: the end of the day the order was made (Beijing midnight).
    EndOfDay,
}

/// `1m`–`15d`: a number and a unit `m`, `h`, `d` (or `1c`, "today").
fn check_timeout_express(text: &str) -> Result<Timeout, Failure> {
    let bad = || {
        invalid(format!(
            "timeout_express {text} 格式错误，取值范围 1m～15d（单位 m/h/d，或 1c）"
        ))
    };
    if text == "1c" {
        return Ok(Timeout::EndOfDay);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    // Digits only: `u32::from_str` would also take a leading `+`.
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u32 = number.parse().map_err(|_| bad())?;
    let minutes = match unit {
        "m" => n,
        "h" => n.saturating_mul(60),
        "d" => n.saturating_mul(1440),
        _ => return Err(bad()),
    };
    if (1..=MAX_EXPIRY_MINUTES).contains(&minutes) {
        Ok(Timeout::Minutes(minutes))
    } else {
        Err(bad())
    }
}

/// When a `timeout_express` runs out for an order first seen at `now`. Page pay and precreate
/// count from the merchant's request (which the emulator first sees now). Wap counts only from
/// the buyer confirming payment (核身, with a 5m minimum), a step the emulator folds into paying,
/// so a wap `timeout_express` never runs out here: `None`.
fn timeout_expiry(
    timeout: Timeout,
    product: Product,
    now: &DateTime<FixedOffset>,
) -> Option<DateTime<FixedOffset>> {
    if product == Product::Wap {
        return None;
    }
    match timeout {
        Timeout::Minutes(m) => now.checked_add_signed(TimeDelta::minutes(i64::from(m))),
        Timeout::EndOfDay => {
            let midnight = now.date_naive().checked_add_days(Days::new(1))?;
            now.timezone()
                .from_local_datetime(&midnight.and_time(NaiveTime::MIN))
                .single()
        }
    }
}

/// `time_expire`: exactly `yyyy-MM-dd HH:mm:ss` (Beijing), later than the request and at most
/// 15 days from now (Alipay's 1m–15d; the lower bound is not held to the minute, since a
/// merchant's `now + 1m` reaches the gateway a moment later).
///
/// "Later than the request" is judged at the earlier of the request's `timestamp` and now: a
/// value already over when the link was signed is invalid, one that ran out while the link
/// waited to be opened is expired (the cashier's call). Taking the earlier of the two also keeps
/// a merchant whose clock is ahead (SDKs that send host-local time east of Beijing) from having
/// a good `time_expire` refused.
fn time_expire(biz: &Biz, at: Moments) -> Result<Option<DateTime<FixedOffset>>, Failure> {
    let Some(text) = string(biz, "time_expire", 32)? else {
        return Ok(None);
    };
    let expiry = parse_timestamp(&text).ok_or_else(|| {
        invalid(format!(
            "time_expire {text} 格式错误，应为 yyyy-MM-dd HH:mm:ss（北京时间）"
        ))
    })?;
    // Second precision, as the request's `timestamp`: a time_expire equal to it is already over.
    let made = at.issued.min(at.now);
    if expiry.timestamp() <= made.timestamp() {
        return Err(invalid(format!(
            "time_expire {text} 不晚于请求时间 {}，须在请求之后 1m～15d 内",
            format_timestamp(&made)
        )));
    }
    if expiry - at.now > TimeDelta::minutes(i64::from(MAX_EXPIRY_MINUTES)) {
        return Err(invalid(format!(
            "time_expire {text} 超过当前时间 {} 之后 15 天，须在请求之后 1m～15d 内",
            format_timestamp(&at.now)
        )));
    }
    Ok(Some(expiry))
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

    fn at(text: &str) -> DateTime<FixedOffset> {
        parse_timestamp(text).unwrap()
    }

    /// A request signed and handled at 2026-11-25 10:00:00.
    fn moments() -> Moments {
        Moments {
            issued: at("2026-11-25 10:00:00"),
            now: at("2026-11-25 10:00:00"),
        }
    }

    fn order_with(product: Product, extra: Value, when: Moments) -> Result<NewOrder, Failure> {
        let mut value = json!({"out_trade_no":"A_1","total_amount":"1","subject":"s"});
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        new_order(&request(""), &biz(value), product, SignType::Rsa2, when)
    }

    #[test]
    fn time_expire_is_checked_against_the_request_and_becomes_the_expiry() {
        for product in [Product::Wap, Product::Page, Product::Precreate] {
            let order = order_with(
                product,
                json!({"time_expire":"2026-11-25 10:30:00","timeout_express":"5m"}),
                moments(),
            )
            .unwrap();
            assert_eq!(
                order.expire_at,
                Some(at("2026-11-25 10:30:00")),
                "time_expire wins over timeout_express"
            );
        }
        let fifteen_days = order_with(
            Product::Page,
            json!({"time_expire":"2026-12-10 10:00:00"}),
            moments(),
        );
        assert!(fifteen_days.is_ok(), "exactly 15 days is allowed");
        let cases = [
            ("2026-11-25 10:30", "格式错误"),
            ("2026-11-25T10:30:00", "格式错误"),
            ("2026/11/25 10:30:00", "格式错误"),
            ("2026-11-5  10:30:00", "格式错误"),
            ("2026-11-31 10:30:00", "格式错误"),
            ("2026-11-25 10:00:00", "不晚于请求时间 2026-11-25 10:00:00"),
            ("2026-11-24 23:00:00", "不晚于请求时间"),
            (
                "2026-12-10 10:00:01",
                "超过当前时间 2026-11-25 10:00:00 之后 15 天",
            ),
        ];
        for (text, expected) in cases {
            let err = order_with(Product::Wap, json!({ "time_expire": text }), moments())
                .err()
                .unwrap_or_else(|| panic!("{text} accepted"));
            assert_eq!(err.sub_code, "ACQ.INVALID_PARAMETER", "{text}");
            assert!(
                err.sub_msg.contains("time_expire") && err.sub_msg.contains(expected),
                "{text}: {}",
                err.sub_msg
            );
        }
        let err = order_with(Product::Wap, json!({"time_expire": 20261125}), moments())
            .err()
            .unwrap();
        assert!(
            err.sub_msg.contains("time_expire 必须是字符串"),
            "{}",
            err.sub_msg
        );

        // A link signed at 10:00 and opened at 11:00 with time_expire 10:30 is valid (and
        // expired, which the cashier decides): validity is judged at signing.
        let late = Moments {
            issued: at("2026-11-25 10:00:00"),
            now: at("2026-11-25 11:00:00"),
        };
        let order = order_with(
            Product::Page,
            json!({"time_expire":"2026-11-25 10:30:00"}),
            late,
        );
        assert_eq!(order.unwrap().expire_at, Some(at("2026-11-25 10:30:00")));

        // A merchant clock off by hours (an SDK sending host-local time) does not get a good
        // value refused: an hour ahead, then eight behind (a UTC host).
        for issued in ["2026-11-25 11:00:00", "2026-11-25 02:00:00"] {
            let skewed = Moments {
                issued: at(issued),
                now: at("2026-11-25 10:00:00"),
            };
            for ok in ["2026-11-25 10:30:00", "2026-12-10 10:00:00"] {
                let order = order_with(Product::Page, json!({ "time_expire": ok }), skewed);
                assert!(order.is_ok(), "{issued} {ok}: {:?}", order.err());
            }
        }
    }

    #[test]
    fn timeout_express_counts_from_the_first_request_except_on_wap() {
        let when = Moments {
            issued: at("2026-11-25 09:00:00"),
            now: at("2026-11-25 10:00:00"),
        };
        let expiry = |product, t: &str| {
            order_with(product, json!({ "timeout_express": t }), when)
                .unwrap()
                .expire_at
        };
        assert_eq!(
            expiry(Product::Page, "90m"),
            Some(at("2026-11-25 11:30:00"))
        );
        assert_eq!(
            expiry(Product::Precreate, "2h"),
            Some(at("2026-11-25 12:00:00"))
        );
        assert_eq!(
            expiry(Product::Page, "15d"),
            Some(at("2026-12-10 10:00:00"))
        );
        assert_eq!(expiry(Product::Page, "1c"), Some(at("2026-11-26 00:00:00")));
        // Wap's timer starts when the buyer confirms payment (any value below 5m counts as 5m
        // there), which the emulator folds into paying: accepted, never runs out.
        assert_eq!(expiry(Product::Wap, "1m"), None);
        assert_eq!(expiry(Product::Wap, "3d"), None);
        assert_eq!(
            order_with(Product::Page, json!({}), when)
                .unwrap()
                .expire_at,
            None
        );
    }

    #[test]
    fn orders_are_validated_field_by_field() {
        let ok = biz(
            json!({"out_trade_no":"A_1","total_amount":88.8,"subject":"书","product_code":"QUICK_WAP_WAY"}),
        );
        let order = new_order(&request(""), &ok, Product::Wap, SignType::Rsa2, moments()).unwrap();
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
                moments(),
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
            moments(),
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
        for bad in ["0m", "16d", "1x", "m", "", "+5m", "21601m", "361h"] {
            assert!(check_timeout_express(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn agent_orders_take_a_yuan_string_and_an_agent() {
        let read = |v: Value| agent_order(&request(""), &biz(v), SignType::Rsa2, moments());
        let order = read(json!({"out_trade_no":"AG_1","amount":"88.8","agent_name":"诗人","agent_id":"a1","request_channel_source":"mcp_0.1.0","time_expire":"2026-11-25 10:30:00"}))
            .unwrap();
        assert_eq!(order.total.fen(), 8880);
        assert_eq!(order.product, Product::AgentPay);
        assert_eq!(order.subject, "诗人");
        assert_eq!(order.expire_at, Some(at("2026-11-25 10:30:00")));
        let agent = order.agent.unwrap();
        assert_eq!(
            (
                agent.agent_id.as_str(),
                agent.request_channel_source.as_deref()
            ),
            ("a1", Some("mcp_0.1.0"))
        );
        let ok = json!({"out_trade_no":"AG_1","amount":"1.00","agent_name":"n","agent_id":"a"});
        let with = |key: &str, value: Value| {
            let mut v = ok.clone();
            v.as_object_mut().unwrap().insert(key.into(), value);
            v
        };
        let without = |key: &str| {
            let mut v = ok.clone();
            v.as_object_mut().unwrap().remove(key);
            v
        };
        let cases = [
            (without("out_trade_no"), "缺少必选参数 out_trade_no"),
            (with("out_trade_no", json!("a b")), "不允许的字符"),
            (without("amount"), "缺少必选参数 amount"),
            (with("amount", json!("")), "缺少必选参数 amount"),
            (with("amount", json!(1.5)), "amount 必须是字符串，收到 数字"),
            (with("amount", json!("1.001")), "amount 金额格式错误"),
            (with("amount", json!("0")), "amount 金额格式错误"),
            (with("amount", json!("0.00")), "amount 金额格式错误"),
            (with("amount", json!("100000000.01")), "amount 金额格式错误"),
            (with("amount", json!("1e2")), "amount 金额格式错误"),
            (with("amount", json!("-1")), "amount 金额格式错误"),
            (without("agent_name"), "缺少必选参数 agent_name"),
            (
                with("agent_name", json!("名".repeat(129))),
                "agent_name 长度 129",
            ),
            (without("agent_id"), "缺少必选参数 agent_id"),
            (with("agent_id", json!(7)), "agent_id 必须是字符串"),
            (
                with("time_expire", json!("2026-11-25 09:59:00")),
                "time_expire",
            ),
        ];
        for (value, expected) in cases {
            let err = read(value.clone()).unwrap_err();
            assert_eq!(err.sub_code, "ACQ.INVALID_PARAMETER", "{value}");
            assert!(err.sub_msg.contains(expected), "{value}: {}", err.sub_msg);
        }
        assert!(read(with("agent_name", json!("名".repeat(128)))).is_ok());
        assert!(read(with("amount", json!("100000000"))).is_ok());
        assert!(read(with("amount", json!("0.01"))).is_ok());
    }
}
