// An MCP Apps host in headless Chromium, built with the official host bridge
// (@modelcontextprotocol/ext-apps AppBridge + PostMessageTransport, bundled for the page by esbuild),
// against mcp-server-alipay over Streamable HTTP (local mode, the embedded gateway):
//   1. the official MCP client (@modelcontextprotocol/client) declares io.modelcontextprotocol/ui;
//      the create tools name ui://alipay/checkout, the app-only tools are marked so, and a client
//      without the extension sees none of that;
//   2. the "model" creates an order; the host reads the view, renders it in a sandboxed iframe and
//      hands it the tool input and result; the card shows the amount, the title as plain text, the
//      order number, the QR code and the time left (screenshots light and dark);
//   3. Chromium pays on the emulator's cashier; the card turns paid by itself (polling the app-only
//      status tool through the host) and the host receives ui/update-model-context with the order,
//      amount, time and Alipay trade number;
//   4. a refund (AP_REFUND_CONFIRM, AP_REFUND_PIN) shows in the refund card; the decision tool called
//      as the model would (without the card's grant) is refused; the PIN being never a tool argument,
//      the card opens the approval page, where the PIN approves it.
// Run by .ci/mcp-apps-chromium.sh. Any failed check exits 1 with a message.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

// The client's JSON Schema validator warns of every format it does not know (schemars' "uint"):
// noise, not a finding.
for (const level of ['log', 'warn']) {
  const print = console[level];
  console[level] = (...args) => {
    if (!String(args[0]).startsWith('unknown format')) print(...args);
  };
}
const deps = process.env.NODE_DEPS;
const require = createRequire(path.join(deps, 'package.json'));
const { chromium } = require('playwright-core');
const esbuild = require('esbuild');
const { Client, StreamableHTTPClientTransport } = await import(
  pathToFileURL(path.join(deps, 'node_modules/@modelcontextprotocol/client/dist/index.mjs')).href
);

const EXT = 'io.modelcontextprotocol/ui';
const MIME = 'text/html;profile=mcp-app';
const shots = process.env.SCREENSHOT_DIR;

