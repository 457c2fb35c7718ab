// Headless Chromium approves a refund on its approval page, end to end:
//   1. mcp-server-alipay (local mode, AP_REFUND_CONFIRM=true, AP_REFUND_PIN) is spawned and spoken
//      to over stdio JSON-RPC by a client that declares NO elicitation (2025-06-18); an order is
//      made with create-web-page-alipay-payment and paid through the embedded gateway's control API;
//   2. refund-alipay-payment answers awaitingApproval with a one-time approvalUrl, and nothing
//      reaches the gateway;
//   3. Chromium opens the page: it shows the figures (paid, already refunded, this refund); a wrong
//      PIN refuses and closes that link; a fresh request's page with the right PIN approves, the
//      result page says Alipay confirmed it, and the gateway's trade shows the refund_fee;
//   4. the replayed tool call and query-alipay-refund agree. Screenshots go to the scratch dir.
// Run by .ci/mcp-chromium.sh. Any failed check exits 1 with a message.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.NODE_DEPS, 'package.json'));
const { chromium } = require('playwright-core');

const PIN = '2468';
let passed = 0;
let server = null;
let stopping = false;
function fail(message) {
  console.error(`FAIL: ${message}`);
  console.log(`${passed} passed, 1 failed`);
  stopping = true;
  if (server) server.kill();
  process.exit(1);
}
process.on('uncaughtException', (e) => fail(e.stack || String(e)));
process.on('unhandledRejection', (e) => fail(e && e.stack ? e.stack : String(e)));
function check(condition, message) {
  if (!condition) fail(message);
  passed++;
  console.log(`ok   ${message}`);
}

