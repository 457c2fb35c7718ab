//! The short chat message a robot posts for an event, built from the ledger's figures (never from
//! the conversation): what happened, the amount, the title (cut), the order, the time. Plain text,
//! so a title can never become a link or markup in the group.

use crate::domain::outbox::{EventData, EventKind};
use crate::ledger::EventRecord;

/// Longest title quoted in a message.
const TITLE_CHARS: usize = 30;

fn cut(text: &str, max: usize) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// The message for `event`.
pub fn text(event: &EventRecord) -> Result<String, String> {
    let d: EventData = serde_json::from_str(&event.data)
        .map_err(|e| format!("the event's data is not as recorded: {e}"))?;
    let headline = match event.kind {
        EventKind::PaymentSucceeded => "【支付宝】收款成功",
        EventKind::OrderClosed => "【支付宝】订单已关闭（未支付）",
        EventKind::OrderExpired => "【支付宝】订单已过期（未支付）",
        EventKind::RefundSucceeded => "【支付宝】退款成功",
        EventKind::RefundFailed => "【支付宝】退款失败",
        EventKind::AlipayNotification => "【支付宝】异步通知",
    };
    let mut lines = vec![headline.to_string()];
    match &d.refund {
        Some(r) => {
            lines.push(format!("退款金额：¥{}", r.refund_amount));
            lines.push(format!("订单金额：¥{}", d.total_amount));
        }
        None => lines.push(format!("金额：¥{}", d.total_amount)),
    }
    lines.push(format!("商品：{}", cut(&d.title, TITLE_CHARS)));
    lines.push(format!("订单号：{}", d.out_trade_no));
    if let Some(trade_no) = &d.trade_no {
        lines.push(format!("支付宝交易号：{trade_no}"));
    }
    if let Some(r) = &d.refund {
        lines.push(format!("退款请求号：{}", r.out_request_no));
    }
    lines.push(format!("时间：{}（北京时间）", d.occurred_at));
    if d.env == "local" {
        lines.push("本地模拟网关：没有真实资金变动".to_string());
    } else if d.env == "sandbox" {
        lines.push("沙箱环境：没有真实资金变动".to_string());
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OutTradeNo;
    use crate::domain::outbox::RefundData;

    fn record(kind: EventKind, data: &EventData) -> EventRecord {
        EventRecord {
            id: "evt_1".into(),
            kind,
            out_trade_no: OutTradeNo::parse(&data.out_trade_no).unwrap(),
            data: serde_json::to_string(data).unwrap(),
            created_ms: 0,
            raw: None,
        }
    }

    fn data() -> EventData {
        EventData {
            out_trade_no: "ORD42".into(),
            order_kind: "agent".into(),
            title: "Commission: a cat in the style of Hokusai, A4, 300 dpi, two revisions".into(),
            total_amount: "88.00".into(),
            trade_status: Some("TRADE_SUCCESS".into()),
            trade_no: Some("2026120122001".into()),
            refunded_amount: "0.00".into(),
            expires_at: None,
            refund: None,
            notify_id: None,
            app_id: "2021000000000001".into(),
            env: "prod".into(),
            occurred_at: "2026-12-01 12:00:00".into(),
        }
    }

    #[test]
    fn a_payment() {
        let text = text(&record(EventKind::PaymentSucceeded, &data())).unwrap();
        assert_eq!(
            text,
            "【支付宝】收款成功\n金额：¥88.00\n商品：Commission: a cat in the style…\n订单号：ORD42\n支付宝交易号：2026120122001\n时间：2026-12-01 12:00:00（北京时间）"
        );
    }

    #[test]
    fn a_refund_says_both_amounts_and_a_test_says_so() {
        let mut d = data();
        d.env = "local".into();
        d.refund = Some(RefundData {
            out_request_no: "RF1".into(),
            refund_amount: "8.00".into(),
            state: "succeeded".into(),
        });
        let text = text(&record(EventKind::RefundSucceeded, &d)).unwrap();
        assert!(text.starts_with("【支付宝】退款成功\n退款金额：¥8.00\n订单金额：¥88.00"));
        assert!(text.contains("退款请求号：RF1"));
        assert!(text.ends_with("本地模拟网关：没有真实资金变动"));
    }
}
