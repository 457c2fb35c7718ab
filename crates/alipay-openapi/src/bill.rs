//! Alipay's trade bill (收单业务账单), as `alipay.data.dataservice.bill.downloadurl.query` points
//! at it: a zip, fetched from a pre-signed URL within about 30 s of the answer, holding two CSV
//! files whose entry names and contents are GBK (the entry names without the UTF-8 flag):
//!
//! - `<account>_<yyyyMMdd>_业务明细.csv`, the detail: `#` lines (`#支付宝业务明细查询`,
//!   `#账号：[2088…]`, `#起始日期：[yyyy年MM月dd日 00:00:00]   终止日期：[…]`,
//!   `#-----------------------------------------业务明细列表----------------------------------------`),
//!   then the 25-column header row [`DETAIL_HEADER`], one row per payment (业务类型 `交易`) or refund
//!   (`退款`, amounts negative, 退款批次号/请求号 = the refund's `out_request_no`), then
//!   `#-----…业务明细列表结束…-----`, `#交易合计：N笔，商家实收共X元，商家优惠共Y元`,
//!   `#退款合计：N笔，商家实收退款共X元，商家优惠退款共Y元` and `#导出时间：[…]`. Id cells
//!   (支付宝交易号, 商户订单号, 退款批次号/请求号) end in a tab, which keeps Excel from turning them
//!   into numbers; cells may have spaces around them. 服务费 is negative when charged (and
//!   positive on a refund row, when the fee is returned).
//! - `<account>_<yyyyMMdd>_业务明细(汇总).csv`, the summary: `#` lines, the 12-column header row
//!   [`SUMMARY_HEADER`], one row per store and a `合计` row (门店编号 `合计`), `#` footer lines.
//!   Real zips put the summary first.
//!
//! A bill comes from the network and may be anything: every size is bounded ([`BillLimits`]),
//! every cell is checked, and a file that is not what it should be is a [`BillError`] naming the
//! entry, the line and the rule, never a panic.

/// The detail file's header row.
pub const DETAIL_HEADER: [&str; 25] = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
];

/// The summary file's header row.
pub const SUMMARY_HEADER: [&str; 12] = [
    "门店编号",
    "门店名称",
    "交易订单总笔数",
    "退款订单总笔数",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "卡消费金额（元）",
    "服务费（元）",
    "分润（元）",
    "实收净额（元）",
];

/// How much of a hostile file is read before it is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillLimits {
    /// The zip as downloaded.
    pub max_zip_bytes: usize,
    /// One entry, uncompressed (a zip bomb stops here).
    pub max_entry_bytes: u64,
    pub max_entries: usize,
    /// Detail rows.
    pub max_rows: usize,
    /// One line of a CSV file.
    pub max_line_bytes: usize,
}

impl Default for BillLimits {
    fn default() -> Self {
        Self {
            max_zip_bytes: 64 * 1024 * 1024,
            // A day of ~300 000 rows; memory stays a few hundred MB at the worst.
            max_entry_bytes: 64 * 1024 * 1024,
            max_entries: 16,
            max_rows: 500_000,
            max_line_bytes: 64 * 1024,
        }
    }
}

/// 业务类型.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BillRowKind {
    /// `交易`.
    Payment,
    /// `退款`.
    Refund,
    /// Anything else, as written.
    Other(String),
}

/// One detail row, ids trimmed of their tab and spaces, amounts in signed fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillRow {
    /// 支付宝交易号.
    pub trade_no: String,
    /// 商户订单号.
    pub out_trade_no: String,
    pub kind: BillRowKind,
    /// 商品名称.
    pub title: String,
    /// 创建时间, `yyyy-MM-dd HH:mm:ss` Beijing.
    pub created_at: String,
    /// 完成时间, `yyyy-MM-dd HH:mm:ss` Beijing.
    pub finished_at: String,
    /// 订单金额（元）, negative on a refund row.
    pub order_amount_fen: i64,
    /// 商家实收（元）, negative on a refund row.
    pub merchant_received_fen: i64,
    /// 退款批次号/请求号: the refund's `out_request_no` (refund rows).
    pub out_request_no: Option<String>,
    /// 服务费（元）: negative when charged, positive when returned.
    pub fee_fen: i64,
    /// 备注.
    pub remark: String,
    /// The row's line in the detail file (1-based), for messages.
    pub line: usize,
}

