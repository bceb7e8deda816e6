#!/usr/bin/env python3
"""Creates an order on the payment callback service, queries it and prints it as JSON (standard library only).

    BASE_URL=http://localhost:3000 API_KEY=... [ORDER_NO=...] [AMOUNT=9.99] [NOTIFY_URL=...] python3 examples/python/client.py

Exits non-zero with a message on standard error when anything fails. See examples/README.md.
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

BASE_URL = (os.environ.get("BASE_URL") or "http://localhost:3000").rstrip("/")
API_KEY = os.environ.get("API_KEY") or ""


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would send the API key to wherever it points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


OPENER = urllib.request.build_opener(NoRedirects)


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def call(method, path, payload=None):
    """One API call; returns (HTTP status, the envelope's data) or exits with the service's code and message."""
    headers = {"X-API-Key": API_KEY, "Accept": "application/json"}
    data = None
    if payload is not None:
        data = json.dumps(payload).encode("utf-8")
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(BASE_URL + path, data=data, headers=headers, method=method)
    try:
        with OPENER.open(request, timeout=15) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as err:  # 3xx, 4xx, 5xx: the body still says why
        status, text = err.code, err.read()
    except (urllib.error.URLError, OSError) as err:
        fail(f"{method} {BASE_URL}{path}: {getattr(err, 'reason', err)}")
    try:
        envelope = json.loads(text.decode("utf-8"))
    except ValueError:
        fail(f"{method} {path}: HTTP {status} without a JSON body: {text[:200]!r}")
    if not 200 <= status < 300 or not isinstance(envelope, dict) or envelope.get("success") is not True:
        code = envelope.get("code") if isinstance(envelope, dict) else None
        message = envelope.get("message") if isinstance(envelope, dict) else None
        fail(f"{method} {path}: HTTP {status} {code}: {message}")
    return status, envelope.get("data")


def main():
    if not API_KEY:
        fail("API_KEY is not set (an API key of the service: API_KEYS, or npm run apikey -- create <name>)")
    order = {"amount": os.environ.get("AMOUNT") or "9.99", "subject": "Example order"}
    if os.environ.get("ORDER_NO"):
        order["order_no"] = os.environ["ORDER_NO"]
    if os.environ.get("NOTIFY_URL"):
        order["notify_url"] = os.environ["NOTIFY_URL"]
    status, created = call("POST", "/api/orders", order)
    order_no = created["order_no"]
    print(f"{'created' if status == 201 else 'found existing'} order {order_no}", file=sys.stderr)
    _, queried = call("GET", "/api/orders/" + urllib.parse.quote(order_no, safe=""))
    print(json.dumps(queried, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
