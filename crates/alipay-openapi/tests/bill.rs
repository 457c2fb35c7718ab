//! The trade bill parser against bills built as Alipay builds them (GBK CSV files in a zip, GBK
//! entry names without the UTF-8 flag, the summary first) and against hostile ones: every
//! refusal is a `BillError` whose message names the entry, the line and the rule.

use std::io::{Cursor, Write};

use alipay_openapi::bill::{
    BillError, BillLimits, BillRow, BillRowKind, BillSummary, DETAIL_HEADER, SUMMARY_HEADER,
    TradeBill, parse_detail_csv, parse_summary_csv, parse_trade_bill_zip,
};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

const DETAIL_NAME: &str = "20881234567890120156_20240501_业务明细.csv";
const SUMMARY_NAME: &str = "20881234567890120156_20240501_业务明细(汇总).csv";

/// The detail rows of the realistic bill: two payments (one titled with a comma, so quoted, and
/// with spaces around some cells) and a refund of the first, its fee returned.
const ROWS: [&str; 3] = [
    "2024050122001412341234567890\t,A_20240501_0001\t,交易,书,2024-05-01 10:00:00,2024-05-01 10:00:12,,,,,abc***@163.com,12.30,12.30,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,\t,-0.07,0.00,",
    "2024050122001412341234567891\t,A_20240501_0002\t,交易,\"咖啡,大杯\",2024-05-01 11:00:00,2024-05-01 11:00:03,S01,总店,op1,T1,def***@qq.com, 100.00 , 99.50 ,0.50,0.00,0.00,0.00,0.00,,0.00,0.00,\t,-0.60,0.00,加急",
    "2024050122001412341234567890\t,A_20240501_0001\t,退款,书,2024-05-01 10:00:00,2024-05-01 15:30:00,,,,,abc***@163.com,-2.30,-2.30,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,A_20240501_0001_R1\t,0.01,0.00,",
];

fn detail_text(rows: &[&str]) -> String {
    let mut lines = vec![
        "#支付宝业务明细查询".to_string(),
        "#账号：[20881234567890120156]".into(),
        "#起始日期：[2024年05月01日 00:00:00]   终止日期：[2024年05月02日 00:00:00]".into(),
        "#-----------------------------------------业务明细列表----------------------------------------".into(),
        DETAIL_HEADER.join(","),
    ];
    lines.extend(rows.iter().map(|row| (*row).to_string()));
    lines.extend([
        "#-----------------------------------------业务明细列表结束------------------------------------".into(),
        "#交易合计：2笔，商家实收共111.80元，商家优惠共0.00元".into(),
        "#退款合计：1笔，商家实收退款共-2.30元，商家优惠退款共0.00元".into(),
        "#导出时间：[2024年05月02日 09:15:31]".into(),
    ]);
    lines.join("\r\n") + "\r\n"
}

fn summary_text(rows: &[&str]) -> String {
    let mut lines = vec![
        "#支付宝业务汇总查询".to_string(),
        "#账号：[20881234567890120156]".into(),
        "#起始日期：[2024年05月01日 00:00:00]   终止日期：[2024年05月02日 00:00:00]".into(),
        "#-----------------------------------------业务汇总列表----------------------------------------".into(),
        SUMMARY_HEADER.join(","),
    ];
    lines.extend(rows.iter().map(|row| (*row).to_string()));
    lines.extend([
        "#-----------------------------------------业务汇总列表结束------------------------------------".into(),
        "#导出时间：[2024年05月02日 09:15:31]".into(),
    ]);
    lines.join("\r\n") + "\r\n"
}

const SUMMARY_ROWS: [&str; 2] = [
    "S01,总店,1,0,100.00,99.50,0.50,0.00,0.00,-0.60,0.00,98.90",
    "合计,,2,1,110.00,109.50,0.50,0.00,0.00,-0.66,0.00,108.84",
];

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable, "{text:?} is not all GBK");
    bytes.into_owned()
}