/// The summary file's `合计` row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillSummary {
    pub payment_count: u64,
    pub refund_count: u64,
    pub order_amount_fen: i64,
    pub merchant_received_fen: i64,
    pub fee_fen: i64,
    pub net_fen: i64,
}

/// A parsed trade bill.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TradeBill {
    /// `#账号：[…]`.
    pub account: Option<String>,
    pub rows: Vec<BillRow>,
    /// From the summary file, when the zip has one.
    pub summary: Option<BillSummary>,
}

use std::io::{Cursor, Read};

use csv::StringRecord;
use encoding_rs::{DecoderResult, GBK};
use zip::ZipArchive;

/// The label of the detail file in messages of [`parse_detail_csv`]; [`parse_trade_bill_zip`]
/// puts the entry's full name in its place.
const DETAIL_FILE: &str = "业务明细.csv";
/// The label of the summary file in messages of [`parse_summary_csv`].
const SUMMARY_FILE: &str = "业务明细(汇总).csv";
/// How the detail entry's name ends.
const DETAIL_SUFFIX: &str = "业务明细.csv";
/// How the summary entry's name ends.
const SUMMARY_SUFFIX: &str = "业务明细(汇总).csv";
/// General purpose bit 11 (APPNOTE 4.4.4, "language encoding"): the name is UTF-8. The zip
/// crate also sets it when it swaps in a matching Info-ZIP Unicode Path (which is UTF-8).
const UTF8_NAME_FLAG: u16 = 1 << 11;
/// The largest amount a bill cell may hold, in fen (10 billion yuan): far above any real trade,
/// low enough that sums of two million rows cannot overflow an `i64`.
const MAX_BILL_FEN: i64 = 1_000_000_000_000;
/// 门店编号 of the summary's total row.
const TOTAL_STORE: &str = "合计";

/// Why a bill was refused. `file` is the entry's name (or `业务明细.csv` / `业务明细(汇总).csv`
/// when the CSV was given directly); lines are 1-based lines of that file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BillError {
    #[error("the bill is {size} bytes, more than the limit {limit}")]
    ZipTooLarge { size: usize, limit: usize },
    #[error("not a zip file: {reason}")]
    NotZip { reason: String },
    #[error("the zip has {count} entries, more than the limit {limit}")]
    TooManyEntries { count: usize, limit: usize },
    /// `number` is 1-based, in central directory order.
    #[error("the name of zip entry number {number} is not {encoding} text")]
    EntryName {
        number: usize,
        encoding: &'static str,
    },
    #[error("the zip has no detail file (…_{DETAIL_SUFFIX}) among its {entries} entries")]
    NoDetail { entries: usize },
    #[error("the zip has two detail files (…_{DETAIL_SUFFIX}): {first} and {second}")]
    TwoDetails { first: String, second: String },
    #[error("the zip has two summary files (…_{SUMMARY_SUFFIX}): {first} and {second}")]
    TwoSummaries { first: String, second: String },
    #[error("zip entry {entry} cannot be read: {reason}")]
    Entry { entry: String, reason: String },
    /// `declared` is the size the zip claims, which a bomb understates.
    #[error(
        "zip entry {entry} is over the limit of {limit} bytes uncompressed (the zip says {declared})"
    )]
    EntryTooLarge {
        entry: String,
        limit: u64,
        declared: u64,
    },
    #[error("{file} is not GBK text: malformed bytes at byte {offset} (line {line})")]
    NotGbk {
        file: String,
        offset: usize,
        line: usize,
    },
    #[error("{file} line {line}: a line longer than {limit} bytes")]
    LineTooLong {
        file: String,
        line: usize,
        limit: usize,
    },
    #[error("{file} has no header row")]
    NoHeader { file: String },
    #[error("{file} line {line}: the header has {found} cells, expected {expected}")]
    HeaderWidth {
        file: String,
        line: usize,
        found: usize,
        expected: usize,
    },
    /// `column` is 1-based.
    #[error("{file} line {line}: header cell {column} is {found:?}, expected {expected:?}")]
    HeaderCell {
        file: String,
        line: usize,
        column: usize,
        found: String,
        expected: &'static str,
    },
    #[error("{file} line {line} has {found} cells, the header has {expected}")]
    CellCount {
        file: String,
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("{file} line {line}: {column} is empty")]
    Empty {
        file: String,
        line: usize,
        column: &'static str,
    },
    #[error(
        "{file} line {line}: {column} {found:?} is not a yuan amount with at most two decimals"
    )]
    Amount {
        file: String,
        line: usize,
        column: &'static str,
        found: String,
    },
    #[error("{file} line {line}: {column} {found:?} is not a count")]
    Count {
        file: String,
        line: usize,
        column: &'static str,
        found: String,
    },
    #[error("{file} line {line}: a refund (退款) row without 退款批次号/请求号")]
    RefundWithoutRequestNo { file: String, line: usize },
    #[error("{file} line {line}: 订单金额（元） {found:?} is negative on a payment (交易) row")]
    NegativePayment {
        file: String,
        line: usize,
        found: String,
    },
    #[error("{file} line {line}: 订单金额（元） {found:?} is positive on a refund (退款) row")]
    PositiveRefund {
        file: String,
        line: usize,
        found: String,
    },
    #[error("{file} line {line}: a second {TOTAL_STORE} row")]
    TwoTotals { file: String, line: usize },
    #[error("{file} has more than {limit} rows")]
    TooManyRows { file: String, limit: usize },
    #[error("{file} line {line}: {reason}")]
    Csv {
        file: String,
        line: usize,
        reason: String,
    },
}