const scratch = fs.mkdtempSync(path.join(process.env.SCRATCH_DIR || os.tmpdir(), 'approval-chromium-'));
server = spawn(process.env.SERVER_BIN, [], {
  env: {
    HOME: scratch,
    PATH: process.env.PATH,
    AP_DATA_DIR: path.join(scratch, 'data'),
    AP_LOG_FILE: path.join(scratch, 'server.log'),
    AP_LOCAL_PORT: '0',
    AP_NOTIFY_LISTEN: '127.0.0.1:0',
    AP_APPROVAL_LISTEN: '127.0.0.1:0',
    AP_REFUND_CONFIRM: 'true',
    AP_REFUND_PIN: PIN,
  },
  stdio: ['pipe', 'pipe', 'inherit'],
});
server.stdin.on('error', (e) => fail(`cannot write to the server: ${e.message}`));
server.on('exit', (code, signal) => {
  if (!stopping) fail(`the server exited early (code ${code}, signal ${signal})`);
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
  } else if (msg.method === 'elicitation/create') {
    fail('the server asked a client that declared no elicitation');
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

// No `elicitation` among the capabilities: the server cannot ask a person through this client.
const init = await rpc('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'ci-approval-chromium', version: '1' } });
check(init.result.serverInfo.name === 'mcp-server-alipay' && init.result.protocolVersion === '2025-06-18', 'initialized mcp-server-alipay (2025-06-18, no elicitation)');
server.stdin.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\n');

// An order, paid on the embedded gateway (its control API).
const order = `APPROVE_${Date.now()}`;
const created = await tool('create-web-page-alipay-payment', { outTradeNo: order, totalAmount: '30.00', orderTitle: '退款审批 Chromium' });
const match = /\[点击完成支付\]\((.*?)\)/.exec(created.content[0].text);
check(match, 'the desktop tool returned a payment link');
const link = match[1];
const gateway = link.slice(0, link.indexOf('/gateway.do'));
const appId = new URL(link).searchParams.get('app_id');
const opened = await fetch(link);
check(opened.ok, 'the gateway opened the payment link');
const paid = await fetch(`${gateway}/__emulator/apps/${appId}/trades/${order}/pay`, { method: 'POST' });
check(paid.ok, `the order was paid through the control API (${paid.status})`);
const trade = async () => (await fetch(`${gateway}/__emulator/apps/${appId}/trades/${order}`)).json();
const refundsSent = async () => {
  const log = await (await fetch(`${gateway}/__emulator/requests`)).json();
  return (Array.isArray(log) ? log : log.requests).filter((r) => r.method === 'alipay.trade.refund').length;
};

async function offer(requestNo) {
  const r = await tool('refund-alipay-payment', { outTradeNo: order, refundAmount: '12.5', outRequestNo: requestNo, refundReason: '尺寸不合' });
  const out = r.structuredContent || {};
  check(!r.isError && out.status === 'awaitingApproval', `${requestNo}: refund-alipay-payment answered awaitingApproval`);
  check(typeof out.approvalUrl === 'string' && out.approvalUrl.startsWith('http://127.0.0.1:') && r.content[0].text.includes(out.approvalUrl), `${requestNo}: with a loopback approvalUrl, in the text too`);
  check(out.paidAmount === '30.00' && out.alreadyRefunded === '0.00' && out.refundAmount === '12.50', `${requestNo}: paidAmount 30.00, alreadyRefunded 0.00, refundAmount 12.50`);
  return out.approvalUrl;
}

const wrongUrl = await offer('APPROVE_R1');
check((await refundsSent()) === 0, 'nothing reached the gateway');

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'approval-chromium-profile-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 900, height: 900 },
});
const shots = [];
try {
  const page = context.pages()[0] || (await context.newPage());
  const cell = async (label) => ((await page.locator('tr', { hasText: label }).locator('td').nth(1).textContent()) || '').trim();

  // A wrong PIN: refused, and the link is closed for good.
  let response = await page.goto(wrongUrl, { waitUntil: 'load' });
  check(response.status() === 200, 'Chromium opened the first approval page');
  await page.fill('input[name="pin"]', '1357');
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button[value="approve"]')]);
  check((await page.textContent('body')).includes('The PIN is wrong'), 'a wrong PIN is refused');
  response = await page.goto(wrongUrl, { waitUntil: 'load' });
  check(response.status() === 410, 'and that link no longer works');
  check((await refundsSent()) === 0, 'still nothing sent');

  // A fresh request: its page shows the figures, and the right PIN approves.
  const url = await offer('APPROVE_R2');
  response = await page.goto(url, { waitUntil: 'load' });
  check(response.status() === 200, 'Chromium opened the fresh approval page');
  check((await cell('已付款')) === '30.00 元', 'the page shows paid 30.00 元');
  check((await cell('已退款')) === '0.00 元', 'the page shows already refunded 0.00 元');
  check((await cell('本次退款')) === '12.50 元', 'the page shows this refund 12.50 元');
  check((await cell('商户订单号')) === order && (await cell('退款请求号')) === 'APPROVE_R2', 'with the order and refund numbers');
  check((await cell('支付宝交易号')) === (await trade()).trade_no, "and the gateway's trade number");
  check(await page.isVisible('input[type="password"][name="pin"]'), 'the page asks for the PIN');
  shots.push(path.join(scratch, 'approval-page.png'));
  await page.screenshot({ path: shots.at(-1), fullPage: true });
  await page.fill('input[name="pin"]', PIN);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button[value="approve"]')]);
  const said = await page.textContent('body');
  check(/approved/i.test(said) && said.includes('Alipay confirmed the refund'), 'the result page says approved and confirmed');
  shots.push(path.join(scratch, 'approval-result.png'));
  await page.screenshot({ path: shots.at(-1), fullPage: true });
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

check((await trade()).refund_fee === '12.50', "the gateway's trade shows refund_fee 12.50");
check((await refundsSent()) === 1, 'exactly one alipay.trade.refund reached the gateway');
const replay = await tool('refund-alipay-payment', { outTradeNo: order, refundAmount: '12.5', outRequestNo: 'APPROVE_R2', refundReason: '尺寸不合' });
check(!replay.isError && replay.content[0].text.startsWith('退款结果: 重复请求退款幂等成功'), 'the replayed call: 退款结果: 重复请求退款幂等成功');
const denied = await tool('refund-alipay-payment', { outTradeNo: order, refundAmount: '12.5', outRequestNo: 'APPROVE_R1', refundReason: '尺寸不合' });
check(denied.isError && denied.content[0].text.includes('AP_REFUND_CONFIRM') && denied.content[0].text.includes('not approved'), 'the wrong-PIN refund replays as not approved');
const queried = await tool('query-alipay-refund', { outTradeNo: order, outRequestNo: 'APPROVE_R2' });
check(queried.content[0].text.includes('退款状态: REFUND_SUCCESS'), 'query-alipay-refund: REFUND_SUCCESS');
check((await refundsSent()) === 1, 'replays sent nothing more');

stopping = true;
server.stdin.end();
await new Promise((resolve) => server.on('exit', resolve));
fs.rmSync(path.join(scratch, 'data'), { recursive: true, force: true });
console.log(`screenshots: ${shots.join(' ')}`);
console.log(`${passed} passed, 0 failed`);
