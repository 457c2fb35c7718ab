// Headless Chromium against alipay-emulator's cashier, as a buyer would use it:
//   1. a signed page-pay link (made by the `sign_link` example with the test app key) is opened;
//      the cashier must show the order's title, amount and QR code;
//   2. the pay button is clicked; the browser must land on our return_url page with signed
//      parameters that verify with the emulator's public key (node:crypto, SHA256withRSA over all
//      fields but sign/sign_type), and the trade must be TRADE_SUCCESS per the control API;
//   3. a wap link without return_url ends on the paid page (支付成功).
// Run by .ci/emulator-chromium.sh. Any failed check exits 1 with a message.

import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.NODE_DEPS, 'package.json'));
const { chromium } = require('playwright-core');

const line = JSON.parse(process.env.EMULATOR_LINE);
const gateway = line.gateway;
const base = gateway.replace(/\/gateway\.do$/, '');
const appId = process.env.APP_ID;
const appKey = process.env.APP_PRIVATE_KEY;
const signLink = process.env.SIGN_LINK;
const shots = process.env.SCREENSHOT_DIR;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  console.log(`ok   ${message}`);
}

function verifySigned(params) {
  const content = Object.keys(params)
    .filter((k) => k !== 'sign' && k !== 'sign_type')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  const pem = `-----BEGIN PUBLIC KEY-----\n${line.alipay_public_key.match(/.{1,64}/g).join('\n')}\n-----END PUBLIC KEY-----\n`;
  return crypto.verify('RSA-SHA256', Buffer.from(content, 'utf8'), pem, Buffer.from(params.sign, 'base64'));
}

async function controlTrade(outTradeNo) {
  const response = await fetch(`${base}/__emulator/apps/${appId}/trades/${outTradeNo}`);
  return response.json();
}

// The merchant's return page: records what the browser brought back.
const returns = [];
const server = http.createServer((req, res) => {
  // Browsers also ask for /favicon.ico; only the return page counts.
  if (req.url.startsWith('/return')) returns.push(req.url);
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end('<!DOCTYPE html><meta charset="utf-8"><title>merchant return</title><h1 id="merchant">商户返回页</h1>');
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const returnUrl = `http://127.0.0.1:${server.address().port}/return`;

const run = Date.now();
const pageOrder = `CHROME_${run}`;
const subject = 'Chromium 收银台测试 <b>&</b>';
const link = execFileSync(signLink, [gateway, appId, appKey, pageOrder, '12.30', subject, 'page', returnUrl], {
  encoding: 'utf8',
}).trim();
check(link.startsWith(`${gateway}?`), 'signed a page-pay link for the emulator');

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'emulator-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1100, height: 800 },
});
try {
  const page = context.pages()[0] || (await context.newPage());
  const opened = await page.goto(link, { waitUntil: 'load' });
  check(opened.status() === 200, 'the link opened (HTTP 200)');
  check((await page.title()).includes('支付宝'), 'the cashier page has Alipay\'s title');
  check((await page.textContent('#subject')) === subject, 'the cashier shows the order title (escaped, as text)');
  check((await page.textContent('#amount')).replace(/\s/g, '') === '¥12.30', 'the cashier shows the amount ¥12.30');
  check((await page.textContent('#app-id')) === appId, 'the cashier shows the merchant app id');
  check((await page.locator('#qr svg').count()) === 1, 'page pay shows a QR code');
  if (shots) await page.screenshot({ path: path.join(shots, 'cashier-page.png'), fullPage: true });

  await Promise.all([page.waitForURL((u) => u.href.startsWith(returnUrl), { timeout: 30000 }), page.click('#pay-button')]);
  const landed = new URL(page.url());
  check((await page.textContent('#merchant')) === '商户返回页', 'the browser landed on the merchant return_url page');
  check(returns.length === 1, 'the return page was requested once');
  const params = Object.fromEntries(landed.searchParams.entries());
  check(verifySigned(params), 'the return_url parameters verify with the emulator public key');
  check(params.method === 'alipay.trade.page.pay.return', 'return_url: method alipay.trade.page.pay.return');
  check(params.out_trade_no === pageOrder && params.total_amount === '12.30', 'return_url: order and amount');
  check(!verifySigned({ ...params, total_amount: '0.01' }), 'a tampered return_url does not verify');
  const trade = await controlTrade(pageOrder);
  check(trade.trade_status === 'TRADE_SUCCESS', 'the control API reports TRADE_SUCCESS');
  check(trade.trade_no === params.trade_no, 'return_url trade_no matches the trade');

  // A wap link without return_url, on a phone-sized page: ends on the paid page.
  const wapOrder = `CHROME_WAP_${run}`;
  const wapLink = execFileSync(signLink, [gateway, appId, appKey, wapOrder, '0.01', '手机支付', 'wap'], {
    encoding: 'utf8',
  }).trim();
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(wapLink, { waitUntil: 'load' });
  check((await page.locator('body.mobile').count()) === 1, 'wap shows the phone cashier');
  if (shots) await page.screenshot({ path: path.join(shots, 'cashier-wap.png'), fullPage: true });
  await Promise.all([page.waitForSelector('#result', { timeout: 30000 }), page.click('#pay-button')]);
  check((await page.textContent('#result')) === '支付成功', 'without return_url the buyer sees 支付成功');
  check((await controlTrade(wapOrder)).trade_status === 'TRADE_SUCCESS', 'the wap trade is TRADE_SUCCESS');
} finally {
  await context.close();
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log('chromium cashier: all checks passed');
