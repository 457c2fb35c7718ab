// Headless Chromium pays a link made by the MCP server's desktop tool, end to end:
//   1. mcp-server-alipay (local mode) is spawned and spoken to over stdio JSON-RPC; the
//      create-web-page-alipay-payment tool makes a link (the reference's Markdown text);
//   2. Chromium opens the link: the embedded gateway's cashier shows the order; pay is clicked and
//      the browser lands on AP_RETURN_URL with signed parameters;
//   3. without any query, the order resource turns TRADE_SUCCESS from the gateway's notification;
//      query-alipay-payment then says 交易状态: TRADE_SUCCESS.
// Run by .ci/mcp-chromium.sh. Any failed check exits 1 with a message.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.NODE_DEPS, 'package.json'));
const { chromium } = require('playwright-core');

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}
function check(condition, message) {
  if (!condition) fail(message);
  console.log(`ok   ${message}`);
}

// The merchant's return page.
const returns = [];
const site = http.createServer((req, res) => {
  if (req.url.startsWith('/done')) returns.push(req.url);
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end('<!DOCTYPE html><meta charset="utf-8"><title>done</title><h1 id="merchant">谢谢惠顾</h1>');
});
await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
const returnUrl = `http://127.0.0.1:${site.address().port}/done`;

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-chromium-'));
const server = spawn(process.env.SERVER_BIN, [], {
  env: {
    HOME: home,
    PATH: process.env.PATH,
    AP_DATA_DIR: path.join(home, 'data'),
    AP_LOG_FILE: path.join(home, 'server.log'),
    AP_LOCAL_PORT: '0',
    AP_NOTIFY_LISTEN: '127.0.0.1:0',
    AP_RETURN_URL: returnUrl,
  },
  stdio: ['pipe', 'pipe', 'inherit'],
});
const pending = new Map();
readline.createInterface({ input: server.stdout }).on('line', (line) => {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    fail(`stdout carried something that is not JSON-RPC: ${line}`);
  }
  if (msg.id !== undefined && pending.has(msg.id)) {
    pending.get(msg.id)(msg);
    pending.delete(msg.id);
  }
});
let nextId = 0;
function rpc(method, params) {
  const id = ++nextId;
  server.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
  return new Promise((resolve, reject) => {
    pending.set(id, resolve);
    setTimeout(() => reject(new Error(`${method}: no answer in 30 s`)), 30000).unref();
  });
}
const tool = async (name, args) => (await rpc('tools/call', { name, arguments: args })).result;

const init = await rpc('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'ci-chromium', version: '1' } });
check(init.result.serverInfo.name === 'mcp-server-alipay', 'initialized mcp-server-alipay');
server.stdin.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\n');

const order = `DESKTOP_${Date.now()}`;
const created = await tool('create-web-page-alipay-payment', { outTradeNo: order, totalAmount: 66.6, orderTitle: '定製插畫 & 桌面支付' });
const text = created.content[0].text;
const match = /\[点击完成支付\]\((.*?)\)/.exec(text);
check(text.startsWith('网页支付链接: ') && match, 'the desktop tool returned the reference Markdown link');
const link = match[1];
check(created.content.some((c) => c.type === 'image' && c.mimeType === 'image/png'), 'with a QR code PNG');

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-chromium-profile-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1100, height: 800 },
});
try {
  const page = context.pages()[0] || (await context.newPage());
  const opened = await page.goto(link, { waitUntil: 'load' });
  check(opened.status() === 200, 'Chromium opened the link');
  check((await page.textContent('#subject')) === '定製插畫 & 桌面支付', 'the cashier shows the title');
  check((await page.textContent('#amount')).replace(/\s/g, '') === '¥66.60', 'the cashier shows ¥66.60');
  await Promise.all([page.waitForURL((u) => u.href.startsWith(returnUrl), { timeout: 30000 }), page.click('#pay-button')]);
  check((await page.textContent('#merchant')) === '谢谢惠顾', 'the browser landed on AP_RETURN_URL');
  const params = Object.fromEntries(new URL(page.url()).searchParams.entries());
  check(params.out_trade_no === order && params.total_amount === '66.60' && params.sign, 'with the signed return parameters');
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

// The notification, not a query, tells the server.
let status = null;
for (let i = 0; i < 100 && status !== 'TRADE_SUCCESS'; i++) {
  const read = await rpc('resources/read', { uri: `alipay://orders/${order}` });
  status = JSON.parse(read.result.contents[0].text).tradeStatus;
  if (status !== 'TRADE_SUCCESS') await new Promise((r) => setTimeout(r, 100));
}
check(status === 'TRADE_SUCCESS', 'the order resource turned TRADE_SUCCESS from the notification');
const queried = await tool('query-alipay-payment', { outTradeNo: order });
check(queried.content[0].text.startsWith('交易状态: TRADE_SUCCESS, 交易金额: 66.60'), 'query-alipay-payment: 交易状态: TRADE_SUCCESS');

server.stdin.end();
await new Promise((resolve) => server.on('exit', resolve));
site.close();
fs.rmSync(home, { recursive: true, force: true });
console.log('mcp desktop link in chromium: all checks passed');
