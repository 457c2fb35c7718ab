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

Run by .ci/emulator-python-sdk.sh, which starts the emulator and passes its JSON line.
"""

import argparse
import datetime
import http.client
import http.server
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

import rsa
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.domain.AlipayAipayTradePrecreateModel import AlipayAipayTradePrecreateModel
from alipay.aop.api.domain.AlipayTradeFastpayRefundQueryModel import AlipayTradeFastpayRefundQueryModel
from alipay.aop.api.domain.AlipayTradePagePayModel import AlipayTradePagePayModel
from alipay.aop.api.domain.AlipayTradeQueryModel import AlipayTradeQueryModel
from alipay.aop.api.domain.AlipayTradeRefundModel import AlipayTradeRefundModel
from alipay.aop.api.exception.Exception import ResponseException
from alipay.aop.api.request.AlipayAipayTradePrecreateRequest import AlipayAipayTradePrecreateRequest
from alipay.aop.api.request.AlipayTradeFastpayRefundQueryRequest import AlipayTradeFastpayRefundQueryRequest
from alipay.aop.api.request.AlipayTradePagePayRequest import AlipayTradePagePayRequest
from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
from alipay.aop.api.request.AlipayTradeRefundRequest import AlipayTradeRefundRequest
from alipay.aop.api.response.AlipayAipayTradePrecreateResponse import AlipayAipayTradePrecreateResponse
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

    receiver.shutdown()
    print("python SDK interop: all checks passed")


if __name__ == "__main__":
    main()
