//! Alipay's answer codes: the public gateway codes (`40001 isv.missing-*`, `40002 isv.invalid-*`, …)
//! and the business sub-codes (`40004 ACQ.*`), with the Chinese `sub_msg` texts Alipay uses
//! (ALIPAY-PROTOCOL §2.7, §2.9–§2.11).

use serde::Serialize;

/// One failed answer: `code`, `msg`, `sub_code`, `sub_msg`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Failure {
    pub code: &'static str,
    pub msg: &'static str,
    pub sub_code: String,
    pub sub_msg: String,
}

const MISSING: (&str, &str) = ("40001", "Missing Required Arguments");
const INVALID: (&str, &str) = ("40002", "Invalid Arguments");
const BUSINESS: (&str, &str) = ("40004", "Business Failed");
const PERMISSIONS: (&str, &str) = ("40006", "Insufficient Permissions");
const UNAVAILABLE: (&str, &str) = ("20000", "Service Currently Unavailable");
const TOKEN: (&str, &str) = ("20001", "Insufficient Token Permissions");

/// The prefix of Alipay's `isv.invalid-signature` text; the rebuilt sign content follows it.
pub(crate) const INVALID_SIGNATURE_PREFIX: &str =
    "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：";

impl Failure {
    fn new((code, msg): (&'static str, &'static str), sub_code: &str, sub_msg: &str) -> Self {
        Self {
            code,
            msg,
            sub_code: sub_code.to_string(),
            sub_msg: sub_msg.to_string(),
        }
    }

    /// `40001 isv.missing-<what>`.
    pub(crate) fn missing(what: Missing) -> Self {
        let (sub_code, sub_msg) = match what {
            Missing::Method => ("isv.missing-method", "缺少方法名参数"),
            Missing::AppId => ("isv.missing-app-id", "缺少AppID参数"),
            Missing::Signature => ("isv.missing-signature", "缺少签名参数"),
            Missing::SignatureType => ("isv.missing-signature-type", "缺少签名类型参数"),
            Missing::Timestamp => ("isv.missing-timestamp", "缺少时间戳参数"),
            Missing::Version => ("isv.missing-version", "缺少版本参数"),
        };
        Self::new(MISSING, sub_code, sub_msg)
    }

    pub(crate) fn invalid_app_id() -> Self {
        Self::new(INVALID, "isv.invalid-app-id", "无效的AppID参数")
    }

    pub(crate) fn invalid_signature_type(detail: &str) -> Self {
        Self::new(
            INVALID,
            "isv.invalid-signature-type",
            &format!("无效的签名类型参数（{detail}，应为 RSA2 或 RSA）"),
        )
    }

    /// The app is registered for one algorithm only and the request used the other.
    pub(crate) fn missing_signature_config(sign_type: &str) -> Self {
        Self::new(
            INVALID,
            "isv.missing-signature-config",
            &format!("验签出错, 未配置对应签名算法的公钥或者证书（sign_type={sign_type}）"),
        )
    }

    pub(crate) fn invalid_timestamp(detail: &str) -> Self {
        Self::new(
            INVALID,
            "isv.invalid-timestamp",
            &format!("非法的时间戳参数（{detail}）"),
        )
    }

    pub(crate) fn invalid_charset(detail: &str) -> Self {
        Self::new(
            INVALID,
            "isv.invalid-charset",
            &format!("字符集错误（{detail}）"),
        )
    }

    /// `isv.invalid-signature`, echoing the content the gateway built, `&` and `"` HTML-escaped as
    /// Alipay does.
    pub(crate) fn invalid_signature(sign_content: &str) -> Self {
        let escaped = sign_content.replace('&', "&amp;").replace('"', "&quot;");
        Self::new(
            INVALID,
            "isv.invalid-signature",
            &format!("{INVALID_SIGNATURE_PREFIX}{escaped}"),
        )
    }

    pub(crate) fn invalid_method() -> Self {
        Self::new(INVALID, "isv.invalid-method", "不存在的方法名")
    }

    pub(crate) fn invalid_parameter(detail: &str) -> Self {
        Self::new(
            INVALID,
            "isv.invalid-parameter",
            &format!("参数无效：{detail}"),
        )
    }

    pub(crate) fn insufficient_permissions() -> Self {
        Self::new(
            PERMISSIONS,
            "isv.insufficient-isv-permissions",
            "ISV权限不足，建议在开发者中心检查对应功能是否已经添加",
        )
    }

    /// `40004 ACQ.INVALID_PARAMETER` naming the field and the rule.
    pub(crate) fn acq_invalid_parameter(detail: &str) -> Self {
        Self::new(
            BUSINESS,
            "ACQ.INVALID_PARAMETER",
            &format!("参数无效：{detail}"),
        )
    }

    /// `40004 ACQ.TRADE_HAS_CLOSE` for an order whose expiry (`time_expire`, or what its
    /// `timeout_express` came to) has passed unpaid: the code Alipay's pay APIs document for a
    /// closed trade ("更换商家订单号后，重新发起请求"); no dedicated expiry code is documented. The
    /// text names the expiry so a person at the cashier sees why.
    pub(crate) fn order_expired(expire_at: &str) -> Self {
        Self::new(
            BUSINESS,
            "ACQ.TRADE_HAS_CLOSE",
            &format!("交易已经关闭：订单已超过支付截止时间 {expire_at}，不能再支付"),
        )
    }