/// A zip with the entries in order, names and contents as given, deflated. The zip crate writes
/// the UTF-8 flag only for names that are valid UTF-8, so GBK names go out without it.
fn zip_raw(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in entries {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .name(name);
        writer.start_file_with_options(options).unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A zip of GBK entries: names and contents both encoded.
fn zip_gbk(entries: &[(&str, &str)]) -> Vec<u8> {
    let encoded: Vec<(Vec<u8>, Vec<u8>)> = entries
        .iter()
        .map(|(name, content)| (gbk(name), gbk(content)))
        .collect();
    let borrowed: Vec<(&[u8], &[u8])> = encoded
        .iter()
        .map(|(name, content)| (name.as_slice(), content.as_slice()))
        .collect();
    zip_raw(&borrowed)
}

/// A bill as Alipay ships it: the summary first, then the detail.
fn bill_zip(detail: &str) -> Vec<u8> {
    zip_gbk(&[
        (SUMMARY_NAME, &summary_text(&SUMMARY_ROWS)),
        (DETAIL_NAME, detail),
    ])
}

fn limits() -> BillLimits {
    BillLimits::default()
}

fn parse_detail(rows: &[&str]) -> Result<(Option<String>, Vec<BillRow>), BillError> {
    parse_detail_csv(&detail_text(rows), &limits())
}

fn detail_error(rows: &[&str]) -> String {
    parse_detail(rows).unwrap_err().to_string()
}

fn expected_rows() -> Vec<BillRow> {
    vec![
        BillRow {
            trade_no: "2024050122001412341234567890".into(),
            out_trade_no: "A_20240501_0001".into(),
            kind: BillRowKind::Payment,
            title: "书".into(),
            created_at: "2024-05-01 10:00:00".into(),
            finished_at: "2024-05-01 10:00:12".into(),
            order_amount_fen: 1230,
            merchant_received_fen: 1230,
            out_request_no: None,
            fee_fen: -7,
            remark: String::new(),
            line: 6,
        },
        BillRow {
            trade_no: "2024050122001412341234567891".into(),
            out_trade_no: "A_20240501_0002".into(),
            kind: BillRowKind::Payment,
            title: "咖啡,大杯".into(),
            created_at: "2024-05-01 11:00:00".into(),
            finished_at: "2024-05-01 11:00:03".into(),
            order_amount_fen: 10_000,
            merchant_received_fen: 9950,
            out_request_no: None,
            fee_fen: -60,
            remark: "加急".into(),
            line: 7,
        },
        BillRow {
            trade_no: "2024050122001412341234567890".into(),
            out_trade_no: "A_20240501_0001".into(),
            kind: BillRowKind::Refund,
            title: "书".into(),
            created_at: "2024-05-01 10:00:00".into(),
            finished_at: "2024-05-01 15:30:00".into(),
            order_amount_fen: -230,
            merchant_received_fen: -230,
            out_request_no: Some("A_20240501_0001_R1".into()),
            fee_fen: 1,
            remark: String::new(),
            line: 8,
        },
    ]
}

fn expected_summary() -> BillSummary {
    BillSummary {
        payment_count: 2,
        refund_count: 1,
        order_amount_fen: 11_000,
        merchant_received_fen: 10_950,
        fee_fen: -66,
        net_fen: 10_884,
    }
}

/// Replaces `row`'s cell `column` (0-based) with `value`; the rows above have no quoted commas
/// outside row 1's title, so a plain split is right for rows 0 and 2.
fn with_cell(row: &str, column: usize, value: &str) -> String {
    let mut cells: Vec<&str> = row.split(',').collect();
    cells[column] = value;
    cells.join(",")
}

#[test]
fn a_real_bill_parses_to_every_field() {
    let zip = bill_zip(&detail_text(&ROWS));
    // As Alipay writes it: GBK names, no UTF-8 flag, the summary first.
    let archive = ZipArchive::new(Cursor::new(zip.as_slice())).unwrap();
    for (index, name) in [SUMMARY_NAME, DETAIL_NAME].into_iter().enumerate() {
        let entry = archive.by_index_data(index).unwrap();
        assert_eq!(entry.name_raw(), gbk(name));
        assert!(std::str::from_utf8(entry.name_raw()).is_err());
        assert_eq!(entry.flags().as_u16() & (1 << 11), 0, "{name}: UTF-8 flag");
    }
    let bill = parse_trade_bill_zip(&zip, &limits()).unwrap();
    assert_eq!(
        bill,
        TradeBill {
            account: Some("20881234567890120156".into()),
            rows: expected_rows(),
            summary: Some(expected_summary()),
        }
    );
}

#[test]
fn the_csv_files_parse_alone() {
    let (account, rows) = parse_detail(&ROWS).unwrap();
    assert_eq!(account.as_deref(), Some("20881234567890120156"));
    assert_eq!(rows, expected_rows());
    let summary = parse_summary_csv(&summary_text(&SUMMARY_ROWS), &limits()).unwrap();
    assert_eq!(summary, Some(expected_summary()));
    // LF line ends read the same.
    let lf = detail_text(&ROWS).replace("\r\n", "\n");
    assert_eq!(parse_detail_csv(&lf, &limits()).unwrap().1, expected_rows());
}

#[test]
fn utf8_flagged_names_and_a_bill_without_summary_are_read() {
    let detail = gbk(&detail_text(&ROWS));
    // `start_file` with a Chinese name sets the UTF-8 flag.
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    writer
        .start_file(format!("bill/{DETAIL_NAME}"), SimpleFileOptions::default())
        .unwrap();
    writer.write_all(&detail).unwrap();
    writer
        .start_file("readme.txt", SimpleFileOptions::default())
        .unwrap();
    writer.write_all(b"ignored").unwrap();
    let zip = writer.finish().unwrap().into_inner();
    let archive = ZipArchive::new(Cursor::new(zip.as_slice())).unwrap();
    assert_ne!(
        archive.by_index_data(0).unwrap().flags().as_u16() & (1 << 11),
        0
    );
    let bill = parse_trade_bill_zip(&zip, &limits()).unwrap();
    assert_eq!(bill.rows, expected_rows());
    assert_eq!(bill.summary, None);
}

#[test]
fn a_day_without_business_has_no_rows() {
    let zip = zip_gbk(&[
        (
            SUMMARY_NAME,
            &summary_text(&["合计,,0,0,0.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00"]),
        ),
        (DETAIL_NAME, &detail_text(&[])),
    ]);
    let bill = parse_trade_bill_zip(&zip, &limits()).unwrap();
    assert_eq!(bill.account.as_deref(), Some("20881234567890120156"));
    assert!(bill.rows.is_empty());
    assert_eq!(bill.summary, Some(BillSummary::default()));
    // Header only, no comments at all.
    let bare = DETAIL_HEADER.join(",");
    assert_eq!(parse_detail_csv(&bare, &limits()), Ok((None, Vec::new())));
    // A summary without a 合计 row.
    assert_eq!(parse_summary_csv(&summary_text(&[]), &limits()), Ok(None));
}

#[test]
fn what_is_not_a_zip_is_refused() {
    for bytes in [
        &b""[..],
        b"hello",
        b"PK\x03\x04",
        &[0xFF; 100],
        b"PK\x05\x06",
    ] {
        let error = parse_trade_bill_zip(bytes, &limits()).unwrap_err();
        assert!(matches!(error, BillError::NotZip { .. }), "{error}");
        assert!(error.to_string().starts_with("not a zip file"), "{error}");
    }
    let csv = gbk(&detail_text(&ROWS));
    let error = parse_trade_bill_zip(&csv, &limits()).unwrap_err();
    assert!(matches!(error, BillError::NotZip { .. }), "{error}");
}

#[test]
fn a_truncated_zip_is_refused() {
    let zip = bill_zip(&detail_text(&ROWS));
    let len = zip.len();
    for cut in [
        0,
        1,
        4,
        30,
        100,
        len / 3,
        len / 2,
        len - 60,
        len - 22,
        len - 10,
        len - 1,
    ] {
        let result = parse_trade_bill_zip(&zip[..cut], &limits());
        assert!(result.is_err(), "cut at {cut} of {len}: {result:?}");
    }
    // Every cut, and every single corrupted byte: an answer, never a panic.
    for cut in 0..len {
        let _ = parse_trade_bill_zip(&zip[..cut], &limits());
        let mut corrupted = zip.clone();
        corrupted[cut] ^= 0x55;
        let _ = parse_trade_bill_zip(&corrupted, &limits());
    }
}

#[test]
fn a_zip_without_the_detail_file_is_refused() {
    let empty = ZipWriter::new(Cursor::new(Vec::new()))
        .finish()
        .unwrap()
        .into_inner();
    let error = parse_trade_bill_zip(&empty, &limits()).unwrap_err();
    assert_eq!(error, BillError::NoDetail { entries: 0 });
    assert!(
        error
            .to_string()
            .contains("no detail file (…_业务明细.csv)"),
        "{error}"
    );

    let zip = zip_gbk(&[
        (SUMMARY_NAME, &summary_text(&SUMMARY_ROWS)),
        ("业务明细.txt", "not it"),
        (
            "20881234567890120156_20240501_业务明细.csv.bak",
            "not it either",
        ),
    ]);
    let error = parse_trade_bill_zip(&zip, &limits()).unwrap_err();
    assert_eq!(error, BillError::NoDetail { entries: 3 });
}

#[test]
fn two_detail_or_summary_files_are_refused() {
    let detail = detail_text(&ROWS);
    let other = "20881234567890120156_20240502_业务明细.csv";
    let zip = zip_gbk(&[(DETAIL_NAME, &detail), (other, &detail)]);
    let error = parse_trade_bill_zip(&zip, &limits()).unwrap_err();
    assert_eq!(
        error,
        BillError::TwoDetails {
            first: DETAIL_NAME.into(),
            second: other.into(),
        }
    );
    assert!(error.to_string().contains(other), "{error}");

    let summary = summary_text(&SUMMARY_ROWS);
    let zip = zip_gbk(&[
        (SUMMARY_NAME, &summary),
        (DETAIL_NAME, &detail),
        ("x_业务明细(汇总).csv", &summary),
    ]);
    let error = parse_trade_bill_zip(&zip, &limits()).unwrap_err();
    assert!(matches!(error, BillError::TwoSummaries { .. }), "{error}");
}

#[test]
fn too_many_entries_are_refused() {
    let detail = detail_text(&ROWS);
    let names: Vec<String> = (0..5).map(|i| format!("{i}.txt")).collect();
    let mut entries: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x")).collect();
    entries.push((DETAIL_NAME, &detail));
    let zip = zip_gbk(&entries);
    let small = BillLimits {
        max_entries: 5,
        ..limits()
    };
    let error = parse_trade_bill_zip(&zip, &small).unwrap_err();
    assert_eq!(error, BillError::TooManyEntries { count: 6, limit: 5 });
    assert_eq!(
        error.to_string(),
        "the zip has 6 entries, more than the limit 5"
    );
    let enough = BillLimits {
        max_entries: 6,
        ..limits()
    };
    assert!(parse_trade_bill_zip(&zip, &enough).is_ok());
}

#[test]
fn an_entry_name_that_is_not_gbk_is_refused() {
    let detail = gbk(&detail_text(&ROWS));
    let zip = zip_raw(&[(b"\xFF\xFE_bill.csv", b"x"), (&gbk(DETAIL_NAME), &detail)]);
    let error = parse_trade_bill_zip(&zip, &limits()).unwrap_err();
    assert_eq!(
        error,
        BillError::EntryName {
            number: 1,
            encoding: "GBK",
        }
    );
}

/// Sets the uncompressed size of a one-entry zip's entry to `size`, in its local header and
/// its central directory record, as a zip bomb would.
fn understate_size(zip: &mut [u8], size: u32) {
    let mut patched = 0;
    for at in 0..zip.len().saturating_sub(4) {
        let offset = match &zip[at..at + 4] {
            b"PK\x03\x04" => 22,
            b"PK\x01\x02" => 24,
            _ => continue,
        };
        zip[at + offset..at + offset + 4].copy_from_slice(&size.to_le_bytes());
        patched += 1;
    }
    assert_eq!(patched, 2, "one local header and one central record");
}

#[test]
fn a_zip_bomb_stops_at_the_entry_limit() {
    let small = BillLimits {
        max_entry_bytes: 1024 * 1024,
        ..limits()
    };
    let zeros = vec![0_u8; 5 * 1024 * 1024];
    let mut zip = zip_raw(&[(&gbk(DETAIL_NAME), &zeros)]);
    assert!(zip.len() < 64 * 1024, "{} bytes compressed", zip.len());

    // Honest about its size: refused before decompressing.
    let error = parse_trade_bill_zip(&zip, &small).unwrap_err();
    assert_eq!(
        error,
        BillError::EntryTooLarge {
            entry: DETAIL_NAME.into(),
            limit: 1024 * 1024,
            declared: 5 * 1024 * 1024,
        }
    );
    assert!(error.to_string().contains(DETAIL_NAME), "{error}");

    // Lying about it: decompression stops just past the declared size (the zip crate checks
    // it) or past the limit (checked here too, whatever the crate does), never at the data's end.
    for declared in [100, 1024 * 1024] {
        understate_size(&mut zip, declared);
        let error = parse_trade_bill_zip(&zip, &small).unwrap_err();
        assert!(
            matches!(&error, BillError::Entry { entry, .. } | BillError::EntryTooLarge { entry, .. } if entry == DETAIL_NAME),
            "{error}"
        );
    }
}

#[test]
fn a_zip_over_the_size_limit_is_refused_unread() {
    let zip = bill_zip(&detail_text(&ROWS));
    let small = BillLimits {
        max_zip_bytes: zip.len() - 1,
        ..limits()
    };
    let error = parse_trade_bill_zip(&zip, &small).unwrap_err();
    assert_eq!(
        error,
        BillError::ZipTooLarge {
            size: zip.len(),
            limit: zip.len() - 1,
        }
    );
    let exact = BillLimits {
        max_zip_bytes: zip.len(),
        ..limits()
    };
    assert!(parse_trade_bill_zip(&zip, &exact).is_ok());
}

#[test]
fn content_that_is_not_gbk_is_refused() {
    // The bill written as UTF-8: `#支付宝业务明细查询` is 1 + 9 × 3 bytes, so its last byte is
    // a GBK lead byte before the `\r`, which GBK refuses (line 1).
    let utf8 = detail_text(&ROWS);
    let zip = zip_raw(&[(&gbk(DETAIL_NAME), utf8.as_bytes())]);
    let error = parse_trade_bill_zip(&zip, &limits()).unwrap_err();
    let BillError::NotGbk { file, line, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!((file.as_str(), *line), (DETAIL_NAME, 1), "{error}");
    assert!(error.to_string().contains("is not GBK text"), "{error}");

    // A byte GBK never uses, in the summary.
    let mut summary = gbk(&summary_text(&SUMMARY_ROWS));
    let at = summary.len() - 3;
    summary[at] = 0xFF;
    let zip = zip_raw(&[
        (&gbk(SUMMARY_NAME), &summary),
        (&gbk(DETAIL_NAME), &gbk(&detail_text(&ROWS))),
    ]);
    let error = parse_trade_bill_zip(&zip, &limits()).unwrap_err();
    assert!(
        matches!(&error, BillError::NotGbk { file, offset, line: 9 } if file == SUMMARY_NAME && *offset == at),
        "{error}"
    );
}

#[test]
fn a_wrong_header_is_refused() {
    let text = detail_text(&ROWS).replace("订单金额（元）", "订单金额(元)");
    let zip = bill_zip(&text);
    let error = parse_trade_bill_zip(&zip, &limits()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{DETAIL_NAME} line 5: header cell 12 is \"订单金额(元)\", expected \"订单金额（元）\""
        )
    );

    let text = detail_text(&ROWS).replace(",备注", "");
    let error = parse_detail_csv(&text, &limits()).unwrap_err();
    assert_eq!(
        error,
        BillError::HeaderWidth {
            file: "业务明细.csv".into(),
            line: 5,
            found: 24,
            expected: 25,
        }
    );

    // Spaces and tabs around header cells are fine.
    let spaced = detail_text(&ROWS).replace(",业务类型,", ", 业务类型\t,");
    assert_eq!(
        parse_detail_csv(&spaced, &limits()).unwrap().1,
        expected_rows()
    );

    // The summary header is not the detail one, and a file of comments has none.
    let error = parse_summary_csv(&detail_text(&ROWS), &limits()).unwrap_err();
    assert!(
        matches!(
            error,
            BillError::HeaderWidth {
                line: 5,
                found: 25,
                expected: 12,
                ..
            }
        ),
        "{error}"
    );
    let error = parse_detail_csv("#支付宝业务明细查询\n#导出时间：[…]\n", &limits()).unwrap_err();
    assert_eq!(error.to_string(), "业务明细.csv has no header row");
}

#[test]
fn a_row_of_the_wrong_width_is_refused() {
    let short = ROWS[2].strip_suffix(',').unwrap();
    let error = detail_error(&[ROWS[0], ROWS[1], short]);
    assert_eq!(error, "业务明细.csv line 8 has 24 cells, the header has 25");
    // An unquoted comma in a title splits it.
    let unquoted = ROWS[1].replace("\"咖啡,大杯\"", "咖啡,大杯");
    let error = detail_error(&[ROWS[0], &unquoted]);
    assert_eq!(error, "业务明细.csv line 7 has 26 cells, the header has 25");
    // In the zip, the message names the entry.
    let zip = bill_zip(&detail_text(&[ROWS[0], ROWS[1], short]));
    let error = parse_trade_bill_zip(&zip, &limits()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{DETAIL_NAME} line 8 has 24 cells, the header has 25")
    );
}

#[test]
fn a_bad_amount_is_refused() {
    let bad = with_cell(ROWS[2], 11, "1.234");
    let error = detail_error(&[ROWS[0], &bad]);
    assert_eq!(
        error,
        "业务明细.csv line 7: 订单金额（元） \"1.234\" is not a yuan amount with at most two decimals"
    );
    for (column, value) in [(12, "1e2"), (22, "+0.01"), (13, "一元"), (23, "0.001")] {
        let bad = with_cell(ROWS[0], column, value);
        let error = parse_detail(&[&bad]).unwrap_err();
        assert!(
            matches!(&error, BillError::Amount { line: 6, column: c, found, .. } if *c == DETAIL_HEADER[column] && found == value),
            "{error}"
        );
    }
    // 订单金额 and 商家实收 are required; the other money cells may be empty.
    let empty = with_cell(ROWS[0], 12, " ");
    assert_eq!(
        detail_error(&[&empty]),
        "业务明细.csv line 6: 商家实收（元） is empty"
    );
    let mut sparse = ROWS[0].to_string();
    for column in [13, 14, 15, 16, 17, 19, 20, 22, 23] {
        sparse = with_cell(&sparse, column, "");
    }
    let (_, rows) = parse_detail(&[&sparse]).unwrap();
    assert_eq!(rows[0].fee_fen, 0);
    assert_eq!(rows[0].order_amount_fen, 1230);
}

#[test]
fn ids_are_required() {
    for column in [0, 1] {
        let empty = with_cell(ROWS[0], column, "\t");
        let error = parse_detail(&[&empty]).unwrap_err();
        assert_eq!(
            error,
            BillError::Empty {
                file: "业务明细.csv".into(),
                line: 6,
                column: DETAIL_HEADER[column],
            }
        );
    }
}

#[test]
fn refund_rows_follow_the_refund_rules() {
    let no_request = with_cell(ROWS[2], 21, "\t");
    assert_eq!(
        detail_error(&[ROWS[0], ROWS[1], &no_request]),
        "业务明细.csv line 8: a refund (退款) row without 退款批次号/请求号"
    );
    let positive = with_cell(ROWS[2], 11, "2.30");
    assert_eq!(
        detail_error(&[ROWS[0], ROWS[1], &positive]),
        "业务明细.csv line 8: 订单金额（元） \"2.30\" is positive on a refund (退款) row"
    );
    let negative = with_cell(ROWS[0], 11, "-12.30");
    assert_eq!(
        detail_error(&[&negative]),
        "业务明细.csv line 6: 订单金额（元） \"-12.30\" is negative on a payment (交易) row"
    );
    // A payment row may carry a request number; another kind keeps its text and any sign.
    let tagged = with_cell(ROWS[0], 21, "R9\t");
    assert_eq!(
        parse_detail(&[&tagged]).unwrap().1[0]
            .out_request_no
            .as_deref(),
        Some("R9")
    );
    let other = with_cell(&with_cell(ROWS[0], 2, "冻结"), 11, "-1.00");
    let rows = parse_detail(&[&other]).unwrap().1;
    assert_eq!(rows[0].kind, BillRowKind::Other("冻结".into()));
    assert_eq!(rows[0].order_amount_fen, -100);
}

#[test]
fn lines_and_rows_are_bounded() {
    let text = detail_text(&ROWS);
    let longest = text.lines().map(str::len).max().unwrap();
    let tight = BillLimits {
        max_line_bytes: longest,
        ..limits()
    };
    assert!(parse_detail_csv(&text, &tight).is_ok());
    let title = "书".repeat(2000);
    let long = ROWS[0].replace(",书,", &format!(",{title},"));
    let small = BillLimits {
        max_line_bytes: 4096,
        ..limits()
    };
    let error = parse_detail_csv(&detail_text(&[ROWS[1], &long]), &small).unwrap_err();
    assert_eq!(
        error.to_string(),
        "业务明细.csv line 7: a line longer than 4096 bytes"
    );

    let two = BillLimits {
        max_rows: 2,
        ..limits()
    };
    let error = parse_detail_csv(&text, &two).unwrap_err();
    assert_eq!(error.to_string(), "业务明细.csv has more than 2 rows");
    let zip = bill_zip(&text);
    let error = parse_trade_bill_zip(&zip, &two).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{DETAIL_NAME} has more than 2 rows")
    );
    let three = BillLimits {
        max_rows: 3,
        ..limits()
    };
    assert!(parse_trade_bill_zip(&zip, &three).is_ok());
}

#[test]
fn the_summary_is_checked_too() {
    let two_totals = summary_text(&[SUMMARY_ROWS[1], SUMMARY_ROWS[1]]);
    assert_eq!(
        parse_summary_csv(&two_totals, &limits())
            .unwrap_err()
            .to_string(),
        "业务明细(汇总).csv line 7: a second 合计 row"
    );
    let bad_count = SUMMARY_ROWS[1].replace(",2,1,", ",+2,1,");
    assert_eq!(
        parse_summary_csv(&summary_text(&[&bad_count]), &limits())
            .unwrap_err()
            .to_string(),
        "业务明细(汇总).csv line 6: 交易订单总笔数 \"+2\" is not a count"
    );
    let bad_store = SUMMARY_ROWS[0].replace("98.90", "98.9.0");
    let error =
        parse_summary_csv(&summary_text(&[&bad_store, SUMMARY_ROWS[1]]), &limits()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "业务明细(汇总).csv line 6: 实收净额（元） \"98.9.0\" is not a yuan amount with at most two decimals"
    );
    let narrow = SUMMARY_ROWS[1].replace(",108.84", "");
    let error = parse_summary_csv(&summary_text(&[&narrow]), &limits()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "业务明细(汇总).csv line 6 has 11 cells, the header has 12"
    );
    // In the zip, the summary's entry is named.
    let zip = zip_gbk(&[
        (SUMMARY_NAME, &two_totals),
        (DETAIL_NAME, &detail_text(&ROWS)),
    ]);
    let error = parse_trade_bill_zip(&zip, &limits()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{SUMMARY_NAME} line 7: a second 合计 row")
    );
}

#[test]
fn a_quoted_cell_may_span_lines_and_later_lines_still_count() {
    let two_line = ROWS[1].replace("\"咖啡,大杯\"", "\"咖啡,\r\n#大杯\"");
    let (_, rows) = parse_detail(&[ROWS[0], &two_line, ROWS[2]]).unwrap();
    assert_eq!(rows[1].title, "咖啡,\r\n#大杯");
    let lines: Vec<usize> = rows.iter().map(|row| row.line).collect();
    assert_eq!(lines, [6, 7, 9]);
}

/// The fuzz seeds are this bill, so the fuzzer starts from files that parse. `bill_zip` seeds
/// start with the target's mode byte: 0 for a zip (these written by Python's zipfile, GBK names
/// without the UTF-8 flag), odd for entry contents the target zips itself.
#[test]
fn the_fuzz_seeds_are_valid_bills() {
    let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds");
    let read = |path: &str| std::fs::read(format!("{seeds}/{path}")).unwrap();
    let zip_seed = |name: &str| {
        let seed = read(&format!("bill_zip/{name}"));
        assert_eq!(seed[0], 0, "{name}: the zip mode");
        parse_trade_bill_zip(&seed[1..], &limits()).unwrap()
    };
    for name in ["real_deflated", "real_stored"] {
        let bill = zip_seed(name);
        assert_eq!(bill.rows, expected_rows(), "{name}");
        assert_eq!(bill.summary, Some(expected_summary()), "{name}");
    }
    assert!(zip_seed("empty_day").rows.is_empty());
    let detail = String::from_utf8(read("bill_csv/detail")).unwrap();
    assert_eq!(detail, detail_text(&ROWS));
    let summary = String::from_utf8(read("bill_csv/summary")).unwrap();
    assert_eq!(summary, summary_text(&SUMMARY_ROWS));
    let wrapped = read("bill_zip/wrapped_both");
    assert_eq!(
        wrapped,
        [&[3][..], &gbk(&summary), &[0], &gbk(&detail)].concat()
    );
    assert_eq!(
        read("bill_zip/wrapped_detail"),
        [&[1][..], &gbk(&detail)].concat()
    );
}