impl BillError {
    /// Names the zip entry instead of the generic file label.
    fn in_file(mut self, name: &str) -> Self {
        if let Self::NotGbk { file, .. }
        | Self::LineTooLong { file, .. }
        | Self::NoHeader { file }
        | Self::HeaderWidth { file, .. }
        | Self::HeaderCell { file, .. }
        | Self::CellCount { file, .. }
        | Self::Empty { file, .. }
        | Self::Amount { file, .. }
        | Self::Count { file, .. }
        | Self::RefundWithoutRequestNo { file, .. }
        | Self::NegativePayment { file, .. }
        | Self::PositiveRefund { file, .. }
        | Self::TwoTotals { file, .. }
        | Self::TooManyRows { file, .. }
        | Self::Csv { file, .. } = &mut self
        {
            name.clone_into(file);
        }
        self
    }
}

/// A yuan amount as a bill writes it (`12`, `12.3`, `12.30`, `-0.06`) in fen: an optional `-`,
/// digits, optionally `.` and one or two digits; no `+`, exponent or spaces; at most 10^12 fen
/// either way. Anything else is `None`.
pub fn yuan_to_fen(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, cents) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, cents(fraction)?),
        None => (unsigned, 0),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Checked all the way: a long run of digits is refused, not wrapped.
    let fen = whole
        .bytes()
        .try_fold(0_i64, |acc, digit| {
            acc.checked_mul(10)?.checked_add(i64::from(digit - b'0'))
        })?
        .checked_mul(100)?
        .checked_add(cents)?;
    if fen > MAX_BILL_FEN {
        return None;
    }
    Some(if negative { -fen } else { fen })
}

/// The fen of a one- or two-digit fraction (`5` → 50, `05` → 5).
fn cents(fraction: &str) -> Option<i64> {
    let digits = fraction.as_bytes();
    if digits.is_empty() || digits.len() > 2 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let tenths = i64::from(digits[0] - b'0') * 10;
    Some(tenths + digits.get(1).map_or(0, |d| i64::from(d - b'0')))
}

/// Reads a trade bill zip as downloaded: finds the detail entry (`…_业务明细.csv`, required) and
/// the summary entry (`…_业务明细(汇总).csv`, optional), ignores the rest, and parses both. Every
/// size is bounded by `limits`; entries are decompressed in memory, each at most
/// `max_entry_bytes` however small the zip claims it is.
pub fn parse_trade_bill_zip(zip: &[u8], limits: &BillLimits) -> Result<TradeBill, BillError> {
    if zip.len() > limits.max_zip_bytes {
        return Err(BillError::ZipTooLarge {
            size: zip.len(),
            limit: limits.max_zip_bytes,
        });
    }
    let mut archive = ZipArchive::new(Cursor::new(zip)).map_err(|e| BillError::NotZip {
        reason: e.to_string(),
    })?;
    if archive.len() > limits.max_entries {
        return Err(BillError::TooManyEntries {
            count: archive.len(),
            limit: limits.max_entries,
        });
    }
    let entries = find_entries(&archive)?;
    let (account, rows) = {
        let (index, name) = &entries.detail;
        let text = read_gbk_entry(&mut archive, *index, name, limits.max_entry_bytes)?;
        parse_detail_csv(&text, limits).map_err(|e| e.in_file(name))?
    };
    let summary = match &entries.summary {
        Some((index, name)) => {
            let text = read_gbk_entry(&mut archive, *index, name, limits.max_entry_bytes)?;
            parse_summary_csv(&text, limits).map_err(|e| e.in_file(name))?
        }
        None => None,
    };
    Ok(TradeBill {
        account,
        rows,
        summary,
    })
}

