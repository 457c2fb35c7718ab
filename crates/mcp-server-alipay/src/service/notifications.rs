//! Alipay's asynchronous notifications. One changes the ledger only when its signature verifies
//! with `AP_PUB_KEY`, it is for our app, the order is ours and the amount is the order's; then it
//! is deduplicated on `notify_id` and written (`crate::domain::notify`). Anything else is refused
//! and changes nothing but a refusal record. The receiver answers `success` only for [`Received::Taken`].

use alipay_openapi::{NotifyError, SignedFields, TradeNotification};

use crate::domain::notify::amount_mismatch;
use crate::domain::{OutRequestNo, OutTradeNo};
use crate::ledger::{NotifyApply, RawForm, ReceivedNotification};
use crate::service::Services;

/// What became of a notification.
#[derive(Debug)]
pub enum Received {
    /// Recorded (or a retry of one already recorded): answer `success`.
    Taken {
        notification: ReceivedNotification,
        /// False for a retry: nothing changed.
        applied: bool,
    },
    /// Refused, with the reason recorded: answer `fail` (Alipay retries a `fail`).
    Refused(Refused),
}

/// A refused notification: why, and what it named, for the refusal record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub reason: String,
    pub notify_id: Option<String>,
    pub out_trade_no: Option<String>,
}

impl Refused {
    pub fn plain(reason: String) -> Self {
        Self {
            reason,
            notify_id: None,
            out_trade_no: None,
        }
    }
}

/// Check and apply a form-encoded notification body, recording a refusal.
pub async fn receive(svc: &Services, content_type: &str, body: &[u8]) -> Received {
    let result = check(svc, content_type, body).await;
    if let Err(refused) = &result {
        refuse(svc, refused).await;
    }
    match result {
        Ok((notification, NotifyApply::Applied)) => Received::Taken {
            notification,
            applied: true,
        },
        Ok((notification, NotifyApply::Duplicate)) => Received::Taken {
            notification,
            applied: false,
        },
        Ok((n, refusal)) => {
            let reason = match refusal {
                NotifyApply::ReusedId => format!(
                    "notify_id {} was already used by a different notification",
                    n.notify_id
                ),
                NotifyApply::Stale { incoming, known } => format!(
                    "stale: {incoming} after the order became {}",
                    known.as_ref().map_or("?", |k| k.as_str())
                ),
                NotifyApply::Applied | NotifyApply::Duplicate => "refused".to_string(),
            };
            let refused = Refused {
                reason,
                notify_id: Some(n.notify_id.clone()),
                out_trade_no: Some(n.out_trade_no.to_string()),
            };
            refuse(svc, &refused).await;
            Received::Refused(refused)
        }
        Err(refused) => Received::Refused(refused),
    }
}

/// Record a refusal (a body that could not be read at all, too).
pub async fn refuse(svc: &Services, refused: &Refused) {
    tracing::warn!(
        notify_id = refused.notify_id,
        out_trade_no = refused.out_trade_no,
        reason = refused.reason,
        "notification refused"
    );
    if let Err(e) = svc
        .ledger
        .reject_notification(
            refused.notify_id.as_deref(),
            refused.out_trade_no.as_deref(),
            &refused.reason,
        )
        .await
    {
        tracing::error!(error = %e, "cannot record a refused notification");
    }
}

async fn check(
    svc: &Services,
    content_type: &str,
    body: &[u8],
) -> Result<(ReceivedNotification, NotifyApply), Refused> {
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(Refused::plain(format!(
            "content type {content_type:?} is not application/x-www-form-urlencoded"
        )));
    }
    let fields = SignedFields::from_form(body).map_err(|e| Refused::plain(e.to_string()))?;
    let (notify_id, named_order) = (
        fields.get("notify_id").map(str::to_string),
        fields.get("out_trade_no").map(str::to_string),
    );
    let named = |reason: String| Refused {
        reason,
        notify_id: notify_id.clone(),
        out_trade_no: named_order.clone(),
    };
    let config = svc.client.config();
    let sign_type = config.merchant.sign_type;
    // Alipay signs with the algorithm the app is configured for; a weaker one named in the
    // notification itself (legacy SHA1 for an RSA2 app) is not taken.
    if let Some(claimed) = fields.get("sign_type")
        && claimed != sign_type.as_str()
    {
        return Err(named(format!(
            "sign_type {claimed:?}, but this app signs with {sign_type} (AP_ENCRYPTION_ALGO)"
        )));
    }
    // What a retry repeats exactly: every field but the signature and the send time (Alipay may
    // stamp each delivery anew).
    // When Alipay sent it, on its clock: whether a close came at or after the order's expiry.
    let seen_at = fields
        .get("gmt_close")
        .or_else(|| fields.get("notify_time"))
        .map(str::to_string);
    let content = alipay_openapi::notify_sign_content(
        fields.iter().filter(|(k, _)| *k != "notify_time"),
        false,
    );
    let n: TradeNotification = fields
        .verify_trade_notification(&config.alipay_public_key, sign_type)
        .map_err(|e| {
            named(match e {
                NotifyError::Signature(s) => {
                    format!("signature does not verify with AP_PUB_KEY: {s}")
                }
                other => other.to_string(),
            })
        })?;
    let our_app = &config.merchant.app_id;
    if &n.app_id != our_app {
        return Err(named(format!(
            "app_id {} is not ours ({our_app})",
            n.app_id
        )));
    }
    // A number that breaks Alipay's own rule can name no order of ours.
    let out_trade_no = OutTradeNo::parse(&n.out_trade_no)
        .ok_or_else(|| named(format!("order {} is not in the ledger", n.out_trade_no)))?;
    let order = svc
        .ledger
        .order(&out_trade_no)
        .await
        .map_err(|e| named(e.to_string()))?
        .ok_or_else(|| named(format!("order {} is not in the ledger", n.out_trade_no)))?;
    if let Some(mismatch) = amount_mismatch(n.total_amount, order.total_amount) {
        return Err(named(mismatch));
    }
    let received = ReceivedNotification {
        notify_id: n.notify_id.clone(),
        out_trade_no,
        trade_status: n.trade_status.clone(),
        trade_no: n.trade_no.clone(),
        refunded: n.refund_fee,
        refund_request_no: n
            .out_biz_no
            .as_deref()
            .filter(|_| n.refund_fee.is_some())
            .and_then(OutRequestNo::parse),
        content,
        seen_at,
        paid_at: n.gmt_payment.clone(),
        raw: RawForm {
            content_type: content_type.to_string(),
            body: body.to_vec(),
        },
    };
    let applied = svc
        .ledger
        .apply_notification(&received)
        .await
        .map_err(|e| named(e.to_string()))?;
    Ok((received, applied))
}
