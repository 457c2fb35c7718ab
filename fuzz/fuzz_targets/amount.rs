//! Amount parsing: `Amount::from_yuan_str`, `Money::from_yuan_str`, `Amount::from_json`. Never a
//! panic or an overflow; what parses is in range and reads back to itself from both renderings.
#![no_main]

use alipay_openapi::{Amount, MAX_FEN, Money};
use libfuzzer_sys::fuzz_target;

fn check_amount(a: Amount) {
    assert!(
        (1..=MAX_FEN).contains(&a.fen()),
        "{} fen out of range",
        a.fen()
    );
    assert_eq!(Amount::from_yuan_str(&a.to_string()), Ok(a));
    assert_eq!(Amount::from_yuan_str(&a.to_js_number()), Ok(a));
    let json: serde_json::Value = serde_json::from_str(&a.to_js_number()).expect("a JSON number");
    assert_eq!(Amount::from_json(&json), Ok(a));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(a) = Amount::from_yuan_str(text) {
        check_amount(a);
        assert_eq!(Money::from_yuan_str(text).map(|m| m.fen()), Ok(a.fen()));
    }
    if let Ok(m) = Money::from_yuan_str(text) {
        assert!(m.fen() >= 0);
        assert_eq!(Money::from_yuan_str(&m.to_string()), Ok(m));
    }
    if let Ok(a) = Amount::from_json(&serde_json::Value::String(text.to_string())) {
        check_amount(a);
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
        && let Ok(a) = Amount::from_json(&value)
    {
        check_amount(a);
    }
});