type Archive<'a> = ZipArchive<Cursor<&'a [u8]>>;

/// The bill's entries: index and decoded name.
struct BillEntries {
    detail: (usize, String),
    summary: Option<(usize, String)>,
}

fn find_entries(archive: &Archive<'_>) -> Result<BillEntries, BillError> {
    let mut detail: Option<(usize, String)> = None;
    let mut summary: Option<(usize, String)> = None;
    for index in 0..archive.len() {
        let name = entry_name(archive, index)?;
        // `(汇总).csv` does not end in `业务明细.csv`, so the two tests never both hold.
        let slot = if name.ends_with(SUMMARY_SUFFIX) {
            &mut summary
        } else if name.ends_with(DETAIL_SUFFIX) {
            &mut detail
        } else {
            continue;
        };
        if let Some((_, first)) = slot.take() {
            let second = name;
            return Err(if second.ends_with(SUMMARY_SUFFIX) {
                BillError::TwoSummaries { first, second }
            } else {
                BillError::TwoDetails { first, second }
            });
        }
        *slot = Some((index, name));
    }
    let detail = detail.ok_or(BillError::NoDetail {
        entries: archive.len(),
    })?;
    Ok(BillEntries { detail, summary })
}

/// An entry's name: UTF-8 when the zip says so, GBK (what Alipay writes) otherwise; strictly,
/// since a name that does not decode cannot be trusted to be the file it looks like.
fn entry_name(archive: &Archive<'_>, index: usize) -> Result<String, BillError> {
    let number = index + 1;
    let entry = archive.by_index_data(index).map_err(|e| BillError::Entry {
        entry: format!("number {number}"),
        reason: e.to_string(),
    })?;
    let raw = entry.name_raw();
    if entry.flags().as_u16() & UTF8_NAME_FLAG != 0 {
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| BillError::EntryName {
                number,
                encoding: "UTF-8",
            })
    } else {
        GBK.decode_without_bom_handling_and_without_replacement(raw)
            .map(|name| name.into_owned())
            .ok_or(BillError::EntryName {
                number,
                encoding: "GBK",
            })
    }
}

/// Decompresses one entry and decodes it from GBK.
fn read_gbk_entry(
    archive: &mut Archive<'_>,
    index: usize,
    name: &str,
    limit: u64,
) -> Result<String, BillError> {
    let bytes = read_entry(archive, index, name, limit)?;
    decode_gbk(&bytes).map_err(|offset| BillError::NotGbk {
        file: name.to_owned(),
        offset,
        line: line_of(&bytes, offset),
    })
}