    /// `40004 isv.invalid-arguments`: the bill service's code for a bad `bill_type` or
    /// `bill_date` (its documented `INVAILID_ARGUMENTS`; the trade APIs' `ACQ.INVALID_PARAMETER`
    /// is theirs alone), naming the field and the rule.
    pub(crate) fn invalid_arguments(detail: &str) -> Self {
        Self::new(
            BUSINESS,
            "isv.invalid-arguments",
            &format!("参数无效：{detail}"),
        )
    }

    /// `40004 isp.bill_not_exist`: the bill asked for is not there (bills are T+1: a day's
    /// exists from the next day, a month's from the next month), with why.
    pub(crate) fn bill_not_exist(detail: &str) -> Self {
        Self::new(
            BUSINESS,
            "isp.bill_not_exist",
            &format!("账单不存在：{detail}"),
        )
    }

    /// A business failure (`40004`) with Alipay's text for the sub-code.
    pub(crate) fn business(sub_code: &str) -> Self {
        Self::new(BUSINESS, sub_code, business_sub_msg(sub_code))
    }

    /// Any sub-code, with the code its family belongs to (fault injection takes arbitrary ones).
    pub(crate) fn for_sub_code(sub_code: &str) -> Self {
        let family = if sub_code.starts_with("isv.missing-") {
            MISSING
        } else if sub_code.starts_with("isv.insufficient-") {
            PERMISSIONS
        } else if sub_code.starts_with("isv.") {
            INVALID
        } else if sub_code.starts_with("isp.") || sub_code == "aop.unknow-error" {
            UNAVAILABLE
        } else if sub_code.starts_with("aop.") {
            TOKEN
        } else {
            BUSINESS
        };
        let sub_msg = match family.0 {
            "40004" => business_sub_msg(sub_code),
            "20000" => "服务暂不可用",
            "20001" => "授权权限不足",
            _ => "参数无效",
        };
        Self::new(family, sub_code, sub_msg)
    }
}

/// The parameter a `40001` answer says is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Missing {
    Method,
    AppId,
    Signature,
    SignatureType,
    Timestamp,
    Version,
}

/// Alipay's `sub_msg` for the trade sub-codes.
fn business_sub_msg(sub_code: &str) -> &'static str {
    match sub_code {
        "ACQ.TRADE_NOT_EXIST" => "交易不存在",
        "ACQ.SYSTEM_ERROR" => "系统错误",
        "ACQ.INVALID_PARAMETER" => "参数无效",
        "ACQ.TRADE_STATUS_ERROR" => "交易状态不合法",
        "ACQ.TRADE_HAS_FINISHED" => "交易已完结",
        "ACQ.TRADE_HAS_SUCCESS" => "交易已被支付",
        "ACQ.TRADE_HAS_CLOSE" => "交易已经关闭",
        "ACQ.CONTEXT_INCONSISTENT" => "交易信息被篡改",
        "ACQ.DISCORDANT_REPEAT_REQUEST" => "不一致的请求",
        "ACQ.REASON_TRADE_REFUND_FEE_ERR" => "退款金额无效",
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" => "撤销或退款金额与订单金额不一致",
        "ACQ.TRADE_NOT_ALLOW_REFUND" => "当前交易不允许退款",
        "ACQ.SELLER_BALANCE_NOT_ENOUGH" => "卖家余额不足",
        "ACQ.REASON_TRADE_BEEN_FREEZEN" => "当前交易被冻结，不允许进行退款",
        "ACQ.REFUND_FEE_ERROR" => "交易退款金额有误",
        "ACQ.ACCESS_FORBIDDEN" => "无权限使用接口",
        _ => "业务处理失败",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_text_escapes_like_alipay() {
        let f = Failure::invalid_signature(r#"a=1&biz_content={"k":"v"}"#);
        assert_eq!(f.code, "40002");
        assert_eq!(
            f.sub_msg,
            format!(
                "{INVALID_SIGNATURE_PREFIX}a=1&amp;biz_content={{&quot;k&quot;:&quot;v&quot;}}"
            )
        );
    }

    #[test]
    fn sub_codes_get_their_family() {
        assert_eq!(Failure::for_sub_code("ACQ.SYSTEM_ERROR").code, "40004");
        assert_eq!(
            Failure::for_sub_code("ACQ.SYSTEM_ERROR").sub_msg,
            "系统错误"
        );
        assert_eq!(Failure::for_sub_code("isp.unknow-error").code, "20000");
        assert_eq!(Failure::for_sub_code("aop.unknow-error").code, "20000");
        assert_eq!(
            Failure::for_sub_code("aop.invalid-auth-token").code,
            "20001"
        );
        assert_eq!(Failure::for_sub_code("isv.missing-method").code, "40001");
        assert_eq!(Failure::for_sub_code("isv.invalid-app-id").code, "40002");
        assert_eq!(
            Failure::for_sub_code("isv.insufficient-isv-permissions").code,
            "40006"
        );
    }
}
