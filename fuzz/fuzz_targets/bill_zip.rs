//! Trade bill zips: `bill::parse_trade_bill_zip` with small limits, on any bytes as the zip, and
//! on any bytes as the GBK detail (and summary) entry of a well-formed zip, which reaches the
//! decoding and CSV stages past the zip's CRC. Never a panic, never more memory than the limits
//! allow; what parses keeps every rule the parser promises, and a wrapped entry parses exactly as
//! its strictly decoded text does.
#![no_main]

use std::io::{Cursor, Write};

use alipay_openapi::bill::{
    BillError, BillLimits, BillRowKind, TradeBill, parse_detail_csv, parse_summary_csv,
    parse_trade_bill_zip,
};
use libfuzzer_sys::fuzz_target;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

const LIMITS: BillLimits = BillLimits {
    max_zip_bytes: 256 * 1024,
    max_entry_bytes: 1024 * 1024,
    max_entries: 8,
    max_rows: 1000,
    max_line_bytes: 4096,
};

fn check(bill: &TradeBill) {
    assert!(bill.rows.len() <= LIMITS.max_rows);
    let mut last_line = 0;
    for row in &bill.rows {
        assert!(row.line > last_line, "rows in file order");
        last_line = row.line;
        assert!(!row.trade_no.is_empty() && !row.out_trade_no.is_empty());
        match row.kind {
            BillRowKind::Payment => assert!(row.order_amount_fen >= 0),
            BillRowKind::Refund => {
                assert!(row.order_amount_fen <= 0);
                assert!(row.out_request_no.is_some());
            }
            _ => {}
        }
    }
}

/// A zip as Alipay writes it: GBK names without the UTF-8 flag, the summary first.
fn wrap(summary: Option<&[u8]>, detail: &[u8]) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let summary_name = encoding_rs::GBK
        .encode("2088_20240501_业务明细(汇总).csv")
        .0;
    let detail_name = encoding_rs::GBK.encode("2088_20240501_业务明细.csv").0;
    let entries = summary
        .map(|content| (&*summary_name, content))
        .into_iter()
        .chain([(&*detail_name, detail)]);
    for (name, content) in entries {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .name(name);
        writer.start_file_with_options(options).unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// What the zip of `wrap(summary, detail)` must parse to: the entries' strict GBK text parsed.
fn expected(summary: Option<&[u8]>, detail: &[u8]) -> Option<TradeBill> {
    let gbk = |bytes| encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes);
    let (account, rows) = parse_detail_csv(&gbk(detail)?, &LIMITS).ok()?;
    let summary = match summary {
        Some(bytes) => parse_summary_csv(&gbk(bytes)?, &LIMITS).ok()?,
        None => None,
    };
    Some(TradeBill {
        account,
        rows,
        summary,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(bill) = parse_trade_bill_zip(rest, &LIMITS) {
            check(&bill);
        }
        return;
    }
    // The summary, if any, up to the first NUL; the detail after it.
    let (summary, detail) = match rest.iter().position(|&b| b == 0) {
        Some(at) if mode & 2 != 0 => (Some(&rest[..at]), &rest[at + 1..]),
        _ => (None, rest),
    };
    let parsed = parse_trade_bill_zip(&wrap(summary, detail), &LIMITS);
    let not_gbk = encoding_rs::GBK
        .decode_without_bom_handling_and_without_replacement(detail)
        .is_none();
    if not_gbk {
        assert!(
            matches!(parsed, Err(BillError::NotGbk { .. })),
            "{parsed:?}"
        );
    }
    if let Ok(bill) = &parsed {
        check(bill);
    }
    assert_eq!(parsed.ok(), expected(summary, detail));
});