/// An entry's bytes, at most `limit`. The declared size only refuses early and sizes the buffer
/// (never above the limit); the read itself stops one byte past the limit, so a bomb that
/// understates its size costs at most `limit + 1` bytes before it is refused. (The zip crate
/// also fails a read once it passes the declared size; the cap here does not rely on that.)
fn read_entry(
    archive: &mut Archive<'_>,
    index: usize,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, BillError> {
    let cannot_read = |reason: String| BillError::Entry {
        entry: name.to_owned(),
        reason,
    };
    let file = archive
        .by_index(index)
        .map_err(|e| cannot_read(e.to_string()))?;
    let declared = file.size();
    let too_large = || BillError::EntryTooLarge {
        entry: name.to_owned(),
        limit,
        declared,
    };
    if declared > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0).saturating_add(1));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| cannot_read(e.to_string()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Strict GBK: a malformed sequence is an error (its byte offset), never U+FFFD.
fn decode_gbk(bytes: &[u8]) -> Result<String, usize> {
    match GBK.decode_without_bom_handling_and_without_replacement(bytes) {
        Some(text) => Ok(text.into_owned()),
        None => Err(first_malformed(bytes)),
    }
}

/// Where the first malformed sequence starts; only run once decoding has failed.
fn first_malformed(bytes: &[u8]) -> usize {
    let mut decoder = GBK.new_decoder_without_bom_handling();
    let mut scratch = [0_u8; 4096];
    let mut offset = 0;
    while let Some(rest) = bytes.get(offset..) {
        let (result, read, _) =
            decoder.decode_to_utf8_without_replacement(rest, &mut scratch, true);
        offset += read;
        match result {
            DecoderResult::OutputFull => {}
            DecoderResult::Malformed(bad, after) => {
                return offset.saturating_sub(usize::from(bad) + usize::from(after));
            }
            DecoderResult::InputEmpty => break,
        }
    }
    offset
}

/// The 1-based line holding byte `offset`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    line_breaks(bytes.get(..offset).unwrap_or(bytes)) + 1
}

/// Line ends in `bytes` as the csv crate ends records: `\r\n`, `\n`, or a lone `\r`.
fn line_breaks(bytes: &[u8]) -> usize {
    let lone_cr = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
        .count();
    bytes.iter().filter(|&&b| b == b'\n').count() + lone_cr
}

/// Column indexes of [`DETAIL_HEADER`].
mod detail {
    pub(super) const TRADE_NO: usize = 0;
    pub(super) const OUT_TRADE_NO: usize = 1;
    pub(super) const KIND: usize = 2;
    pub(super) const TITLE: usize = 3;
    pub(super) const CREATED_AT: usize = 4;
    pub(super) const FINISHED_AT: usize = 5;
    pub(super) const ORDER_AMOUNT: usize = 11;
    pub(super) const MERCHANT_RECEIVED: usize = 12;
    pub(super) const OUT_REQUEST_NO: usize = 21;
    pub(super) const FEE: usize = 22;
    pub(super) const REMARK: usize = 24;
    /// Money cells not kept in [`super::BillRow`], checked all the same; empty means 0.
    pub(super) const OTHER_MONEY: [usize; 8] = [13, 14, 15, 16, 17, 19, 20, 23];
}

/// Column indexes of [`SUMMARY_HEADER`].
mod summary {
    pub(super) const STORE: usize = 0;
    pub(super) const PAYMENT_COUNT: usize = 2;
    pub(super) const REFUND_COUNT: usize = 3;
    pub(super) const ORDER_AMOUNT: usize = 4;
    pub(super) const MERCHANT_RECEIVED: usize = 5;
    pub(super) const FEE: usize = 9;
    pub(super) const NET: usize = 11;
    /// Money cells not kept in [`super::BillSummary`], checked all the same; empty means 0.
    pub(super) const OTHER_MONEY: [usize; 4] = [6, 7, 8, 10];
}

/// Parses the detail file's text: the account from `#账号：[…]` and the rows, each checked
/// (see [`BillRow`]). A day with no business (header, no rows) gives no rows.
pub fn parse_detail_csv(
    text: &str,
    limits: &BillLimits,
) -> Result<(Option<String>, Vec<BillRow>), BillError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    read_table(text, DETAIL_FILE, &DETAIL_HEADER, limits, |row| {
        rows.push(detail_row(&row)?);
        Ok(())
    })?;
    Ok((account(text), rows))
}

/// Parses the summary file's text: its `合计` row, `None` when it has none. Every row is checked.
pub fn parse_summary_csv(
    text: &str,
    limits: &BillLimits,
) -> Result<Option<BillSummary>, BillError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut total = None;
    read_table(text, SUMMARY_FILE, &SUMMARY_HEADER, limits, |row| {
        let parsed = summary_row(&row)?;
        if row.cell(summary::STORE) == TOTAL_STORE && total.replace(parsed).is_some() {
            return Err(BillError::TwoTotals {
                file: row.file.to_owned(),
                line: row.line,
            });
        }
        Ok(())
    })?;
    Ok(total)
}