let server = null;
let stopping = false;
function fail(message) {
  console.error(`FAIL: ${message}`);
  server?.kill('SIGKILL');
  process.exit(1);
}
function check(condition, message) {
  if (!condition) fail(message);
  console.log(`ok   ${message}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

// --- The server: serve --http, local mode, refunds need a person's approval with a PIN. ---
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-apps-'));
const port = await freePort();
const token = 'mcp-apps-ci-token-0123456789abcdef';
const pin = '2468';
server = spawn(process.env.SERVER_BIN, ['serve', '--http', `127.0.0.1:${port}`], {
  env: {
    HOME: home,
    PATH: process.env.PATH,
    AP_DATA_DIR: path.join(home, 'data'),
    AP_LOG_FILE: path.join(home, 'server.log'),
    AP_LOCAL_PORT: '0',
    AP_NOTIFY_LISTEN: '127.0.0.1:0',
    AP_HTTP_TOKEN: token,
    AP_REFUND_CONFIRM: 'true',
    AP_REFUND_PIN: pin,
  },
  stdio: ['ignore', 'ignore', 'inherit'],
});
server.on('exit', (code) => {
  if (code !== null && !stopping) fail(`the server exited early (${code})`);
});
const base = `http://127.0.0.1:${port}`;
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${base}/healthz`)).ok) break;
  } catch {}
  if (i > 300) fail('the server did not serve /healthz within 30 s');
  await sleep(100);
}

async function connect(capabilities) {
  const client = new Client({ name: 'ci-mcp-apps-host', version: '1' }, { capabilities });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}
const host = await connect({ extensions: { [EXT]: { mimeTypes: [MIME] } } });
const plain = await connect({});

// --- 1. What each host sees. ---
const { tools } = await host.listTools();
const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
const visibility = (t) => t?._meta?.ui?.visibility ?? ['model', 'app'];
for (const name of ['create-web-page-alipay-payment', 'create-qrcode-alipay-payment', 'create-mobile-alipay-payment', 'create-alipay-payment-agent']) {
  check(byName[name]?._meta?.ui?.resourceUri === 'ui://alipay/checkout', `${name} names ui://alipay/checkout`);
}
check(byName['refund-alipay-payment']?._meta?.ui?.resourceUri === 'ui://alipay/refund-approval', 'refund-alipay-payment names ui://alipay/refund-approval');
for (const name of ['get-alipay-checkout-status', 'decide-alipay-refund-in-card']) {
  check(JSON.stringify(visibility(byName[name])) === '["app"]', `${name} is app-only`);
}
const modelTools = tools.filter((t) => visibility(t).includes('model')).map((t) => t.name);
const plainTools = (await plain.listTools()).tools;
check(JSON.stringify(plainTools.map((t) => t.name)) === JSON.stringify(modelTools), 'a host without the extension sees exactly the model tools');
check(plainTools.every((t) => t._meta === undefined), 'and no _meta on any of them');
const plainResources = (await plain.listResources()).resources.map((r) => r.uri);
check(!plainResources.some((u) => u.startsWith('ui://')), 'and no ui:// resource in its list');
let refusedForPlain = false;
try {
  await plain.callTool({ name: 'get-alipay-checkout-status', arguments: { outTradeNo: 'X1' } });
} catch {
  refusedForPlain = true;
}
check(refusedForPlain, 'an app-only tool does not exist for a host without the extension');

const read = await host.readResource({ uri: 'ui://alipay/checkout' });
const view = read.contents[0];
check(view.mimeType === MIME && view.text.startsWith('<!doctype html>'), 'resources/read gives the view as text/html;profile=mcp-app');
check(!/<link|src\s*=\s*["']?https?:|@import|url\(/i.test(view.text) && view._meta?.ui?.csp === undefined, 'self-contained: no external script, style, font or image, no CSP domains');

// --- The host page: the official AppBridge, bundled for the browser. ---
const bundle = await esbuild.build({
  stdin: {
    contents: "export { AppBridge, PostMessageTransport } from '@modelcontextprotocol/ext-apps/app-bridge';",
    resolveDir: deps,
    loader: 'js',
  },
  bundle: true,
  format: 'iife',
  globalName: 'ExtApps',
  platform: 'browser',
  write: false,
  logLevel: 'warning',
});
const hostScript = `
window.renderApp = async ({ html, theme, toolName, args, result }) => {
  const { AppBridge, PostMessageTransport } = window.ExtApps;
  const frame = document.createElement('iframe');
  frame.id = 'app';
  frame.setAttribute('sandbox', 'allow-scripts');
  frame.style.cssText = 'border:0;width:100%;height:200px;display:block';
  document.body.style.background = theme === 'dark' ? '#0f1012' : '#ffffff';
  document.body.appendChild(frame);
  const bridge = new AppBridge(null, { name: 'ci-mcp-apps-host', version: '1' },
    { serverTools: {}, openLinks: {}, updateModelContext: { text: {}, structuredContent: {} } },
    { hostContext: { theme, platform: 'mobile', displayMode: 'inline', availableDisplayModes: ['inline'], locale: 'zh-CN',
                     containerDimensions: { width: document.body.clientWidth, maxHeight: 900 } } });
  bridge.oncalltool = async (params) => window.hostCallTool(params);
  bridge.onupdatemodelcontext = async (params) => { await window.hostModelContext(params); return {}; };
  bridge.onopenlink = async ({ url }) => { await window.hostOpenLink(url); return {}; };
  bridge.onsizechange = ({ height }) => { if (height) frame.style.height = height + 'px'; };
  bridge.oninitialized = async () => {
    await bridge.sendToolInput({ arguments: args });
    await bridge.sendToolResult(result);
  };
  await bridge.connect(new PostMessageTransport(frame.contentWindow, frame.contentWindow));
  frame.srcdoc = html;
};`;
const site = http.createServer((req, res) => {
  if (req.url === '/bridge.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    return res.end(bundle.outputFiles[0].text);
  }
  if (req.url === '/host.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    return res.end(hostScript);
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end('<!doctype html><meta charset="utf-8"><title>host</title><style>body{margin:0;padding:12px}</style><body><script src="/bridge.js"></script><script src="/host.js"></script></body>');
});
await new Promise((r) => site.listen(0, '127.0.0.1', r));
const hostUrl = `http://127.0.0.1:${site.address().port}/`;

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-apps-profile-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 420, height: 900 },
});
const contexts = [];
const appCalls = [];
// The host's side of a view's tools/call: only tools whose visibility includes "app".
await browser.exposeFunction('hostCallTool', async (params) => {
  appCalls.push(params.name);
  if (!visibility(byName[params.name]).includes('app')) throw new Error(`${params.name} is not callable by apps`);
  return host.callTool(params);
});
await browser.exposeFunction('hostModelContext', async (params) => {
  contexts.push(params);
});
const opened = [];
await browser.exposeFunction('hostOpenLink', async (url) => {
  opened.push(url);
});

async function render(theme, toolName, args, result, uri) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => fail(`host page error: ${e.message}`));
  await page.emulateMedia({ colorScheme: theme });
  await page.goto(hostUrl, { waitUntil: 'load' });
  const html = (await host.readResource({ uri })).contents[0].text;
  await page.evaluate((a) => window.renderApp(a), { html, theme, toolName, args, result });
  return { page, frame: page.frameLocator('#app') };
}
const text = async (frame, id) => (await frame.locator(`#${id}`).textContent()).trim();
async function until(what, probe, seconds = 30, detail = async () => '') {
  for (let i = 0; i < seconds * 10; i++) {
    if (await probe()) return true;
    await sleep(100);
  }
  fail(`${what} ${await detail()}`);
}

