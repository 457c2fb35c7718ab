//! Key parsing: `PrivateKey::load` / `PublicKey::load` on text (PEM, bare Base64, anything), and
//! `from_der` on raw bytes. Never a panic; a key that loads re-exports to a form that loads again
//! as the same key; an error never echoes the input.
#![no_main]

use alipay_openapi::{PrivateKey, PublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;

fn check_private(result: Result<PrivateKey, alipay_openapi::KeyError>, input: &str) {
    match result {
        Ok(key) => {
            let again =
                PrivateKey::load("again", &key.to_pkcs8_base64()).expect("re-exported key loads");
            assert_eq!(again.public_key(), key.public_key());
        }
        Err(e) => {
            let text = e.to_string();
            if input.trim().len() >= 24 && !input.contains(char::is_whitespace) {
                assert!(
                    !text.contains(input.trim()),
                    "the error echoes the key text"
                );
            }
        }
    }
}

fn check_public(result: Result<PublicKey, alipay_openapi::KeyError>) {
    if let Ok(key) = result {
        let again = PublicKey::load("again", &key.to_spki_base64()).expect("re-exported key loads");
        assert_eq!(again, key);
        assert_eq!(
            PublicKey::load("pem", &key.to_spki_pem()).expect("PEM loads"),
            key
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        // Text as a user would paste it.
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            // `load` also takes a file path; the fuzzer is not here to read the file system.
            if std::path::Path::new(text.trim()).exists() {
                return;
            }
            check_private(PrivateKey::load("fuzz", text), text);
            check_public(PublicKey::load("fuzz", text));
        }
        // DER straight in.
        1 => {
            check_private(PrivateKey::from_der("fuzz", rest), "");
            check_public(PublicKey::from_der("fuzz", rest));
        }
        // DER in PEM armour, with the label and line breaks varied.
        2 => {
            let b64 = STANDARD.encode(rest);
            let mut body = String::new();
            for (i, c) in b64.chars().enumerate() {
                if i > 0 && i % 64 == 0 {
                    body.push('\n');
                }
                body.push(c);
            }
            for label in [
                "PRIVATE KEY",
                "RSA PRIVATE KEY",
                "PUBLIC KEY",
                "RSA PUBLIC KEY",
            ] {
                let pem = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");
                check_private(PrivateKey::load("fuzz", &pem), &pem);
                check_public(PublicKey::load("fuzz", &pem));
            }
        }
        // DER as bare Base64.
        _ => {
            let b64 = STANDARD.encode(rest);
            check_private(PrivateKey::load("fuzz", &b64), &b64);
            check_public(PublicKey::load("fuzz", &b64));
        }
    }
});