/// `#账号：[2088…]` among the `#` lines before the header.
fn account(text: &str) -> Option<String> {
    text.lines()
        .map(|line| line.trim_matches([' ', '\t', '\r']))
        .take_while(|line| line.is_empty() || line.starts_with('#'))
        .find_map(|line| {
            let rest = line
                .strip_prefix("#账号")?
                .trim_start_matches([' ', '\t'])
                .strip_prefix(['：', ':'])?
                .trim_matches([' ', '\t']);
            let inner = rest
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .unwrap_or(rest)
                .trim_matches([' ', '\t']);
            (!inner.is_empty()).then(|| inner.to_owned())
        })
}

/// One data row, cells trimmed of the spaces and tabs around them.
struct Row<'r> {
    file: &'r str,
    line: usize,
    header: &'r [&'static str],
    record: &'r StringRecord,
}

impl Row<'_> {
    fn cell(&self, index: usize) -> &str {
        self.record.get(index).map_or("", trim_cell)
    }

    fn column(&self, index: usize) -> &'static str {
        self.header.get(index).copied().unwrap_or("?")
    }

    fn required(&self, index: usize) -> Result<&str, BillError> {
        let cell = self.cell(index);
        if cell.is_empty() {
            return Err(BillError::Empty {
                file: self.file.to_owned(),
                line: self.line,
                column: self.column(index),
            });
        }
        Ok(cell)
    }

    fn amount(&self, index: usize) -> Result<i64, BillError> {
        let cell = self.required(index)?;
        yuan_to_fen(cell).ok_or_else(|| BillError::Amount {
            file: self.file.to_owned(),
            line: self.line,
            column: self.column(index),
            found: cell.to_owned(),
        })
    }

    /// An amount where an empty cell means none (0).
    fn optional_amount(&self, index: usize) -> Result<i64, BillError> {
        if self.cell(index).is_empty() {
            return Ok(0);
        }
        self.amount(index)
    }

    fn count(&self, index: usize) -> Result<u64, BillError> {
        let cell = self.required(index)?;
        // Digits only: `str::parse` would take a `+`.
        let parsed = cell
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| cell.parse().ok())
            .flatten();
        parsed.ok_or_else(|| BillError::Count {
            file: self.file.to_owned(),
            line: self.line,
            column: self.column(index),
            found: cell.to_owned(),
        })
    }
}

fn trim_cell(cell: &str) -> &str {
    cell.trim_matches([' ', '\t'])
}

fn detail_row(row: &Row<'_>) -> Result<BillRow, BillError> {
    use detail::*;
    let trade_no = row.required(TRADE_NO)?.to_owned();
    let out_trade_no = row.required(OUT_TRADE_NO)?.to_owned();
    let kind = match row.cell(KIND) {
        "交易" => BillRowKind::Payment,
        "退款" => BillRowKind::Refund,
        other => BillRowKind::Other(other.to_owned()),
    };
    let order_amount_fen = row.amount(ORDER_AMOUNT)?;
    let merchant_received_fen = row.amount(MERCHANT_RECEIVED)?;
    let fee_fen = row.optional_amount(FEE)?;
    for index in OTHER_MONEY {
        row.optional_amount(index)?;
    }
    let request_no = row.cell(OUT_REQUEST_NO);
    let out_request_no = (!request_no.is_empty()).then(|| request_no.to_owned());
    check_refund_rules(row, &kind, order_amount_fen, out_request_no.is_some())?;
    Ok(BillRow {
        trade_no,
        out_trade_no,
        kind,
        title: row.cell(TITLE).to_owned(),
        created_at: row.cell(CREATED_AT).to_owned(),
        finished_at: row.cell(FINISHED_AT).to_owned(),
        order_amount_fen,
        merchant_received_fen,
        out_request_no,
        fee_fen,
        remark: row.cell(REMARK).to_owned(),
        line: row.line,
    })
}

/// A payment takes money in and a refund gives it back, under its own `out_request_no`: a row
/// breaking that would be booked against the wrong side or the wrong refund.
fn check_refund_rules(
    row: &Row<'_>,
    kind: &BillRowKind,
    order_amount_fen: i64,
    has_request_no: bool,
) -> Result<(), BillError> {
    let file = row.file.to_owned();
    let line = row.line;
    let found = || row.cell(detail::ORDER_AMOUNT).to_owned();
    match kind {
        BillRowKind::Payment if order_amount_fen < 0 => Err(BillError::NegativePayment {
            file,
            line,
            found: found(),
        }),
        BillRowKind::Refund if order_amount_fen > 0 => Err(BillError::PositiveRefund {
            file,
            line,
            found: found(),
        }),
        BillRowKind::Refund if !has_request_no => {
            Err(BillError::RefundWithoutRequestNo { file, line })
        }
        _ => Ok(()),
    }
}