try {
  // --- 2. The model creates an order; the card shows it. ---
  const order = `APPS_${Date.now()}`;
  const title = '定製插畫 & "桌面" <3 支付';
  const args = { outTradeNo: order, totalAmount: 66.6, orderTitle: title };
  const created = await host.callTool({ name: 'create-web-page-alipay-payment', arguments: args });
  check(!created.isError && created.structuredContent?.outTradeNo === order && created.structuredContent?.expiresAt, 'the model created an order (structured output with its expiry)');
  const link = created.structuredContent.url;

  const light = await render('light', 'create-web-page-alipay-payment', args, created, 'ui://alipay/checkout');
  await until('the card shows the order', async () => (await light.frame.locator('#order').textContent()) === order);
  check((await text(light.frame, 'amount')) === '¥66.60', 'the card shows ¥66.60');
  check((await text(light.frame, 'title')) === title, 'the title as plain text, exactly');
  check((await light.frame.locator('#title *').count()) === 0, 'no markup made from the title');
  check(await light.frame.locator('#qr').isVisible(), 'the QR code');
  check(/^\d{2}:\d{2}$/.test(await text(light.frame, 'left')), 'the time left');
  check((await text(light.frame, 'status')).startsWith('等待付款'), 'status: awaiting payment');
  check(await light.frame.locator('html').evaluate(() => matchMedia('(prefers-color-scheme: dark)').matches === false), 'light theme');
  await until('the status tool is polled through the host', async () => appCalls.includes('get-alipay-checkout-status'));
  const dark = await render('dark', 'create-web-page-alipay-payment', args, created, 'ui://alipay/checkout');
  await until('the dark card shows the order', async () => (await dark.frame.locator('#order').textContent()) === order);
  const bg = await dark.frame.locator('body').evaluate((b) => getComputedStyle(b).backgroundColor);
  check(bg !== 'rgb(255, 255, 255)', `the dark card follows the host's theme (${bg})`);
  if (shots) {
    fs.mkdirSync(shots, { recursive: true });
    await light.frame.locator('main').screenshot({ path: path.join(shots, 'checkout-light.png') });
    await dark.frame.locator('main').screenshot({ path: path.join(shots, 'checkout-dark.png') });
    console.log(`ok   screenshots in ${shots}`);
  }
  await dark.page.close();

  // --- 3. The buyer pays on the cashier; the card and the model's context learn it. ---
  const cashier = await browser.newPage();
  await cashier.goto(link, { waitUntil: 'load' });
  await cashier.click('#pay-button');
  await cashier.waitForLoadState('load');
  await cashier.close();
  await until('the card turns paid', async () => (await text(light.frame, 'status')).startsWith('已支付'));
  check(await light.frame.locator('#paid-mark').isVisible(), 'the card shows the tick');
  const tradeNo = await text(light.frame, 'trade');
  check(tradeNo.length > 0, `and the Alipay trade number ${tradeNo}`);
  await until('the host receives ui/update-model-context', async () => contexts.length > 0);
  const ctx = contexts.at(-1);
  const sc = ctx.structuredContent || {};
  check(sc.outTradeNo === order && sc.totalAmount === '66.60' && sc.tradeNo === tradeNo && sc.paidAt && sc.paid === true, 'the model context has the order, amount, time and trade number');
  check(ctx.content?.[0]?.text.includes(order) && ctx.content[0].text.includes(tradeNo), 'and says so in text');
  const polls = appCalls.length;
  await sleep(7000);
  check(appCalls.length === polls, 'polling stopped once paid');
  if (shots) await light.frame.locator('main').screenshot({ path: path.join(shots, 'checkout-paid-light.png') });

  // --- 4. A refund in its card: the model cannot use the card's tool; with AP_REFUND_PIN the card
  //        sends the person to the approval page (the PIN is never a tool argument), where it is approved.
  const refundArgs = { outTradeNo: order, refundAmount: 6.6, outRequestNo: `${order}_R1` };
  const asked = await host.callTool({ name: 'refund-alipay-payment', arguments: refundArgs });
  check(asked.structuredContent?.status === 'awaitingApproval', 'the refund awaits approval');
  const grant = asked._meta?.['alipay/approvalGrant'];
  check(typeof grant === 'string' && !JSON.stringify(asked.content).includes(grant) && !JSON.stringify(asked.structuredContent).includes(grant), 'its grant is in _meta only, not in what the model reads');
  const forged = await host.callTool({ name: 'decide-alipay-refund-in-card', arguments: { grant: 'f'.repeat(64), decision: 'deny' } });
  check(forged.isError && forged.structuredContent?.decided === 'refused', "a call without the card's grant (the model's) is refused");
  const card = await render('light', 'refund-alipay-payment', refundArgs, asked, 'ui://alipay/refund-approval');
  await until('the refund card shows the refund', async () => (await card.frame.locator('#refund-amount').textContent()) === '¥6.60');
  check((await text(card.frame, 'refund-order')) === order && (await text(card.frame, 'refund-paid')) === '66.60', 'with the order and what was paid');
  check(!(await card.frame.locator('#approve').isVisible()) && (await card.frame.locator('#deny').isVisible()), 'with a PIN set, the card can deny but not approve');
  await card.frame.locator('#open-approval').click();
  await until('the card asks the host to open the approval page', async () => opened.length > 0);
  check(opened.at(-1) === asked.structuredContent.approvalUrl, 'the approval page of this refund');
  const approvalPage = await browser.newPage();
  await approvalPage.goto(opened.at(-1), { waitUntil: 'load' });
  await approvalPage.fill('input[name="pin"]', pin);
  await Promise.all([approvalPage.waitForNavigation({ waitUntil: 'load' }), approvalPage.click('button[value="approve"]')]);
  await approvalPage.close();
  const refunded = await host.callTool({ name: 'query-alipay-refund', arguments: { outTradeNo: order, outRequestNo: `${order}_R1` } });
  check(refunded.content[0].text.includes('REFUND_SUCCESS'), 'approved on the page with the PIN: the refund succeeded');
  const late = await host.callTool({ name: 'decide-alipay-refund-in-card', arguments: { grant, decision: 'deny' } });
  check(late.isError && late.structuredContent?.decided === 'refused', 'the card can no longer decide it');
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

await host.close();
await plain.close();
stopping = true;
server.kill('SIGTERM');
await new Promise((r) => server.on('exit', r));
site.close();
fs.rmSync(home, { recursive: true, force: true });
console.log('mcp apps host in chromium: all checks passed');
