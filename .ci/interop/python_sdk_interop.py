#!/usr/bin/env python3
"""Interop: Alipay's official Python SDK (alipay-sdk-python 3.7.1411) against alipay-emulator.

Drives the emulator the way a merchant's Python code would, and fails (exit 1) as soon as the SDK
disagrees with it:

  1. page pay link (page_execute GET), opened like a browser -> the cashier
  2. the buyer pays (control API)
  3. alipay.trade.query through execute(), which verifies the response signature
  4. alipay.trade.refund (partial) and 5. alipay.trade.fastpay.refund.query
  6. the notifications the emulator POSTed to our notify_url, verified with the SDK's own
     signature function (verify_with_rsa over get_sign_content of all fields but sign/sign_type)
  7. the SDK's POST form variant (page_execute default), paid through the cashier's button, and the
     signed return_url parameters verified with the SDK
  7b. the model's time_expire: the link opens in time; once the emulator's clock (moved with
     POST /__emulator/clock) passes it, the pay button is refused and the trade is TRADE_CLOSED
  7c. 智易收 alipay.aipay.trade.precreate through the SDK's own model and request classes
     (AlipayAipayTradePrecreateModel / Request; execute() verifies the answer): pay_url opens the
     cashier, pic_url is a PNG, paid through the control API, queried with the SDK, notified
  8. negative controls: a wrong Alipay public key makes execute() fail; a tampered notification
     does not verify (so the checks above can fail)
  9. the trade bill: the emulator's clock moves one day on, alipay.data.dataservice.bill.downloadurl.query
     through the SDK's model and request classes (AlipayDataDataserviceBillDownloadurlQueryModel /
     Request; execute() verifies the answer), the URL fetched at once (a second fetch is refused),
     the zip read with Python's own zipfile (names without the UTF-8 flag, so cp437 back to bytes,
     then GBK) and csv over GBK text: its payment and refund rows and amounts are what this script
     paid and refunded, the 0.6% fee adds up, the summary's 合计 agrees; today's bill is
     isp.bill_not_exist (bills are T+1)

Run by .ci/emulator-python-sdk.sh, which starts the emulator and passes its JSON line.
"""

import argparse
import csv
import datetime
import decimal
import http.client
import http.server
import io
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from html.parser import HTMLParser

import rsa
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.domain.AlipayAipayTradePrecreateModel import AlipayAipayTradePrecreateModel
from alipay.aop.api.domain.AlipayDataDataserviceBillDownloadurlQueryModel import (
    AlipayDataDataserviceBillDownloadurlQueryModel,
)
from alipay.aop.api.domain.AlipayTradeFastpayRefundQueryModel import AlipayTradeFastpayRefundQueryModel
from alipay.aop.api.domain.AlipayTradePagePayModel import AlipayTradePagePayModel
from alipay.aop.api.domain.AlipayTradeQueryModel import AlipayTradeQueryModel
from alipay.aop.api.domain.AlipayTradeRefundModel import AlipayTradeRefundModel
from alipay.aop.api.exception.Exception import ResponseException
from alipay.aop.api.request.AlipayAipayTradePrecreateRequest import AlipayAipayTradePrecreateRequest
from alipay.aop.api.request.AlipayDataDataserviceBillDownloadurlQueryRequest import (
    AlipayDataDataserviceBillDownloadurlQueryRequest,
)
from alipay.aop.api.request.AlipayTradeFastpayRefundQueryRequest import AlipayTradeFastpayRefundQueryRequest
from alipay.aop.api.request.AlipayTradePagePayRequest import AlipayTradePagePayRequest
from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
from alipay.aop.api.request.AlipayTradeRefundRequest import AlipayTradeRefundRequest
from alipay.aop.api.response.AlipayAipayTradePrecreateResponse import AlipayAipayTradePrecreateResponse
from alipay.aop.api.response.AlipayDataDataserviceBillDownloadurlQueryResponse import (
    AlipayDataDataserviceBillDownloadurlQueryResponse,
)
from alipay.aop.api.response.AlipayTradeFastpayRefundQueryResponse import AlipayTradeFastpayRefundQueryResponse
from alipay.aop.api.response.AlipayTradeQueryResponse import AlipayTradeQueryResponse
from alipay.aop.api.response.AlipayTradeRefundResponse import AlipayTradeRefundResponse
from alipay.aop.api.util import WebUtils
from alipay.aop.api.util.SignatureUtils import get_sign_content, verify_with_rsa


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print("ok   " + message)


