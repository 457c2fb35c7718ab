//! Trade bill CSV files: `bill::parse_detail_csv` and `parse_summary_csv` on any text, and
//! `yuan_to_fen` on every cell. Never a panic; what parses keeps every rule the parser promises,
//! and its amounts read back to themselves.
#![no_main]

use alipay_openapi::bill::{
    BillLimits, BillRowKind, parse_detail_csv, parse_summary_csv, yuan_to_fen,
};
use libfuzzer_sys::fuzz_target;

const LIMITS: BillLimits = BillLimits {
    max_zip_bytes: 256 * 1024,
    max_entry_bytes: 1024 * 1024,
    max_entries: 8,
    max_rows: 100,
    max_line_bytes: 1024,
};

/// `fen` written the way a bill writes it, which must parse back to `fen`.
fn round_trips(fen: i64) {
    let sign = if fen < 0 { "-" } else { "" };
    let yuan = format!(
        "{sign}{}.{:02}",
        fen.unsigned_abs() / 100,
        fen.unsigned_abs() % 100
    );
    assert_eq!(yuan_to_fen(&yuan), Some(fen), "{yuan}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((_, rows)) = parse_detail_csv(&text, &LIMITS) {
        assert!(rows.len() <= LIMITS.max_rows);
        let mut last_line = 0;
        for row in &rows {
            assert!(row.line > last_line, "rows in file order");
            last_line = row.line;
            assert!(!row.trade_no.is_empty() && !row.out_trade_no.is_empty());
            if row.kind == BillRowKind::Refund {
                assert!(row.order_amount_fen <= 0 && row.out_request_no.is_some());
            }
            if row.kind == BillRowKind::Payment {
                assert!(row.order_amount_fen >= 0);
            }
            for fen in [row.order_amount_fen, row.merchant_received_fen, row.fee_fen] {
                round_trips(fen);
            }
        }
    }
    if let Ok(Some(summary)) = parse_summary_csv(&text, &LIMITS) {
        for fen in [
            summary.order_amount_fen,
            summary.merchant_received_fen,
            summary.fee_fen,
            summary.net_fen,
        ] {
            round_trips(fen);
        }
    }
    // Any short line as an amount: what parses is bounded and reads back to itself.
    for cell in text.lines().take(16).flat_map(|line| line.split(',')) {
        if let Some(fen) = yuan_to_fen(cell) {
            assert!(fen.unsigned_abs() <= 1_000_000_000_000);
            round_trips(fen);
        }
    }
});
