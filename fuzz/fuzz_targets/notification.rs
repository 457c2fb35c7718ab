//! Notifications: `SignedFields::from_form` on any body, then the sign content, verification and
//! `TradeNotification::from_fields`; and, signed by the platform key, verification must pass.
//! Never a panic; fields survive a round trip through the form encoding.
#![no_main]

use std::sync::LazyLock;

use alipay_openapi::{PrivateKey, PublicKey, SignType, SignedFields, TradeNotification};
use libfuzzer_sys::fuzz_target;

static PLATFORM: LazyLock<PrivateKey> = LazyLock::new(|| {
    PrivateKey::load(
        "platform",
        include_str!("../../testdata/alipay-vectors/keys/alipay-private-pkcs8.pem"),
    )
    .unwrap()
});
static PLATFORM_PUBLIC: LazyLock<PublicKey> = LazyLock::new(|| PLATFORM.public_key().clone());

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let Ok(fields) = SignedFields::from_form(body) else {
        return;
    };
    if fields.iter().next().is_some() {
        let again = SignedFields::from_form(fields.to_form().as_bytes()).expect("round trip");
        assert_eq!(again, fields);
    }
    let _ = fields.signed_content();
    let _ = fields.verify(&PLATFORM_PUBLIC, SignType::Rsa2);
    let read = TradeNotification::from_fields(fields.clone());
    if let Ok(n) = &read {
        assert!(!n.notify_id.is_empty() && !n.out_trade_no.is_empty() && !n.app_id.is_empty());
        assert!(n.total_amount.fen() > 0);
    }
    if mode & 1 == 1 {
        let sign_type = if mode & 2 == 0 {
            SignType::Rsa2
        } else {
            SignType::Rsa
        };
        let mut signed = fields.clone();
        signed.sign(&PLATFORM, sign_type).expect("signing");
        signed
            .verify(&PLATFORM_PUBLIC, SignType::Rsa2)
            .expect("what the platform signed verifies");
        let again = SignedFields::from_form(signed.to_form().as_bytes()).expect("round trip");
        again
            .clone()
            .verify(&PLATFORM_PUBLIC, SignType::Rsa2)
            .expect("and still verifies after the form encoding");
        let verified = again.verify_trade_notification(&PLATFORM_PUBLIC, SignType::Rsa2);
        assert_eq!(verified.is_ok(), read.is_ok(), "{verified:?} vs {read:?}");
    }
});
