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
            max_entry_bytes: 256 * 1024 * 1024,
            max_entries: 16,
            max_rows: 2_000_000,
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
