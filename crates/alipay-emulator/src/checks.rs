//! The common checks every `/gateway.do` request goes through, in Alipay's order (ALIPAY-PROTOCOL
//! §5.2); the first failure wins:
//!
//! 1. `method` present (`isv.missing-method`)
//! 2. `app_id` present and registered (`isv.missing-app-id`, `isv.invalid-app-id`)
//! 3. `sign` present (`isv.missing-signature`)
//! 4. `sign_type` present and `RSA2`/`RSA` (`isv.missing-signature-type`, `isv.invalid-signature-type`)
//! 5. `timestamp` present, `yyyy-MM-dd HH:mm:ss`, within the skew if one is set (`isv.missing-timestamp`,
//!    `isv.invalid-timestamp`)
//! 6. `version` present (`isv.missing-version`)
//! 7. `charset` utf-8 (or GBK for ASCII-only requests) (`isv.invalid-charset`)
//! 8. the signature over the sign content, empty values dropped (`isv.invalid-signature`)
//! 9. `method` known (`isv.invalid-method`, answered under `error_response`)
//! 10. the app has the product (`isv.insufficient-isv-permissions`)
//! 11. `biz_content` a JSON object (`isv.invalid-parameter`)

use alipay_openapi::{GatewayRequest, PayKind, RequestVerifyError, SignType};
use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use crate::api::JSON_METHODS;
use crate::codes::{Failure, Missing};
use crate::config::AppConfig;
use crate::shared::Shared;

/// The page APIs, answered with HTML.
pub(crate) const PAGE_METHODS: [&str; 2] = [PayKind::Wap.method(), PayKind::Page.method()];

/// A request that passed every check.
pub(crate) struct Accepted<'a> {
    pub app: &'a AppConfig,
    pub method: String,
    pub sign_type: SignType,
    pub biz: Map<String, Value>,
}

/// A request that failed a check.
#[derive(Debug)]
pub(crate) struct Rejected {
    pub failure: Failure,
    /// Algorithm of the signed answer: the request's when it named a valid one, else RSA2.
    pub sign_type: SignType,
    /// Alipay answers a missing or unknown method under `error_response`.
    pub error_response: bool,
}

/// Run the checks.
///
/// `wall` is the real time (not the emulator's clock, which tests move): the `timestamp`
/// tolerance compares the merchant's clock with it.
pub(crate) fn check<'a>(
    shared: &'a Shared,
    request: &GatewayRequest,
    wall: &DateTime<FixedOffset>,
) -> Result<Accepted<'a>, Rejected> {
    let sign_type = request
        .non_empty("sign_type")
        .and_then(|t| t.parse::<SignType>().ok())
        .unwrap_or_default();
    let reject = |failure: Failure| Rejected {
        failure,
        sign_type,
        error_response: false,
    };

    let method = request
        .non_empty("method")
        .ok_or_else(|| Rejected {
            error_response: true,
            ..reject(Failure::missing(Missing::Method))
        })?
        .to_string();
    let app_id = request
        .non_empty("app_id")
        .ok_or_else(|| reject(Failure::missing(Missing::AppId)))?;
    let app = shared
        .apps
        .get(app_id)
        .ok_or_else(|| reject(Failure::invalid_app_id()))?;
    request
        .non_empty("sign")
        .ok_or_else(|| reject(Failure::missing(Missing::Signature)))?;
    let sign_type_text = request
        .non_empty("sign_type")
        .ok_or_else(|| reject(Failure::missing(Missing::SignatureType)))?;
    if sign_type_text.parse::<SignType>().is_err() {
        return Err(reject(Failure::invalid_signature_type(sign_type_text)));
    }
    check_timestamp(shared, request, wall).map_err(reject)?;
    request
        .non_empty("version")
        .ok_or_else(|| reject(Failure::missing(Missing::Version)))?;
    check_charset(request).map_err(reject)?;
    if let Some(only) = app.sign_type
        && only != sign_type
    {
        return Err(reject(Failure::missing_signature_config(sign_type_text)));
    }
    match request.verify(&app.public_key) {
        Ok(_) => {}
        Err(RequestVerifyError::Mismatch { sign_content }) => {
            return Err(reject(Failure::invalid_signature(&sign_content)));
        }
        // Already excluded above; answer them the same way should the rules ever drift apart.
        Err(RequestVerifyError::MissingSign) => {
            return Err(reject(Failure::missing(Missing::Signature)));
        }
        Err(RequestVerifyError::MissingSignType) => {
            return Err(reject(Failure::missing(Missing::SignatureType)));
        }
        Err(RequestVerifyError::UnknownSignType(t)) => {
            return Err(reject(Failure::invalid_signature_type(&t)));
        }
        // A reason `alipay-openapi` may add later: the signature was still not accepted.
        Err(_) => {
            return Err(reject(Failure::invalid_signature(&request.sign_content())));
        }
    }
    if !JSON_METHODS.contains(&method.as_str()) && !PAGE_METHODS.contains(&method.as_str()) {
        return Err(Rejected {
            error_response: true,
            ..reject(Failure::invalid_method())
        });
    }
    if app.disabled_methods.contains(&method) {
        return Err(reject(Failure::insufficient_permissions()));
    }
    let biz = parse_biz_content(request).map_err(reject)?;
    Ok(Accepted {
        app,
        method,
        sign_type,
        biz,
    })
}