# ALIPAY-PROTOCOL.md §8 pitfall 19: the SDK's get_http_connection always connects to port 80/443
# (and crashes concatenating an int port). For this test only, we replace it with one that keeps
# the gateway's port; everything else (signing, the request, the response check) is the SDK's own.
def get_http_connection_keeping_port(url, query_string, timeout):
    parsed = urllib.parse.urlparse(url)
    https = parsed.scheme == "https"
    port = parsed.port or (443 if https else 80)
    if https:
        connection = http.client.HTTPSConnection(host=parsed.hostname, port=port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(host=parsed.hostname, port=port, timeout=timeout)
    target = parsed.scheme + "://" + parsed.hostname + ":" + str(port) + parsed.path + "?" + query_string
    return target, connection


WebUtils.get_http_connection = get_http_connection_keeping_port


class NotifyReceiver(http.server.BaseHTTPRequestHandler):
    """The merchant's notify_url: records every POST and answers exactly `success`."""

    received = []
    lock = threading.Lock()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with NotifyReceiver.lock:
            NotifyReceiver.received.append((self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"success")

    def log_message(self, *args):
        pass


class FormParser(HTMLParser):
    """Reads the SDK's punchout form: its action and hidden inputs."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs.get("action")
        if tag == "input" and attrs.get("type") == "hidden":
            self.fields.append((attrs["name"], attrs.get("value", "")))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http_request(url, data=None, method=None, follow=True):
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8")


def sdk_verify(fields, alipay_public_key):
    """The SDK's own check: sorted k=v of all fields but sign and sign_type, SHA256withRSA."""
    params = {k: v for k, v in fields.items() if k not in ("sign", "sign_type")}
    content = get_sign_content(params)
    return verify_with_rsa(alipay_public_key, content.encode("utf-8"), fields["sign"])


def http_bytes(url):
    """GET a URL: status, headers (names in lower case), raw body."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def bill_query(client, bill_type, bill_date):
    """alipay.data.dataservice.bill.downloadurl.query through the SDK's own classes."""
    model = AlipayDataDataserviceBillDownloadurlQueryModel()
    model.bill_type = bill_type
    model.bill_date = bill_date
    response = AlipayDataDataserviceBillDownloadurlQueryResponse()
    response.parse_response_content(client.execute(AlipayDataDataserviceBillDownloadurlQueryRequest(biz_model=model)))
    return response


def yuan(text):
    return decimal.Decimal(text.strip())


def money(amount):
    """Two decimals, as the bill writes yuan."""
    return str(amount.quantize(decimal.Decimal("0.01")))


def fee_of(amount):
    """0.6% of an amount, rounded half up to the fen."""
    return (amount * decimal.Decimal("0.006")).quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP)


def read_bill_zip(data):
    """{name: rows} of a bill zip, read as Alipay's must be: the entry names carry no UTF-8 flag,
    so zipfile decoded them as cp437; back to the bytes, then GBK. Contents are GBK CSV."""
    files = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            check(info.flag_bits & 0x800 == 0, "bill zip: entry without the UTF-8 flag")
            check(info.compress_type == zipfile.ZIP_DEFLATED, "bill zip: entry deflated")
            raw_name = info.filename.encode("cp437")
            try:
                raw_name.decode("utf-8")
                fail("bill zip: an entry name is UTF-8, not GBK: %r" % raw_name)
            except UnicodeDecodeError:
                pass
            name = raw_name.decode("gbk")
            text = archive.read(info).decode("gbk")
            check(text.endswith("\r\n") and "\n" not in text.replace("\r\n", ""), "bill zip: %s has CRLF line ends" % name)
            files[name] = list(csv.reader(io.StringIO(text, newline="")))
    return list(files.items())


def table(rows, first_header):
    """The data rows between a file's header row and the next # line."""
    start = next(i for i, row in enumerate(rows) if row and row[0] == first_header)
    data = []
    for row in rows[start + 1:]:
        if row and row[0].startswith("#"):
            break
        data.append(row)
    return rows[start], data


def make_client(gateway, app_id, app_private_key, alipay_public_key):
    config = AlipayClientConfig()
    config.server_url = gateway
    config.app_id = app_id
    config.app_private_key = app_private_key
    config.alipay_public_key = alipay_public_key
    config.sign_type = "RSA2"
    return DefaultAlipayClient(alipay_client_config=config)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--emulator-line", required=True, help="the JSON line the emulator printed")
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--app-private-key-file", required=True, help="PKCS#1, as the SDK needs")
    parser.add_argument("--wrong-public-key-file", required=True, help="any public key but Alipay's")
    args = parser.parse_args()

    line = json.loads(args.emulator_line)
    gateway = line["gateway"]
    base = gateway.rsplit("/", 1)[0]
    alipay_public_key = line["alipay_public_key"]
    app_private_key = open(args.app_private_key_file).read().strip()
    client = make_client(gateway, args.app_id, app_private_key, alipay_public_key)

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotifyReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    notify_url = "http://127.0.0.1:%d/notify" % receiver.server_address[1]
    return_url = "http://127.0.0.1:9/return"
    run = str(int(time.time() * 1000))

    # 1. A page pay link, as page_execute GET builds it, opened like a browser.
    out_trade_no = "PY_" + run
    model = AlipayTradePagePayModel()
    model.out_trade_no = out_trade_no
    model.total_amount = "88.80"
    model.subject = "Python SDK 互通测试"
    model.product_code = "FAST_INSTANT_TRADE_PAY"
    request = AlipayTradePagePayRequest(biz_model=model)
    request.notify_url = notify_url
    request.return_url = return_url
    link = client.page_execute(request, http_method="GET")
    check(link.startswith(gateway + "?"), "page_execute GET built a link on the emulator: " + link[:80] + "...")
    status, _, page = http_request(link)
    check(status == 200 and "错误代码" not in page, "the emulator accepted the SDK's signature and showed its cashier")
    check("88.80" in page and "Python SDK 互通测试" in page, "the cashier shows the order's amount and title")

    # 2. The buyer pays.
    status, _, body = http_request(
        "%s/__emulator/apps/%s/trades/%s/pay" % (base, args.app_id, out_trade_no), data=b"", method="POST"
    )
    trade = json.loads(body)
    check(status == 200 and trade["trade_status"] == "TRADE_SUCCESS", "paid through the control API")

    # 3. Query: execute() raises unless the response signature verifies.
    query = AlipayTradeQueryModel()
    query.out_trade_no = out_trade_no
    content = client.execute(AlipayTradeQueryRequest(biz_model=query))
    response = AlipayTradeQueryResponse()
    response.parse_response_content(content)
    check(response.is_success(), "alipay.trade.query answered 10000 and its signature verified in the SDK")
    check(response.trade_status == "TRADE_SUCCESS", "query: trade_status TRADE_SUCCESS")
    check(response.total_amount == "88.80", "query: total_amount 88.80")
    check(response.trade_no == trade["trade_no"], "query: trade_no matches the control API")

    # 4. A partial refund.
    refund = AlipayTradeRefundModel()
    refund.out_trade_no = out_trade_no
    refund.refund_amount = "10.00"
    refund.out_request_no = "R1"
    refund.refund_reason = "互通测试退款"
    content = client.execute(AlipayTradeRefundRequest(biz_model=refund))
    response = AlipayTradeRefundResponse()
    response.parse_response_content(content)
    check(response.is_success() and response.fund_change == "Y", "alipay.trade.refund: fund_change Y")
    check(response.refund_fee == "10.00", "refund: cumulative refund_fee 10.00")
    content = client.execute(AlipayTradeRefundRequest(biz_model=refund))
    response = AlipayTradeRefundResponse()
    response.parse_response_content(content)
    check(response.is_success() and response.fund_change == "N", "the same refund again: fund_change N")

    # 5. The refund query.
    refund_query = AlipayTradeFastpayRefundQueryModel()
    refund_query.out_trade_no = out_trade_no
    refund_query.out_request_no = "R1"
    content = client.execute(AlipayTradeFastpayRefundQueryRequest(biz_model=refund_query))
    response = AlipayTradeFastpayRefundQueryResponse()
    response.parse_response_content(content)
    check(response.is_success() and response.refund_status == "REFUND_SUCCESS", "refund query: REFUND_SUCCESS")
    check(response.refund_amount == "10.00", "refund query: refund_amount 10.00")

    # 6. Notifications: the payment and the partial refund (page pay notifies TRADE_SUCCESS).
    deadline = time.time() + 30
    while time.time() < deadline:
        with NotifyReceiver.lock:
            if len(NotifyReceiver.received) >= 2:
                break
        time.sleep(0.05)
    with NotifyReceiver.lock:
        received = list(NotifyReceiver.received)
    check(len(received) >= 2, "two notifications arrived (payment, partial refund)")
    notifications = []
    for content_type, body in received:
        check(content_type.startswith("application/x-www-form-urlencoded"), "notification content type: " + content_type)
        fields = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        check(sdk_verify(fields, alipay_public_key), "the SDK's verify_with_rsa accepts notification " + fields["notify_id"])
        notifications.append(fields)
    paid = [n for n in notifications if "refund_fee" not in n]
    refunded = [n for n in notifications if n.get("out_biz_no") == "R1"]
    check(len(paid) == 1 and paid[0]["trade_status"] == "TRADE_SUCCESS", "payment notification: TRADE_SUCCESS")
    check(paid[0]["total_amount"] == "88.80" and paid[0]["out_trade_no"] == out_trade_no, "payment notification: order and amount")
    check(len(refunded) == 1 and refunded[0]["refund_fee"] == "10.00", "refund notification: refund_fee 10.00, out_biz_no R1")

    # 7. The SDK's form variant (page_execute POST), paid with the cashier's own button.
    form_trade_no = "PYF_" + run
    model.out_trade_no = form_trade_no
    model.total_amount = "0.01"
    request = AlipayTradePagePayRequest(biz_model=model)
    request.return_url = return_url
    html = client.page_execute(request)
    form = FormParser()
    form.feed(html)
    check(form.action is not None and form.action.startswith(gateway + "?"), "page_execute POST built a form for the emulator")
    status, _, page = http_request(form.action, data=urllib.parse.urlencode(form.fields).encode("utf-8"))
    check(status == 200 and "错误代码" not in page, "the emulator accepted the SDK's form post and showed its cashier")
    action = page.split('<form method="post" action="', 1)[1].split('"', 1)[0]
    status, headers, _ = http_request(base + action, data=b"", follow=False)
    location = headers.get("Location") or headers.get("location") or ""
    check(status == 302 and location.startswith(return_url + "?"), "the pay button redirects to return_url")
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(location).query, keep_blank_values=True))
    check(sdk_verify(params, alipay_public_key), "the SDK's verify_with_rsa accepts the return_url parameters")
    check(params["method"] == "alipay.trade.page.pay.return" and params["out_trade_no"] == form_trade_no, "return_url: method and order")

    # 7b. time_expire as the SDK's model sends it, against the emulator's clock.
    expiring_trade_no = "PYE_" + run
    model = AlipayTradePagePayModel()
    model.out_trade_no = expiring_trade_no
    model.total_amount = "1.00"
    model.subject = "Python SDK 限时订单"
    model.product_code = "FAST_INSTANT_TRADE_PAY"
    status, _, body = http_request(base + "/__emulator/clock")
    emulator_now = datetime.datetime.strptime(json.loads(body)["now"], "%Y-%m-%d %H:%M:%S")
    model.time_expire = (emulator_now + datetime.timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
    link = client.page_execute(AlipayTradePagePayRequest(biz_model=model), http_method="GET")
    check("time_expire" in urllib.parse.unquote_plus(link), "page_execute GET put time_expire in biz_content")
    status, _, page = http_request(link)
    check(status == 200 and "错误代码" not in page, "a link with time_expire 5 minutes out opens the cashier")
    action = page.split('<form method="post" action="', 1)[1].split('"', 1)[0]
    status, _, body = http_request(
        base + "/__emulator/clock", data=json.dumps({"advance_seconds": 600}).encode("utf-8"), method="POST"
    )
    check(status == 200 and json.loads(body)["offset_seconds"] == 600, "the emulator's clock moved 10 minutes")
    status, _, page = http_request(base + action, data=b"", follow=False)
    check(status == 200 and "错误代码 ACQ.TRADE_HAS_CLOSE" in page, "past time_expire the pay button is refused: ACQ.TRADE_HAS_CLOSE")
    expired_query = AlipayTradeQueryModel()
    expired_query.out_trade_no = expiring_trade_no
    response = AlipayTradeQueryResponse()
    response.parse_response_content(client.execute(AlipayTradeQueryRequest(biz_model=expired_query)))
    check(response.is_success() and response.trade_status == "TRADE_CLOSED", "query after time_expire: TRADE_CLOSED")

    # 7c. 智易收 (alipay.aipay.trade.precreate) with the SDK's model and request classes.
    agent_trade_no = "PYA_" + run
    agent = AlipayAipayTradePrecreateModel()
    agent.out_trade_no = agent_trade_no
    agent.amount = "12.34"
    agent.agent_name = "Python SDK 智能体"
    agent.agent_id = "py_agent_01"
    agent.request_channel_source = "mcp_0.1.0"
    agent_request = AlipayAipayTradePrecreateRequest(biz_model=agent)
    agent_request.notify_url = notify_url
    content = client.execute(agent_request)
    response = AlipayAipayTradePrecreateResponse()
    response.parse_response_content(content)
    check(response.is_success(), "alipay.aipay.trade.precreate answered 10000 and its signature verified in the SDK")
    check(response.out_trade_no == agent_trade_no, "aipay precreate: out_trade_no is ours")
    pay_url, pic_url = response.pay_url or "", response.pic_url or ""
    check(pay_url.startswith(base + "/qr/"), "aipay precreate: pay_url is the emulator's cashier: " + pay_url)
    with urllib.request.urlopen(pic_url, timeout=30) as image:
        picture = image.read()
        image_type = image.headers.get("Content-Type", "")
    check(
        image_type == "image/png" and picture.startswith(b"\x89PNG\r\n\x1a\n") and len(picture) > 200,
        "aipay precreate: pic_url is a PNG (%d bytes)" % len(picture),
    )
    status, _, page = http_request(pay_url)
    check(status == 200 and "12.34" in page and "Python SDK 智能体" in page, "pay_url opens a cashier with the amount and the agent")
    status, _, body = http_request(
        "%s/__emulator/apps/%s/trades/%s/pay" % (base, args.app_id, agent_trade_no), data=b"", method="POST"
    )
    agent_trade = json.loads(body)
    check(
        status == 200 and agent_trade["trade_status"] == "TRADE_SUCCESS" and agent_trade["method"] == "alipay.aipay.trade.precreate",
        "aipay order paid through the control API",
    )
    agent_query = AlipayTradeQueryModel()
    agent_query.out_trade_no = agent_trade_no
    response = AlipayTradeQueryResponse()
    response.parse_response_content(client.execute(AlipayTradeQueryRequest(biz_model=agent_query)))
    check(
        response.is_success() and response.trade_status == "TRADE_SUCCESS" and response.total_amount == "12.34",
        "alipay.trade.query of the aipay order: TRADE_SUCCESS, total_amount 12.34",
    )
    deadline = time.time() + 30
    agent_notes = []
    while time.time() < deadline and not agent_notes:
        with NotifyReceiver.lock:
            bodies = [b for _, b in NotifyReceiver.received]
        agent_notes = [
            f
            for f in (dict(urllib.parse.parse_qsl(b.decode("utf-8"), keep_blank_values=True)) for b in bodies)
            if f.get("out_trade_no") == agent_trade_no
        ]
        time.sleep(0.05)
    check(
        len(agent_notes) == 1 and agent_notes[0]["trade_status"] == "TRADE_SUCCESS" and sdk_verify(agent_notes[0], alipay_public_key),
        "the aipay payment notification arrived and the SDK's verify_with_rsa accepts it",
    )

    # 8. Negative controls: the checks above can fail.
    wrong = make_client(gateway, args.app_id, app_private_key, open(args.wrong_public_key_file).read().strip())
    try:
        wrong.execute(AlipayTradeQueryRequest(biz_model=query))
        fail("the SDK accepted a response under the wrong Alipay public key")
    except ResponseException as e:
        check("sign verify failed" in str(e), "with a wrong Alipay public key the SDK rejects the response")
    tampered = dict(notifications[0])
    tampered["total_amount"] = "0.01"
    try:
        verified = sdk_verify(tampered, alipay_public_key)
    except rsa.pkcs1.VerificationError:
        verified = False
    check(not verified, "a tampered notification does not verify")

    # 9. The trade bill of the day(s) this script paid and refunded on, once the day is over.
    paid = {out_trade_no: "88.80", form_trade_no: "0.01", agent_trade_no: "12.34"}
    refunded = {(out_trade_no, "R1"): "10.00"}
    views = {}
    for no in list(paid) + [expiring_trade_no]:
        status, _, body = http_request("%s/__emulator/apps/%s/trades/%s" % (base, args.app_id, no))
        check(status == 200, "control API: trade " + no)
        views[no] = json.loads(body)
    check(views[expiring_trade_no]["gmt_payment"] is None, "the expired order was never paid")
    refund_times = {
        (no, r["out_request_no"]): r["gmt_refund_pay"] for no in paid for r in views[no]["refunds"]
    }
    check(set(refund_times) == set(refunded), "control API: the one refund this script made")
    days = sorted({views[no]["gmt_payment"][:10] for no in paid} | {t[:10] for t in refund_times.values()})

    status, _, body = http_request(base + "/__emulator/clock")
    today = json.loads(body)["now"][:10]
    response = bill_query(client, "trade", today)
    check(
        not response.is_success() and response.code == "40004" and response.sub_code == "isp.bill_not_exist",
        "today's bill is isp.bill_not_exist (T+1): " + str(response.sub_msg),
    )
    status, _, body = http_request(
        base + "/__emulator/clock", data=json.dumps({"advance_seconds": 86400}).encode("utf-8"), method="POST"
    )
    check(status == 200, "the emulator's clock moved one day on")

    seller_id = None
    for day in days:
        response = bill_query(client, "trade", day)
        check(response.is_success(), "bill of %s: 10000, signature verified in the SDK" % day)
        url = response.bill_download_url or ""
        check(url.startswith(base + "/bill/"), "bill of %s: bill_download_url on the emulator" % day)
        check(response.bill_file_code is None, "bill of %s: not an empty day" % day)
        status, headers, data = http_bytes(url)
        check(status == 200 and headers.get("content-type") == "application/zip", "bill of %s: the zip downloaded at once" % day)
        status, _, _ = http_bytes(url)
        check(status == 404, "bill of %s: a second download is refused (404)" % day)
        files = read_bill_zip(data)
        stamp = day.replace("-", "")
        check(len(files) == 2, "bill of %s: two files in the zip" % day)
        (summary_name, summary), (detail_name, detail) = files
        check(summary_name.endswith("_%s_业务明细(汇总).csv" % stamp), "bill of %s: the summary first: %s" % (day, summary_name))
        check(detail_name.endswith("_%s_业务明细.csv" % stamp), "bill of %s: the detail: %s" % (day, detail_name))
        check(detail[0] == ["#支付宝业务明细查询"], "detail: #支付宝业务明细查询")
        account = detail[1][0]
        check(account.startswith("#账号：[2088") and account.endswith("]"), "detail: " + account)
        seller_id = account[len("#账号：["):-1]
        check(detail_name == "%s_%s_业务明细.csv" % (seller_id, stamp), "detail: named after the account")

        header, rows = table(detail, "支付宝交易号")
        check(len(header) == 25, "detail: 25 columns")
        col = {name: i for i, name in enumerate(header)}
        payments, refunds, fees = {}, {}, decimal.Decimal("0")
        for row in rows:
            check(len(row) == 25, "detail: a row of 25 cells")
            check(row[col["支付宝交易号"]].endswith("\t") and row[col["商户订单号"]].endswith("\t"), "detail: ids end in a tab")
            no = row[col["商户订单号"]].strip()
            trade_no = row[col["支付宝交易号"]].strip()
            check(trade_no == views[no]["trade_no"], "detail: %s's trade_no matches the control API" % no)
            amount = yuan(row[col["商家实收（元）"]])
            fee = yuan(row[col["服务费（元）"]])
            fees += fee
            check(yuan(row[col["订单金额（元）"]]) == amount, "detail: 订单金额 = 商家实收 for " + no)
            if row[col["业务类型"]] == "交易":
                payments[no] = amount
                check(fee == -fee_of(amount), "detail: %s's fee %s is -0.6%% of %s" % (no, fee, amount))
                check(row[col["完成时间"]] == views[no]["gmt_payment"], "detail: %s's 完成时间 is its payment" % no)
            else:
                check(row[col["业务类型"]] == "退款", "detail: 业务类型 交易 or 退款")
                request_no = row[col["退款批次号/请求号"]]
                check(request_no.endswith("\t"), "detail: the refund's request number ends in a tab")
                key = (no, request_no.strip())
                refunds[key] = -amount
                check(fee == fee_of(-amount), "detail: refund %s returns its share of the fee: %s" % (key, fee))
                check(row[col["完成时间"]] == refund_times[key], "detail: refund %s's 完成时间" % (key,))
        expected_payments = {no: yuan(v) for no, v in paid.items() if views[no]["gmt_payment"][:10] == day}
        expected_refunds = {k: yuan(v) for k, v in refunded.items() if refund_times[k][:10] == day}
        check(payments == expected_payments, "bill of %s: the payment rows are what was paid: %s" % (day, payments))
        check(refunds == expected_refunds, "bill of %s: the refund rows are what was refunded: %s" % (day, refunds))
        total_paid, total_refunded = sum(payments.values(), decimal.Decimal("0")), sum(refunds.values(), decimal.Decimal("0"))
        footer = [row[0] for row in detail if row and row[0].startswith("#")]
        check(
            "#交易合计：%d笔，商家实收共%s元，商家优惠共0.00元" % (len(payments), money(total_paid)) in footer,
            "detail footer: #交易合计：%d笔，商家实收共%s元" % (len(payments), money(total_paid)),
        )
        refund_total = money(-total_refunded) if total_refunded else "0.00"
        check(
            "#退款合计：%d笔，商家实收退款共%s元，商家优惠退款共0.00元" % (len(refunds), refund_total) in footer,
            "detail footer: #退款合计：%d笔，商家实收退款共%s元" % (len(refunds), refund_total),
        )

        check(summary[0] == ["#支付宝业务汇总查询"], "summary: #支付宝业务汇总查询")
        header, rows = table(summary, "门店编号")
        check(len(header) == 12, "summary: 12 columns")
        col = {name: i for i, name in enumerate(header)}
        totals = [row for row in rows if row[0] == "合计"]
        check(len(totals) == 1, "summary: one 合计 row")
        total = totals[0]
        net = total_paid - total_refunded
        check(
            int(total[col["交易订单总笔数"]]) == len(payments) and int(total[col["退款订单总笔数"]]) == len(refunds),
            "summary 合计: %d payments, %d refunds" % (len(payments), len(refunds)),
        )
        check(yuan(total[col["订单金额（元）"]]) == net and yuan(total[col["商家实收（元）"]]) == net, "summary 合计: 商家实收 %s" % net)
        check(yuan(total[col["服务费（元）"]]) == fees, "summary 合计: 服务费 %s, the rows' sum" % fees)
        check(yuan(total[col["实收净额（元）"]]) == net + fees, "summary 合计: 实收净额 %s" % (net + fees))

    # 9b. A day without business: EMPTY_DATA_WITH_BILL_FILE, and still a bill with headers.
    empty_day = (datetime.date.fromisoformat(days[0]) - datetime.timedelta(days=1)).isoformat()
    response = bill_query(client, "trade", empty_day)
    check(response.is_success() and response.bill_file_code == "EMPTY_DATA_WITH_BILL_FILE", "bill of %s: EMPTY_DATA_WITH_BILL_FILE" % empty_day)
    status, _, data = http_bytes(response.bill_download_url)
    (_, summary), (_, detail) = read_bill_zip(data)
    check(table(detail, "支付宝交易号")[1] == [], "the empty day's detail has no rows")
    check(["合计", "", "0", "0"] == table(summary, "门店编号")[1][0][:4], "the empty day's 合计 is zero")

    receiver.shutdown()
    print("python SDK interop: all checks passed")


if __name__ == "__main__":
    main()