fn summary_row(row: &Row<'_>) -> Result<BillSummary, BillError> {
    use summary::*;
    for index in OTHER_MONEY {
        row.optional_amount(index)?;
    }
    Ok(BillSummary {
        payment_count: row.count(PAYMENT_COUNT)?,
        refund_count: row.count(REFUND_COUNT)?,
        order_amount_fen: row.amount(ORDER_AMOUNT)?,
        merchant_received_fen: row.amount(MERCHANT_RECEIVED)?,
        fee_fen: row.optional_amount(FEE)?,
        net_fen: row.amount(NET)?,
    })
}

/// Reads a CSV table: `#` lines are comments, the first other line must be `header`, and each
/// later row, exactly as wide, goes to `on_row`. Lines and rows are bounded by `limits`.
fn read_table(
    text: &str,
    file: &str,
    header: &[&'static str],
    limits: &BillLimits,
    mut on_row: impl FnMut(Row<'_>) -> Result<(), BillError>,
) -> Result<(), BillError> {
    check_line_lengths(text, file, limits.max_line_bytes)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        // Width is checked here, so the message can name the line and both counts.
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut record = StringRecord::new();
    let mut lines = LineCounter::new(text);
    let mut seen_header = false;
    let mut rows = 0_usize;
    loop {
        let more = reader
            .read_record(&mut record)
            .map_err(|e| BillError::Csv {
                file: file.to_owned(),
                line: e.position().map_or(0, |p| lines.line_at(p.byte())),
                reason: e.to_string(),
            })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
        // A line of nothing but spaces is no row (the csv crate skips only empty lines).
        if record.len() == 1 && trim_cell(&record[0]).is_empty() {
            continue;
        }
        if !seen_header {
            check_header(&record, file, line, header)?;
            seen_header = true;
            continue;
        }
        if record.len() != header.len() {
            return Err(BillError::CellCount {
                file: file.to_owned(),
                line,
                found: record.len(),
                expected: header.len(),
            });
        }
        rows += 1;
        if rows > limits.max_rows {
            return Err(BillError::TooManyRows {
                file: file.to_owned(),
                limit: limits.max_rows,
            });
        }
        on_row(Row {
            file,
            line,
            header,
            record: &record,
        })?;
    }
    if !seen_header {
        return Err(BillError::NoHeader {
            file: file.to_owned(),
        });
    }
    Ok(())
}

/// Line numbers of records, counted once front to back (records come in order). The csv crate's
/// own line numbers leave out comment lines, and its record positions point before the line
/// ends and comments it skips, so neither matches the file.
struct LineCounter<'t> {
    text: &'t [u8],
    offset: usize,
    line: usize,
}

impl<'t> LineCounter<'t> {
    fn new(text: &'t str) -> Self {
        Self {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    /// The 1-based line of the record the csv crate places at `byte`, at or after the last one.
    fn line_at(&mut self, byte: u64) -> usize {
        let from = usize::try_from(byte).unwrap_or(usize::MAX);
        let target = record_start(self.text, from).clamp(self.offset, self.text.len());
        let skipped = self.text.get(self.offset..target).unwrap_or_default();
        self.line += line_breaks(skipped);
        self.offset = target;
        self.line
    }
}

/// Where the record the csv crate starts reading at `at` really begins: past line ends and `#`
/// comment lines, which it skips the same way.
fn record_start(text: &[u8], mut at: usize) -> usize {
    loop {
        match text.get(at) {
            Some(b'\r' | b'\n') => at += 1,
            Some(b'#') => {
                let rest = text.get(at..).unwrap_or_default();
                at += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            }
            _ => return at.min(text.len()),
        }
    }
}

/// Refuses a line over `limit` bytes before any parsing, so no cell or record outgrows it.
fn check_line_lengths(text: &str, file: &str, limit: usize) -> Result<(), BillError> {
    let long = text
        .split('\n')
        .position(|line| line.strip_suffix('\r').unwrap_or(line).len() > limit);
    match long {
        Some(index) => Err(BillError::LineTooLong {
            file: file.to_owned(),
            line: index + 1,
            limit,
        }),
        None => Ok(()),
    }
}

fn check_header(
    record: &StringRecord,
    file: &str,
    line: usize,
    header: &[&'static str],
) -> Result<(), BillError> {
    if record.len() != header.len() {
        return Err(BillError::HeaderWidth {
            file: file.to_owned(),
            line,
            found: record.len(),
            expected: header.len(),
        });
    }
    let mismatch = record
        .iter()
        .map(trim_cell)
        .zip(header)
        .position(|(found, expected)| found != *expected);
    match mismatch {
        Some(index) => Err(BillError::HeaderCell {
            file: file.to_owned(),
            line,
            column: index + 1,
            found: trim_cell(&record[index]).to_owned(),
            expected: header[index],
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_to_fen_takes_bill_amounts() {
        for (text, fen) in [
            ("12", 1200),
            ("12.3", 1230),
            ("12.30", 1230),
            ("0.01", 1),
            ("-0.06", -6),
            ("-0", 0),
            ("0.00", 0),
            ("007.05", 705),
            ("10000000000", MAX_BILL_FEN),
            ("-10000000000.00", -MAX_BILL_FEN),
        ] {
            assert_eq!(yuan_to_fen(text), Some(fen), "{text:?}");
        }
    }

    #[test]
    fn yuan_to_fen_refuses_anything_else() {
        for text in [
            "",
            "-",
            "+1.00",
            "1.234",
            "1.",
            ".5",
            "-.5",
            "1e2",
            "1.0e1",
            " 1",
            "1 ",
            "1 000",
            "1,000.00",
            "--1",
            "1-",
            "1.2.3",
            "0x10",
            "１２",
            "NaN",
            "10000000000.01",
            "-10000000000.01",
            "99999999999999999999999999",
            "9223372036854775807",
        ] {
            assert_eq!(yuan_to_fen(text), None, "{text:?}");
        }
    }

    #[test]
    fn malformed_gbk_is_found_where_it_starts() {
        // `中` in GBK is D6 D0; FF is never a GBK byte.
        let bytes = [b'a', b'\n', 0xD6, 0xD0, b'\n', b'b', 0xFF, b'c'];
        assert_eq!(decode_gbk(&bytes), Err(6));
        assert_eq!(line_of(&bytes, 6), 3);
        // A lone CR ends a record for the csv crate, so it ends a line here too.
        assert_eq!(line_of(b"a\rb\r\nc\nd", 7), 4);
        // A lead byte before an ASCII byte: the sequence is the lead byte alone.
        let bytes = [b'x', 0xD6, b','];
        assert_eq!(decode_gbk(&bytes), Err(1));
        // Past a full scratch buffer.
        let text = "中".repeat(5000);
        let mut gbk = GBK.encode(&text).0.into_owned();
        gbk.push(0xFF);
        assert_eq!(decode_gbk(&gbk), Err(10_000));
        assert_eq!(decode_gbk(&[0xD6, 0xD0]).as_deref(), Ok("中"));
    }

    #[test]
    fn the_account_comes_from_the_preamble_only() {
        let header = DETAIL_HEADER.join(",");
        let text = format!("#支付宝业务明细查询\r\n#账号：[2088123412341234]\r\n{header}\r\n");
        assert_eq!(account(&text).as_deref(), Some("2088123412341234"));
        assert_eq!(account("#账号: 2088 \n").as_deref(), Some("2088"));
        assert_eq!(account("#账号：[]\n"), None);
        assert_eq!(account(&format!("{header}\n#账号：[2088]\n")), None);
    }

    #[test]
    fn messages_name_the_entry_once_relabelled() {
        let error = BillError::Amount {
            file: DETAIL_FILE.into(),
            line: 7,
            column: DETAIL_HEADER[detail::ORDER_AMOUNT],
            found: "1.234".into(),
        };
        assert_eq!(
            error.to_string(),
            "业务明细.csv line 7: 订单金额（元） \"1.234\" is not a yuan amount with at most two decimals"
        );
        let error = error.in_file("2088_20240501_业务明细.csv");
        assert!(
            error
                .to_string()
                .starts_with("2088_20240501_业务明细.csv line 7: ")
        );
    }
}