fn check_timestamp(
    shared: &Shared,
    request: &GatewayRequest,
    now: &DateTime<FixedOffset>,
) -> Result<(), Failure> {
    let text = request
        .non_empty("timestamp")
        .ok_or_else(|| Failure::missing(Missing::Timestamp))?;
    let at = alipay_openapi::time::parse_timestamp(text).ok_or_else(|| {
        Failure::invalid_timestamp(&format!(
            "timestamp={text}，格式应为 yyyy-MM-dd HH:mm:ss（北京时间）"
        ))
    })?;
    if let Some(skew) = shared.timestamp_skew {
        let off = (*now - at).num_seconds().unsigned_abs();
        if off > skew.as_secs() {
            return Err(Failure::invalid_timestamp(&format!(
                "timestamp={text} 与网关时间相差 {off} 秒，超过允许的 {} 秒；时间戳须为北京时间（UTC+8）",
                skew.as_secs()
            )));
        }
    }
    Ok(())
}

/// utf-8 is what every SDK sends. GBK is accepted for requests that are pure ASCII (where its
/// bytes equal UTF-8's); for anything else the emulator would verify different bytes than the
/// merchant signed, so it says so instead. A missing `charset` is taken as utf-8.
fn check_charset(request: &GatewayRequest) -> Result<(), Failure> {
    let Some(charset) = request.non_empty("charset") else {
        return Ok(());
    };
    match charset.to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => Ok(()),
        "gbk" | "gb2312" => {
            if request.params().all(|(k, v)| k.is_ascii() && v.is_ascii()) {
                Ok(())
            } else {
                Err(Failure::invalid_charset(&format!(
                    "charset={charset}：本模拟网关只按 utf-8 解码非 ASCII 参数，请使用 charset=utf-8"
                )))
            }
        }
        _ => Err(Failure::invalid_charset(&format!(
            "charset={charset}，应为 utf-8 或 GBK"
        ))),
    }
}

fn parse_biz_content(request: &GatewayRequest) -> Result<Map<String, Value>, Failure> {
    let text = request
        .non_empty("biz_content")
        .ok_or_else(|| Failure::invalid_parameter("缺少 biz_content 参数"))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Failure::invalid_parameter("biz_content 必须是 JSON 对象")),
        Err(e) => Err(Failure::invalid_parameter(&format!(
            "biz_content 不是合法的 JSON（{e}）"
        ))),
    }
}
