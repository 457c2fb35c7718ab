#!/usr/bin/env python3
"""Drive `wait-for-alipay-payment` with the official Python MCP SDK (`pip install mcp`).

What an agent in a client nobody here wrote sees while it waits for a buyer, over each transport:

  stdio         the binary spawned by the SDK's stdio transport (mode="auto": 2026-07-28)
  http          `serve --http` with AP_HTTP_TOKEN and AP_HTTP_TIMEOUT_MS=1500, the SDK's Streamable
                HTTP client with the bearer header, stateless 2026-07-28 (mode="auto")
  http-legacy   the same server kind, a 2025-06-18-era session (mode="legacy": initialize)

Each run, in local mode in its own scratch directory: tools/list has the wait tool; a desktop link
is created (`expiresAt`, a line pointing at the wait); a wait of timeoutSeconds 2 answers unpaid
on time (longer than AP_HTTP_TIMEOUT_MS over HTTP); the buyer opens the link and is paid through
the embedded gateway's control API (its URL read from the server's stderr line and checked
against the link) while a wait of timeoutSeconds 30 with a progress callback runs: it answers paid
within seconds, and the callback heard progress; a wait on the paid order answers at once; a wait
on an unknown order is a not_found tool error; a 智易收 order (create-alipay-payment-agent with the
reference's arguments) comes with its QR image, its pay_url opens the cashier, it is paid through
the emulator, query and wait say paid, and part of it is refunded. The SDK validates each successful result's
structuredContent against the tool's outputSchema; that is left on.

Usage: mcp_python_wait.py BINARY [--modes stdio,http,http-legacy] [--keep]
Prints each check, then "python-wait: N passed, M failed" (checks); exit status 0 when none failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from importlib.metadata import version as dist_version
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Implementation, TextContent

WAIT = "wait-for-alipay-payment"
TOKEN = "ci-python-wait-token-0123456789abcdef"
HTTP_TIMEOUT_MS = 1500
LINK_RE = re.compile(r"\[点击完成支付\]\((.*?)\)")
GATEWAY_RE = re.compile(r"embedded Alipay gateway at (http://\S+?)/gateway\.do")

# mode name -> (transport, Client mode, expected negotiated version)
MODES: dict[str, tuple[str, str, str]] = {
    "stdio": ("stdio", "auto", "2026-07-28"),
    "http": ("http", "auto", "2026-07-28"),
    "http-legacy": ("http", "legacy", "2025-11-25"),
}


class Failure(Exception):
    """A client-visible disagreement with what the server should do."""


class Tally:
    passed = 0
    failed = 0


def check(condition: bool, what: str, detail: Any = "") -> None:
    if not condition:
        Tally.failed += 1
        raise Failure(f"{what}\n    got: {detail}")
    Tally.passed += 1
    print(f"    ok: {what}", flush=True)


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def show(result: CallToolResult) -> str:
    return json.dumps(
        {"isError": result.is_error, "text": text_of(result), "structuredContent": result.structured_content},
        ensure_ascii=False,
    )


def http(method: str, url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    def __init__(self, name: str, binary: str, scratch: str) -> None:
        self.name = name
        self.binary = binary
        self.scratch = scratch
        self.transport, self.client_mode, self.expect_version = MODES[name]
        stamp = time.strftime("%Y%m%d%H%M%S") + f"{os.getpid() % 100000:05d}"
        self.prefix = "PYW" + {"stdio": "S", "http": "H", "http-legacy": "L"}[name] + stamp
        self.step = "start"
        self.stderr_path = os.path.join(scratch, "server.stderr")
        self.server: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {
            "HOME": self.scratch,
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "AP_DATA_DIR": os.path.join(self.scratch, "data"),
            "AP_LOG_FILE": os.path.join(self.scratch, "server.log"),
            "AP_LOCAL_PORT": "0",
            "AP_NOTIFY_LISTEN": f"127.0.0.1:{free_port()}",
            "AP_HTTP_TOKEN": TOKEN,
            "AP_HTTP_TIMEOUT_MS": str(HTTP_TIMEOUT_MS),
        }

    def stderr_text(self) -> str:
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    async def call(self, client: Client, tool: str, args: dict[str, Any], **kw: Any) -> CallToolResult:
        self.step = f"tools/call {tool} {json.dumps(args, ensure_ascii=False)}"
        return await client.call_tool(tool, args, **kw)

    async def run_bounded(self) -> None:
        with anyio.fail_after(150):
            await self.run()

    async def run(self) -> None:
        info = Implementation(name="ci-python-wait-client", version="1.0.0")
        if self.transport == "stdio":
            with open(self.stderr_path, "w", encoding="utf-8") as errlog:
                params = StdioServerParameters(command=self.binary, args=[], env=self.env(), cwd=self.scratch)
                self.step = f"connect over stdio (mode={self.client_mode})"
                async with Client(
                    stdio_client(params, errlog=errlog),
                    mode=self.client_mode,
                    client_info=info,
                    read_timeout_seconds=60,
                ) as client:
                    await self.flow(client)
            return
        url = await self.start_http_server()
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as hc:
                self.step = f"connect over Streamable HTTP {url} (mode={self.client_mode})"
                async with Client(
                    streamable_http_client(url, http_client=hc),
                    mode=self.client_mode,
                    client_info=info,
                    read_timeout_seconds=60,
                ) as client:
                    await self.flow(client)
        finally:
            self.stop_http_server()

    async def start_http_server(self) -> str:
        port = free_port()
        self.step = f"start {self.binary} serve --http 127.0.0.1:{port}"
        with open(self.stderr_path, "wb") as errlog:
            self.server = subprocess.Popen(
                [self.binary, "serve", "--http", f"127.0.0.1:{port}"],
                env=self.env(),
                cwd=self.scratch,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errlog,
            )
        with anyio.fail_after(20):
            while "serving MCP at http://" not in self.stderr_text():
                if self.server.poll() is not None:
                    raise Failure(f"serve --http exited with {self.server.returncode}")
                await anyio.sleep(0.1)
        return f"http://127.0.0.1:{port}/mcp"

    def stop_http_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    async def flow(self, client: Client) -> None:
        tag = f"[{self.name}]"
        version = client.protocol_version
        print(f"  {tag} negotiated protocol version {version}", flush=True)
        check(version == self.expect_version, f"negotiated protocol version is {self.expect_version}", version)

        self.step = "tools/list"
        tools = {t.name: t for t in (await client.list_tools()).tools}
        check(WAIT in tools, f"tools/list has {WAIT}", sorted(tools))
        wait_tool = tools[WAIT]
        timeout_schema = (wait_tool.input_schema.get("properties") or {}).get("timeoutSeconds") or {}
        check(
            timeout_schema.get("minimum") == 1 and timeout_schema.get("maximum") == 50,
            "timeoutSeconds is 1–50 in the input schema",
            timeout_schema,
        )
        check(
            wait_tool.annotations is not None and wait_tool.annotations.read_only_hint is True,
            "the wait is read-only",
            wait_tool.annotations,
        )

        no = f"{self.prefix}W"
        created = await self.call(
            client,
            "create-web-page-alipay-payment",
            {"outTradeNo": no, "totalAmount": "18.80", "orderTitle": "等待付款 (Python SDK)"},
        )
        check(not created.is_error, "create-web-page-alipay-payment", show(created))
        sc = created.structured_content or {}
        expires_at = sc.get("expiresAt")
        check(
            isinstance(expires_at, str) and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", expires_at) is not None,
            "the create says expiresAt (yyyy-MM-dd HH:mm:ss)",
            show(created),
        )
        check(
            any(WAIT in line and no in line for line in text_of(created).splitlines()),
            "the create's text points at the wait tool with the order number",
            text_of(created),
        )
        m = LINK_RE.search(text_of(created))
        check(m is not None and m.group(1) == sc.get("url"), "the Markdown link is structuredContent.url", show(created))
        assert m is not None
        link = m.group(1)

        # The embedded gateway: from the server's stderr line, the same as the link's.
        announced = GATEWAY_RE.search(self.stderr_text())
        split = urllib.parse.urlsplit(link)
        base = f"{split.scheme}://{split.netloc}"
        check(
            announced is not None and announced.group(1) == base,
            "the server's stderr names the gateway the link points at",
            f"{announced.group(0) if announced else self.stderr_text()[-500:]} vs {base}",
        )
        app_id = urllib.parse.parse_qs(split.query)["app_id"][0]

        # Unpaid: the wait answers when its time runs out (over HTTP, past AP_HTTP_TIMEOUT_MS).
        started = time.monotonic()
        unpaid = await self.call(client, WAIT, {"outTradeNo": no, "timeoutSeconds": 2})
        took = time.monotonic() - started
        check(not unpaid.is_error, "a 2 s wait on an unpaid order is not an error", show(unpaid))
        us = unpaid.structured_content or {}
        check(us.get("state") == "waiting" and us.get("final") is False, "state waiting, final false", show(unpaid))
        check((us.get("waitedSeconds") or 0) >= 2, "waitedSeconds ≥ 2", show(unpaid))
        check(no in (us.get("next") or "") and expires_at in (us.get("next") or ""), "next names the order and expiresAt", show(unpaid))
        check(2.0 <= took < 15.0, "answered on time (2 s, well before 15 s)", f"{took:.1f}s")

        # The buyer opens the link; a 30 s wait with a progress callback; the payment at ~5.5 s.
        self.step = f"GET {link[:80]}…"
        status, page = http("GET", link)
        check(status == 200 and "pay-button" in page, "the link opens the cashier", f"{status} {page[:300]}")
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        paid_at: list[float] = []
        pay_url = f"{base}/__emulator/apps/{urllib.parse.quote(app_id)}/trades/{urllib.parse.quote(no)}/pay"

        async def pay_later() -> None:
            await anyio.sleep(5.5)
            paid_at.append(time.monotonic())
            status, body = await anyio.to_thread.run_sync(http, "POST", pay_url)
            if not 200 <= status < 300:
                raise Failure(f"the control API did not pay: {status} {body[:300]}")

        started = time.monotonic()
        results: list[CallToolResult] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(pay_later)
            results.append(await self.call(client, WAIT, {"outTradeNo": no, "timeoutSeconds": 30}, progress_callback=on_progress))
        took = time.monotonic() - started
        paid = results[0]
        check(not paid.is_error, "the wait during the payment is not an error", show(paid))
        ps = paid.structured_content or {}
        check(ps.get("state") == "paid" and ps.get("paid") is True and ps.get("final") is True, "state paid", show(paid))
        check(bool(ps.get("tradeNo")), "tradeNo once paid", show(paid))
        after = time.monotonic() - paid_at[0] if paid_at else -1
        check(0 <= after < 12 and took < 25, "answered within seconds of the payment, well before 30 s", f"{after:.1f}s after it, {took:.1f}s in all")

        started = time.monotonic()
        again = await self.call(client, WAIT, {"outTradeNo": no, "timeoutSeconds": 30})
        took = time.monotonic() - started
        check(
            not again.is_error and (again.structured_content or {}).get("state") == "paid" and took < 5,
            "a wait on the paid order answers at once",
            f"{took:.1f}s {show(again)}",
        )

        unknown = await self.call(client, WAIT, {"outTradeNo": f"{self.prefix}NONE", "timeoutSeconds": 30})
        check(
            unknown.is_error is True and ((unknown.structured_content or {}).get("error") or {}).get("kind") == "not_found",
            "a wait on an unknown order is a not_found tool error",
            show(unknown),
        )

        # 智易收 with the reference's arguments: link + QR image, paid (query and wait), part refunded.
        agent_no = f"{self.prefix}A"
        agent = await self.call(
            client,
            "create-alipay-payment-agent",
            {"outTradeNo": agent_no, "totalAmount": "9.90", "agentName": "插画师小助手"},
        )
        check(not agent.is_error, "create-alipay-payment-agent", show(agent))
        ac = agent.structured_content or {}
        check(ac.get("kind") == "agent" and ac.get("method") == "alipay.aipay.trade.precreate", "kind agent, method alipay.aipay.trade.precreate", show(agent))
        check(
            any(getattr(c, "type", "") == "image" and getattr(c, "mime_type", getattr(c, "mimeType", "")) == "image/png" for c in agent.content),
            "the 智易收 QR code comes as a PNG image",
            show(agent),
        )
        am = LINK_RE.search(text_of(agent))
        check(am is not None and am.group(1) == ac.get("url"), "the 智易收 link is structuredContent.url", show(agent))
        assert am is not None
        self.step = "open the 智易收 pay_url"
        status, page = http("GET", am.group(1))
        check(status == 200, "pay_url opens the cashier", f"{status} {page[:300]}")
        status, body = http("POST", f"{base}/__emulator/apps/{urllib.parse.quote(app_id)}/trades/{urllib.parse.quote(agent_no)}/pay")
        check(200 <= status < 300, "the 智易收 order is paid through the emulator", f"{status} {body[:300]}")
        queried = await self.call(client, "query-alipay-payment", {"outTradeNo": agent_no})
        check(text_of(queried).startswith("交易状态: TRADE_SUCCESS, 交易金额: 9.90"), "query says TRADE_SUCCESS", show(queried))
        waited = await self.call(client, WAIT, {"outTradeNo": agent_no, "timeoutSeconds": 10})
        check((waited.structured_content or {}).get("state") == "paid", "the wait says paid", show(waited))
        refunded = await self.call(
            client,
            "refund-alipay-payment",
            {"outTradeNo": agent_no, "refundAmount": "1.90", "outRequestNo": f"{agent_no}R1"},
        )
        check(text_of(refunded).startswith("退款结果: 退款成功"), "part of the 智易收 order is refunded", show(refunded))

        # Checked last, so that the checks above run whatever this says.
        self.step = "the progress heard by the 30 s wait"
        check(len(progress) >= 1, "the progress callback heard progress (every 4 s)", progress)
        check(
            all(total == 30 for _, total, _ in progress) and all(b[0] > a[0] for a, b in zip(progress, progress[1:])),
            "progress rises, of total 30",
            progress,
        )
        check(all(no in (message or "") for _, _, message in progress), "each progress message names the order", progress)
        self.step = "done"


def leaves(e: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or `e` itself."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for inner in e.exceptions for leaf in leaves(inner)]
    return [e]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"FAIL: {binary} is not an executable", file=sys.stderr)
        return 2
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        print(f"FAIL: unknown mode(s) {unknown}; known: {list(MODES)}", file=sys.stderr)
        return 2

    print(f"python MCP SDK: mcp {dist_version('mcp')} (mcp_types {dist_version('mcp-types')})", flush=True)
    for name in modes:
        scratch = tempfile.mkdtemp(prefix=f"mcp-py-wait-{name}-")
        run = Run(name, binary, scratch)
        started = time.monotonic()
        print(f"  [{name}]", flush=True)
        before = Tally.failed
        try:
            anyio.run(run.run_bounded)
            print(f"  [{name}] PASS ({time.monotonic() - started:.1f}s)", flush=True)
        except BaseException as e:  # report everything, including task-group errors
            if Tally.failed == before:
                Tally.failed += 1  # not a check: the run itself broke
            print(f"  [{name}] FAIL at step: {run.step}", file=sys.stderr, flush=True)
            for f in leaves(e):
                if isinstance(f, Failure):
                    print(f"    {f}", file=sys.stderr)
                else:
                    traceback.print_exception(f, file=sys.stderr)
            tail = run.stderr_text().splitlines()[-20:]
            print("--- last lines of the server's stderr ---\n" + "\n".join(tail), file=sys.stderr)
            print(f"  (scratch kept: {scratch})", file=sys.stderr, flush=True)
            run.stop_http_server()
            if isinstance(e, KeyboardInterrupt):
                raise
            continue
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"python-wait: {Tally.passed} passed, {Tally.failed} failed", flush=True)
    return 0 if Tally.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
