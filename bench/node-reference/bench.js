// Build N page-pay links (alipay.trade.page.pay, GET) with the official Alipay Node SDK's
// pageExecute, as @alipay/mcp-server-alipay does for every create-web-page-alipay-payment call.
// Same key, parameters and order shape as crates/alipay-openapi/examples/page_links.rs.
//
//   node bench.js [N]        prints: node links=N seconds=S links_per_s=R
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { AlipaySdk } = require('alipay-sdk');

const n = Number.parseInt(process.argv[2] || '2000', 10);
const keys = path.join(__dirname, '..', '..', 'testdata', 'alipay-vectors', 'keys');
const sdk = new AlipaySdk({
  appId: '2021000000000001',
  privateKey: fs.readFileSync(path.join(keys, 'app-private-pkcs8.b64'), 'ascii').trim(),
  alipayPublicKey: fs.readFileSync(path.join(keys, 'alipay-public-spki.b64'), 'ascii').trim(),
  keyType: 'PKCS8',
  signType: 'RSA2',
  gateway: 'https://openapi.alipay.com/gateway.do',
});

function link(i) {
  return sdk.pageExecute('alipay.trade.page.pay', 'GET', {
    bizContent: {
      out_trade_no: `BENCH${i}`,
      total_amount: 88.88,
      subject: '定製插畫：貓咪肖像',
      product_code: 'FAST_INSTANT_TRADE_PAY',
      body: '定製插畫：貓咪肖像',
      query_options: ['mcp_0.1.0'],
    },
    returnUrl: 'https://merchant.example.com/done',
    notifyUrl: 'https://merchant.example.com/alipay/notify',
  });
}

const first = link(0);
if (!first.startsWith('https://openapi.alipay.com/gateway.do?method=alipay.trade.page.pay&') || !first.includes('&sign=')) {
  throw new Error(`unexpected link: ${first}`);
}
for (let i = 0; i < Math.min(200, n); i++) link(i); // warm-up (JIT)
const started = process.hrtime.bigint();
let bytes = 0;
for (let i = 0; i < n; i++) bytes += link(i).length;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(`node links=${n} seconds=${seconds.toFixed(3)} links_per_s=${(n / seconds).toFixed(1)} avg_link_bytes=${Math.round(bytes / n)}`);
