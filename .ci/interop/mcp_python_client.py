#!/usr/bin/env python3
"""Drive mcp-server-alipay with the official Python MCP SDK (`pip install mcp`), over stdio.

The same pay / query / refund flow as crates/mcp-server-alipay/tests/e2e_local.rs, but with a
client nobody here wrote, once per lifecycle:

  modern        the SDK's default (mode="auto"): server/discover, then 2026-07-28 requests that
                carry `_meta` and no initialize at all
  modern-pinned mode="2026-07-28": the version adopted up front, no server/discover probe, so the
                first message the server sees is a tools/list carrying `_meta`
  legacy        mode="legacy": the SDK's own initialize handshake (it asks for its newest
                handshake version, 2025-11-25)
  legacy-2025-06-18
                mode="legacy" as an older client would run it: initialize asking 2025-06-18
  legacy-2025-03-26
                the same, asking 2025-03-26, the oldest version the server supports
  legacy-asking-2026
                initialize asking 2026-07-28, as some clients do (that version has no
                handshake): the server must answer 2025-11-25

Each run spawns the binary in local mode (no AP_APP_ID) with an explicit environment in its own
scratch directory, and asserts the negotiated protocol version. The SDK validates every
successful tool result's structuredContent against the tool's outputSchema; that validation is
left on, so a schema mismatch fails the run.

Usage: mcp_python_client.py BINARY [--modes modern,legacy,...] [--keep]
Exit status 0 when every run passed; otherwise the failing step is printed with what the server
said, followed by the tail of the server's stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
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
import jsonschema
import mcp.client.session as mcp_client_session
from mcp import Client, StdioServerParameters, stdio_client
from mcp_types import CallToolResult, ImageContent, Implementation, TextContent

TOOLS = {
    "create-mobile-alipay-payment",
    "create-web-page-alipay-payment",
    "query-alipay-payment",
    "refund-alipay-payment",
    "query-alipay-refund",
}
LINK_RE = re.compile(r"\[点击完成支付\]\((.*?)\)")

# mode name -> (Client mode, initialize version to request or None, expected negotiated version)
MODES: dict[str, tuple[str, str | None, str]] = {
    "modern": ("auto", None, "2026-07-28"),
    "modern-pinned": ("2026-07-28", None, "2026-07-28"),
    "legacy": ("legacy", None, "2025-11-25"),
    "legacy-2025-06-18": ("legacy", "2025-06-18", "2025-06-18"),
    "legacy-2025-03-26": ("legacy", "2025-03-26", "2025-03-26"),
    "legacy-asking-2026": ("legacy", "2026-07-28", "2025-11-25"),
}


class Failure(Exception):
    """A client-visible disagreement with what the server should do."""


def check(condition: bool, what: str, detail: Any = "") -> None:
    if not condition:
        raise Failure(f"{what}\n    got: {detail}")


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def show(result: CallToolResult) -> str:
    return json.dumps(
        {
            "isError": result.is_error,
            "text": text_of(result),
            "structuredContent": result.structured_content,
            "content types": [c.type for c in result.content],
        },
        ensure_ascii=False,
    )


def link_of(result: CallToolResult) -> str:
    m = LINK_RE.search(text_of(result))
    check(m is not None, "no [点击完成支付](…) link in the text", show(result))
    assert m is not None
    return m.group(1)


def http(method: str, url: str) -> tuple[int, str]:
    request = urllib.request.Request(
        url,
        method=method,
        headers={
            # What a desktop browser sends when it follows the link.
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0 Safari/537.36",
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8",
        },
        data=b"" if method == "POST" else None,
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


class Run:
    def __init__(self, name: str, binary: str, scratch: str) -> None:
        self.name = name
        self.binary = binary
        self.scratch = scratch
        self.client_mode, self.ask_version, self.expect_version = MODES[name]
        # Distinct order numbers per run (and per invocation), ≤ 64 characters.
        stamp = time.strftime("%Y%m%d%H%M%S") + f"{os.getpid() % 100000:05d}"
        tag = {
            "modern": "M",
            "modern-pinned": "P",
            "legacy": "L",
            "legacy-2025-06-18": "O",
            "legacy-2025-03-26": "Q",
            "legacy-asking-2026": "A",
        }[name]
        self.prefix = f"PY{tag}{stamp}"
        self.step = "start"
        self.errlog: Any = sys.stderr

    def env(self) -> dict[str, str]:
        # A stdio client passes only what it is told (plus HOME/PATH/…): give everything explicitly.
        return {
            "HOME": self.scratch,
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "AP_DATA_DIR": os.path.join(self.scratch, "data"),
            "AP_LOG_FILE": os.path.join(self.scratch, "server.log"),
            "AP_LOCAL_PORT": "0",
        }

    async def call(self, client: Client, tool: str, args: dict[str, Any]) -> CallToolResult:
        self.step = f"tools/call {tool} {json.dumps(args, ensure_ascii=False)}"
        return await client.call_tool(tool, args)

    async def run_bounded(self) -> None:
        with anyio.fail_after(120):
            await self.run()

    async def run(self) -> None:
        params = StdioServerParameters(command=self.binary, args=[], env=self.env(), cwd=self.scratch)
        client = Client(
            # The SDK's stdio transport, with the server's stderr kept in a file.
            stdio_client(params, errlog=self.errlog),
            mode=self.client_mode,
            client_info=Implementation(name="ci-python-sdk-client", version="1.0.0"),
            read_timeout_seconds=60,
        )
        # Python SDK 2.3's ClientSession.initialize() asks for mcp_types LATEST_HANDSHAKE_VERSION
        # (2025-11-25), read from mcp.client.session at call time; an older SDK asked for an older
        # version. Pin it for the handshake only, to be that older client.
        saved = mcp_client_session.LATEST_HANDSHAKE_VERSION
        if self.ask_version is not None:
            mcp_client_session.LATEST_HANDSHAKE_VERSION = self.ask_version
        self.step = f"connect (mode={self.client_mode}" + (
            f", initialize asking {self.ask_version})" if self.ask_version else ")"
        )
        try:
            entered = await client.__aenter__()
        finally:
            mcp_client_session.LATEST_HANDSHAKE_VERSION = saved
        try:
            await self.flow(entered)
        finally:
            self.step += " (then closing the client)"
            await client.__aexit__(None, None, None)

    async def flow(self, client: Client) -> None:
        session = client.session
        version = client.protocol_version
        print(f"  [{self.name}] negotiated protocol version {version}", flush=True)
        check(
            version == self.expect_version,
            f"negotiated protocol version should be {self.expect_version}",
            version,
        )
        if self.name == "modern":
            check(
                session.discover_result is not None and session.initialize_result is None,
                "the 2026-07-28 lifecycle must come from server/discover, with no initialize",
                f"discover={session.discover_result!r} initialize={session.initialize_result!r}",
            )
            check(
                "2026-07-28" in session.discover_result.supported_versions,
                "server/discover should list 2026-07-28",
                session.discover_result.supported_versions,
            )
        elif self.name == "modern-pinned":
            check(session.initialize_result is None, "a pinned 2026-07-28 run sends no initialize")
        else:
            check(session.initialize_result is not None, "a legacy run must have an InitializeResult")
        if self.name != "modern-pinned":  # pinned: no discover, so the server was never asked who it is
            info = client.server_info
            check(
                info is not None and info.name == "mcp-server-alipay",
                "the server announces its own name",
                info,
            )
            assert info is not None
            print(f"  [{self.name}] server {info.name} {info.version}", flush=True)
            check(client.server_capabilities.tools is not None, "tools capability", client.server_capabilities)

        # tools/list: the five tools, each with an outputSchema and annotations.
        self.step = "tools/list"
        listed = await client.list_tools()
        tools = {t.name: t for t in listed.tools}
        check(TOOLS <= set(tools), "tools/list should have the five reference tools", sorted(tools))
        extra = sorted(set(tools) - TOOLS)
        print(f"  [{self.name}] tools/list: the five reference tools" + (f", and {', '.join(extra)}" if extra else ""))
        for name, tool in tools.items():
            check(
                isinstance(tool.output_schema, dict) and tool.output_schema.get("type") == "object",
                f"{name}: outputSchema",
                tool.output_schema,
            )
            check(tool.annotations is not None, f"{name}: annotations", tool.annotations)
            check(bool(tool.description), f"{name}: description", tool.description)
        check(tools["refund-alipay-payment"].annotations.destructive_hint is True, "refund is destructive")
        check(tools["query-alipay-payment"].annotations.read_only_hint is True, "query is read-only")
        check(tools["query-alipay-refund"].annotations.read_only_hint is True, "refund query is read-only")

        mobile_no, web_no, refund_no = f"{self.prefix}M", f"{self.prefix}W", f"{self.prefix}R1"

        # A phone link.
        mobile = await self.call(
            client,
            "create-mobile-alipay-payment",
            {"outTradeNo": mobile_no, "totalAmount": 0.01, "orderTitle": "夏日诗歌创作服务"},
        )
        check(not mobile.is_error, "mobile payment link", show(mobile))
        check(text_of(mobile).startswith("支付链接: [点击完成支付]("), "mobile link text", show(mobile))
        mobile_link = link_of(mobile)
        check(
            (mobile.structured_content or {}).get("url") == mobile_link,
            "structuredContent.url equals the link in the text",
            show(mobile),
        )
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(mobile_link).query)
        check(query.get("method") == ["alipay.trade.wap.pay"], "mobile link method", mobile_link)

        # A desktop link, with its QR code.
        web = await self.call(
            client,
            "create-web-page-alipay-payment",
            {"outTradeNo": web_no, "totalAmount": "88.8", "orderTitle": "定製插畫 & 貓咪 🎨"},
        )
        check(not web.is_error, "web payment link", show(web))
        check(text_of(web).startswith("网页支付链接: [点击完成支付]("), "web link text", show(web))
        web_link = link_of(web)
        check(
            (web.structured_content or {}).get("url") == web_link,
            "structuredContent.url equals the link in the text",
            show(web),
        )
        images = [c for c in web.content if isinstance(c, ImageContent)]
        check(len(images) == 1 and images[0].mime_type == "image/png", "one image/png content", show(web))
        png = base64.b64decode(images[0].data)
        check(png.startswith(b"\x89PNG\r\n\x1a\n"), "the image is a PNG", png[:16])

        split = urllib.parse.urlsplit(web_link)
        base = f"{split.scheme}://{split.netloc}"
        app_id = urllib.parse.parse_qs(split.query).get("app_id", [None])[0]
        check(app_id is not None, "the link carries app_id", web_link)

        # Before the buyer opens the link: not an error, awaiting the buyer.
        before = await self.call(client, "query-alipay-payment", {"outTradeNo": web_no})
        check(not before.is_error, "query before the link is opened is not an error", show(before))
        check(
            (before.structured_content or {}).get("awaitingBuyer") is True,
            "structuredContent.awaitingBuyer is true before the link is opened",
            show(before),
        )

        # The buyer opens both links like a browser, then pays the desktop one.
        for link, amount in ((mobile_link, "0.01"), (web_link, "88.80")):
            self.step = f"GET {link[:80]}…"
            status, page = http("GET", link)
            check(status == 200, "opening the payment link answers 200", f"{status} {page[:300]}")
            check(amount in page, f"the cashier page shows {amount}", page[:300])
        pay_url = f"{base}/__emulator/apps/{urllib.parse.quote(app_id)}/trades/{urllib.parse.quote(web_no)}/pay"
        self.step = f"POST {pay_url}"
        status, body = http("POST", pay_url)
        check(200 <= status < 300, "the emulator control API pays the trade", f"{status} {body[:300]}")

        paid = await self.call(client, "query-alipay-payment", {"outTradeNo": web_no})
        check(not paid.is_error, "query after paying", show(paid))
        check(text_of(paid).startswith("交易状态: TRADE_SUCCESS"), "query shows TRADE_SUCCESS", show(paid))

        # Partial refund, the same refund again (idempotent), the refund query.
        refund_args = {
            "outTradeNo": web_no,
            "refundAmount": "10",
            "outRequestNo": refund_no,
            "refundReason": "客戶取消部分需求",
        }
        r1 = await self.call(client, "refund-alipay-payment", refund_args)
        check(not r1.is_error, "partial refund", show(r1))
        check(text_of(r1).startswith("退款结果: 退款成功"), "partial refund succeeds", show(r1))
        r2 = await self.call(client, "refund-alipay-payment", refund_args)
        check(not r2.is_error, "repeated refund", show(r2))
        check(
            text_of(r2).startswith("退款结果: 重复请求退款幂等成功"),
            "the same refund again is idempotent",
            show(r2),
        )
        rq = await self.call(client, "query-alipay-refund", {"outRequestNo": refund_no, "outTradeNo": web_no})
        check(not rq.is_error, "refund query", show(rq))
        check(text_of(rq).startswith("查询到退款成功"), "refund query finds the refund", show(rq))
        check("10.00" in text_of(rq), "refund query shows 10.00", show(rq))

        # A bad argument is a tool error naming the field; the server keeps serving.
        bad = await self.call(
            client,
            "create-mobile-alipay-payment",
            {"outTradeNo": f"{self.prefix}X", "totalAmount": 0.001, "orderTitle": "t"},
        )
        check(bad.is_error, "totalAmount 0.001 is a tool error (isError true)", show(bad))
        check("totalAmount" in text_of(bad), "the error names totalAmount", show(bad))
        # The SDK validates only successful results; hold error results to the same outputSchema.
        schema = tools["create-mobile-alipay-payment"].output_schema
        errors = sorted(
            jsonschema.validators.validator_for(schema)(schema).iter_errors(bad.structured_content),
            key=str,
        )
        check(
            not errors,
            "an error result's structuredContent conforms to the tool's outputSchema",
            f"{errors[0].message if errors else ''} in {show(bad)}",
        )
        still = await self.call(client, "query-alipay-payment", {"outTradeNo": mobile_no})
        check(not still.is_error, "the server keeps serving after a bad argument", show(still))
        self.step = "done"


def server_stderr_tail(scratch: str) -> str:
    parts = []
    for name in ("server.stderr", "server.log"):
        path = os.path.join(scratch, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()[-30:]
            parts.append(f"--- last lines of {name} ---\n" + "\n".join(lines))
    return "\n".join(parts)


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
    passed, failed = 0, 0
    for name in modes:
        scratch = tempfile.mkdtemp(prefix=f"mcp-py-{name}-")
        run = Run(name, binary, scratch)
        started = time.monotonic()
        try:
            with open(os.path.join(scratch, "server.stderr"), "w", encoding="utf-8") as errlog:
                run.errlog = errlog
                anyio.run(run.run_bounded)
            passed += 1
            print(f"  [{name}] PASS ({time.monotonic() - started:.1f}s)", flush=True)
            if not args.keep:
                shutil.rmtree(scratch, ignore_errors=True)
        except BaseException as e:  # report everything, including task-group errors
            failed += 1
            print(f"  [{name}] FAIL at step: {run.step}", file=sys.stderr, flush=True)
            if isinstance(e, Failure):
                print(f"    {e}", file=sys.stderr)
            else:
                traceback.print_exception(e, file=sys.stderr)
            print(server_stderr_tail(scratch), file=sys.stderr)
            print(f"  (scratch kept: {scratch})", file=sys.stderr, flush=True)
            if isinstance(e, KeyboardInterrupt):
                raise
    print(f"python-sdk: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
