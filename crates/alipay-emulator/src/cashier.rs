//! The HTML a buyer sees: the cashier (desktop with a QR code for page pay, phone layout for wap
//! and scanned codes), the paid page, and Alipay's error page. Pure rendering; every value that
//! came from a merchant or a buyer is HTML-escaped here (order titles can hold `<script>`).

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use crate::model::{Agent, Product};

/// What the cashier shows.
pub(crate) struct CashierView<'a> {
    pub product: Product,
    pub subject: &'a str,
    pub body: Option<&'a str>,
    /// `88.80`.
    pub amount: &'a str,
    pub app_id: &'a str,
    pub out_trade_no: &'a str,
    pub trade_no: Option<&'a str>,
    /// A 智易收 order's agent.
    pub agent: Option<&'a Agent>,
    /// Where the pay button posts.
    pub pay_action: &'a str,
    /// The mobile cashier URL a phone would open by scanning (page pay shows it as a QR code).
    pub mobile_url: &'a str,
    /// Desktop layout with a QR code (page pay), or the phone layout.
    pub desktop: bool,
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font-family:-apple-system,BlinkMacSystemFont,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;background:#f5f7fa;color:#1f2329}
header{background:#fff;border-bottom:1px solid #e5e6eb;padding:14px 24px;display:flex;align-items:center;justify-content:space-between}
.logo{font-size:20px;font-weight:600;color:#1677ff;letter-spacing:1px}
.logo span{color:#4e5969;font-weight:400;font-size:15px;margin-left:10px;padding-left:10px;border-left:1px solid #c9cdd4}
.badge{font-size:12px;color:#d46b08;background:#fff7e8;border:1px solid #ffd591;border-radius:12px;padding:3px 10px}
main{max-width:960px;margin:24px auto;padding:0 16px}
.card{background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.06);padding:24px;margin-bottom:16px}
.order{display:flex;justify-content:space-between;align-items:flex-start;gap:16px;flex-wrap:wrap}
.subject{font-size:18px;font-weight:500;word-break:break-all}
.meta{color:#86909c;font-size:13px;margin-top:8px;line-height:1.8;word-break:break-all}
.amount{font-size:32px;font-weight:600;color:#ff5000;white-space:nowrap}
.amount small{font-size:18px;margin-right:2px}
.pay{display:flex;gap:32px;align-items:center;flex-wrap:wrap}
.qr{text-align:center;border:1px solid #e5e6eb;border-radius:8px;padding:16px;width:232px}
.qr svg{width:196px;height:196px}
.qr p{margin:8px 0 0;font-size:13px;color:#4e5969}
.qr a{font-size:12px;color:#1677ff;word-break:break-all}
.login{flex:1;min-width:240px}
.login h3{margin:0 0 8px;font-weight:500}
.login p{color:#86909c;font-size:13px;margin:0 0 16px}
button{background:#1677ff;color:#fff;border:0;border-radius:8px;font-size:17px;padding:13px 24px;cursor:pointer;width:100%}
button:hover{background:#4096ff}
.mobile main{max-width:480px}
.mobile .amount{font-size:40px;text-align:center;margin:8px 0 4px}
.mobile .subject{text-align:center;font-size:16px;color:#4e5969;font-weight:400}
.mobile .meta{text-align:left}
.notice{font-size:12px;color:#86909c;text-align:center;margin-top:12px}
.result{text-align:center;padding:40px 24px}
.result .icon{width:64px;height:64px;border-radius:50%;margin:0 auto 16px;display:flex;align-items:center;justify-content:center;font-size:36px;color:#fff}
.ok .icon{background:#00b42a}
.err .icon{background:#f53f3f}
.result h2{margin:0 0 8px;font-weight:500}
.code{font-family:ui-monospace,Menlo,Consolas,monospace;background:#f7f8fa;border-radius:6px;padding:12px;text-align:left;font-size:13px;line-height:1.8;word-break:break-all;white-space:pre-wrap}
"#;

fn page(title: &str, mobile: bool, content: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body class="{class}">
<header><div class="logo">支付宝<span>收银台</span></div><div class="badge">本地模拟网关 · 不产生真实交易</div></header>
<main>
{content}
</main>
</body>
</html>
"#,
        title = text(title),
        class = if mobile { "mobile" } else { "desktop" },
    )
}

/// The cashier with its pay button.
pub(crate) fn cashier_page(view: &CashierView<'_>) -> String {
    let mut meta = format!(
        "订单号：<span id=\"out-trade-no\">{}</span><br>收款方：商户应用 <span id=\"app-id\">{}</span>",
        text(view.out_trade_no),
        text(view.app_id)
    );
    if let Some(trade_no) = view.trade_no {
        meta.push_str(&format!(
            "<br>支付宝交易号：<span id=\"trade-no\">{}</span>",
            text(trade_no)
        ));
    }
    if let Some(agent) = view.agent {
        meta.push_str(&format!(
            "<br>智能体：<span id=\"agent\">{}</span>（{}）",
            text(&agent.agent_name),
            text(&agent.agent_id)
        ));
    }
    if let Some(body) = view.body.filter(|b| *b != view.subject) {
        meta.push_str(&format!("<br>商品描述：{}", text(body)));
    }
    let button = format!(
        r#"<form method="post" action="{action}" id="pay-form"><button type="submit" id="pay-button">确认付款 ¥{amount}</button></form>"#,
        action = attr(view.pay_action),
        amount = text(view.amount),
    );
    let amount = format!(
        r#"<div class="amount" id="amount"><small>¥</small>{}</div>"#,
        text(view.amount)
    );
    let content = if view.desktop {
        let qr = qr_svg(view.mobile_url).unwrap_or_default();
        format!(
            r#"<div class="card order">
<div><div class="subject" id="subject">{subject}</div><div class="meta">{meta}</div></div>
{amount}
</div>
<div class="card pay">
<div class="qr" id="qr">{qr}<p>打开手机支付宝<br>扫一扫继续付款</p><a href="{mobile}">手机收银台链接</a></div>
<div class="login"><h3>登录账户付款</h3><p>模拟买家已登录，点击下方按钮即完成付款。</p>{button}</div>
</div>
<p class="notice">{product} · 这是离线模拟的支付宝网关，付款不会产生真实扣款。</p>"#,
            subject = text(view.subject),
            mobile = attr(view.mobile_url),
            product = text(view.product.method()),
        )
    } else {
        format!(
            r#"<div class="card">
<div class="subject" id="subject">{subject}</div>
{amount}
<div class="meta">{meta}</div>
</div>
{button}
<p class="notice">{product} · 这是离线模拟的支付宝网关，付款不会产生真实扣款。</p>"#,
            subject = text(view.subject),
            product = text(view.product.method()),
        )
    };
    page("支付宝 - 网上支付 安全快速！", !view.desktop, &content)
}

/// After payment, when there is no `return_url` to go back to.
pub(crate) fn paid_page(subject: &str, amount: &str, out_trade_no: &str, trade_no: &str) -> String {
    let content = format!(
        r#"<div class="card result ok">
<div class="icon">✓</div>
<h2 id="result">支付成功</h2>
<div class="amount"><small>¥</small>{amount}</div>
<div class="meta">{subject}<br>订单号：{out_trade_no}<br>支付宝交易号：<span id="trade-no">{trade_no}</span></div>
</div>"#,
        amount = text(amount),
        subject = text(subject),
        out_trade_no = text(out_trade_no),
        trade_no = text(trade_no),
    );
    page("支付成功", true, &content)
}

/// Alipay's error page (HTTP 200, as Alipay serves it): `错误代码 <sub_code>` and
/// `错误原因: <sub_msg>`.
pub(crate) fn error_page(sub_code: &str, sub_msg: &str) -> String {
    let content = format!(
        r#"<div class="card result err">
<div class="icon">!</div>
<h2>抱歉，您的操作出现了错误</h2>
<p class="meta">调试错误，请回到请求来源地，重新发起请求。</p>
<div class="code" id="error">错误代码 {code}
错误原因: {msg}</div>
</div>"#,
        code = text(sub_code),
        // `sub_msg` may carry Alipay's own `&amp;`/`&quot;` escapes (isv.invalid-signature):
        // show the text they stand for, escaped once for this page.
        msg = text(&html_escape::decode_html_entities(sub_msg)),
    );
    page("支付宝 - 网上支付 安全快速！", false, &content)
}

/// Pixels per QR module of [`qr_png`].
const PNG_SCALE: usize = 6;
/// The standard quiet zone, in modules.
const PNG_QUIET: usize = 4;

/// A black-on-white PNG (1-bit greyscale) of the QR code of `url`; `None` when it cannot fit.
pub(crate) fn qr_png(url: &str) -> Option<Vec<u8>> {
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * PNG_QUIET) * PNG_SCALE;
    // One bit per pixel (1 = white), rows padded to whole bytes.
    let row_bytes = side.div_ceil(8);
    let mut pixels = vec![0xFF_u8; row_bytes * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (mx, my) = (i % modules + PNG_QUIET, i / modules + PNG_QUIET);
            for y in my * PNG_SCALE..(my + 1) * PNG_SCALE {
                for x in mx * PNG_SCALE..(mx + 1) * PNG_SCALE {
                    pixels[y * row_bytes + x / 8] &= !(0x80 >> (x % 8));
                }
            }
        }
    }
    let side = u32::try_from(side).ok()?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let mut writer = encoder.write_header().ok()?;
    writer.write_image_data(&pixels).ok()?;
    writer.finish().ok()?;
    Some(out)
}

/// A QR code of `url` as inline SVG.
fn qr_svg(url: &str) -> Option<String> {
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(196, 196)
        .quiet_zone(true)
        .build();
    // Inline SVG needs no XML declaration.
    Some(match svg.find("<svg") {
        Some(start) => svg[start..].to_string(),
        None => svg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(desktop: bool) -> CashierView<'static> {
        CashierView {
            product: if desktop { Product::Page } else { Product::Wap },
            subject: "<script>alert(1)</script>书",
            body: Some("\"quoted\""),
            amount: "88.80",
            app_id: "2021000000000001",
            out_trade_no: "A_1",
            trade_no: Some("2026112522001400000000000001"),
            agent: None,
            pay_action: "/cashier/bax0abc/pay",
            mobile_url: "http://127.0.0.1:1/qr/bax0abc?a=1&b=2",
            desktop,
        }
    }

    #[test]
    fn escapes_merchant_text_and_shows_the_order() {
        for desktop in [true, false] {
            let html = cashier_page(&view(desktop));
            assert!(!html.contains("<script>alert"), "{html}");
            assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;书"));
            assert!(html.contains("&quot;quoted&quot;") || html.contains("\"quoted\""));
            assert!(html.contains("¥</small>88.80"));
            assert!(html.contains("2021000000000001"));
            assert!(html.contains(r#"action="/cashier/bax0abc/pay""#));
            assert_eq!(html.contains("<svg"), desktop);
        }
        let html = error_page("ACQ.TRADE_HAS_SUCCESS", "交易已被支付<b>");
        assert!(html.contains("错误代码 ACQ.TRADE_HAS_SUCCESS"));
        assert!(html.contains("错误原因: 交易已被支付&lt;b&gt;"));
        let html = paid_page("<i>", "1.00", "A", "T");
        assert!(html.contains("支付成功") && html.contains("&lt;i&gt;"));
    }
}
