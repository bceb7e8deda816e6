#!/usr/bin/env python3
"""Merchant notification receiver for the payment callback service (Python 3 standard library only).

    PORT=4001 NOTIFY_SECRET=whsec_... python3 examples/python/receiver.py

Answers 200 "success" to a notification that passes every check below, 4xx to anything else.
See examples/README.md for the algorithm and the environment variables.
"""
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import fcntl  # Unix: an exclusive lock on the seen-events file, across threads and processes
except ImportError:  # Windows: the in-process lock below still serialises this server's threads
    fcntl = None

TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024
SIGN_TYPES = ("MD5", "HMAC-SHA256")
EVENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


class JsonNumber(str):
    """A JSON number, kept as the exact text received (so it signs as the service wrote it)."""


class Rejected(Exception):
    """A request that is not a valid notification: answered with `status` and logged with `reason`."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status


def load_settings():
    secret = os.environ.get("NOTIFY_SECRET", "")
    if not secret.startswith("whsec_"):
        sys.exit("NOTIFY_SECRET must be set to the service's NOTIFY_SECRET (whsec_<base64>)")
    try:
        webhook_key = base64.b64decode(secret[len("whsec_"):], validate=True)
    except binascii.Error:
        sys.exit("NOTIFY_SECRET is not whsec_ followed by standard base64")
    if not webhook_key:
        sys.exit("NOTIFY_SECRET has no key after whsec_")
    pinned = os.environ.get("NOTIFY_SIGN_TYPE") or None
    if pinned is not None and pinned not in SIGN_TYPES:
        sys.exit("NOTIFY_SIGN_TYPE must be MD5 or HMAC-SHA256 when set")
    seen_file = os.environ.get("SEEN_EVENTS_FILE") or os.path.join(tempfile.gettempdir(), "payment-notify-seen-events.txt")
    return {"secret": secret, "webhook_key": webhook_key, "pinned": pinned, "seen_file": seen_file}


SETTINGS = load_settings()
SEEN_LOCK = threading.Lock()


def log(line):
    print(line, file=sys.stderr, flush=True)


def check_window(what, seconds):
    if abs(time.time() - seconds) > TOLERANCE_SECONDS:
        raise Rejected(401, f"{what} is more than {TOLERANCE_SECONDS} s away from this server's clock")


def verify_webhook_signature(headers, raw):
    """Standard Webhooks: v1,base64(hmac_sha256(base64decode(secret without whsec_), "id.timestamp.body"))."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise Rejected(400, "missing webhook-id, webhook-timestamp or webhook-signature header")
    if not UNIX_SECONDS.fullmatch(timestamp):
        raise Rejected(400, "webhook-timestamp is not unix seconds")
    # http.server decodes header values as latin-1: encoding them back gives the bytes received
    signed = msg_id.encode("latin-1") + b"." + timestamp.encode("latin-1") + b"." + raw
    expected = base64.b64encode(hmac.new(SETTINGS["webhook_key"], signed, hashlib.sha256).digest())
    # The header may carry several space-separated signatures (key rotation): any v1 match counts.
    matched = False
    for candidate in signatures.split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode("latin-1"), expected):
            matched = True
    if not matched:
        raise Rejected(401, "webhook-signature does not match")
    check_window("webhook-timestamp", int(timestamp))
    return msg_id


def refuse_constant(name):
    raise ValueError(f"{name} is not JSON the service writes")


def parse_body(raw):
    """The body as a dict whose numbers keep the exact text received (JsonNumber)."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=refuse_constant)
    except ValueError as err:  # also UnicodeDecodeError
        raise Rejected(400, f"body is not JSON: {err}")
    if not isinstance(body, dict):
        raise Rejected(400, "body is not a JSON object")
    return body


def field_text(name, value):
    """A field as the service signed it: strings as they are, numbers as written, true/false."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):  # numbers too: a JsonNumber is the JSON text received
        return value
    raise Rejected(400, f"field {name} is an object or array: not something the service signs")


def expected_sign(body, sign_type):
    """A5/A7: every field but sign that is not null or empty, sorted by name in byte order, k=v&...&key=<secret>."""
    pairs = []
    for name in sorted(body, key=lambda k: k.encode("utf-8", "surrogatepass")):
        value = body[name]
        if name == "sign" or value is None or value == "":
            continue
        pairs.append(f"{name}={field_text(name, value)}")
    secret = SETTINGS["secret"]
    try:
        text = ("&".join(pairs) + "&key=" + secret).encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected(400, "body holds a lone UTF-16 surrogate")
    if sign_type == "MD5":
        digest = hashlib.md5(text).hexdigest()
    else:
        digest = hmac.new(secret.encode("utf-8"), text, hashlib.sha256).hexdigest()
    return digest.upper()


def verify_sign(body):
    sign_type = body.get("sign_type") or "MD5"
    if sign_type not in SIGN_TYPES:
        raise Rejected(400, "sign_type is not MD5 or HMAC-SHA256")
    if SETTINGS["pinned"] and sign_type != SETTINGS["pinned"]:
        raise Rejected(401, f"sign_type {sign_type} is not the configured {SETTINGS['pinned']}")
    presented = body.get("sign")
    if not isinstance(presented, str) or not presented:
        raise Rejected(401, "sign is missing")
    if not hmac.compare_digest(presented.upper().encode("utf-8"), expected_sign(body, sign_type).encode("utf-8")):
        raise Rejected(401, "sign does not match")


def process_once(body):
    """Processes the event unless its event_id was processed before; True when it ran now."""
    event_id = body["event_id"]
    with SEEN_LOCK, open(SETTINGS["seen_file"], "a+", encoding="utf-8") as seen:
        if fcntl:
            fcntl.flock(seen, fcntl.LOCK_EX)  # released when the file is closed
        seen.seek(0)
        if any(line.rstrip("\n") == event_id for line in seen):
            return False
        # Your business logic goes here: look the order up, check amount and currency, mark it paid.
        log(f"processed {body.get('type')} order_no={body.get('order_no')} status={body.get('status')} "
            f"amount={body.get('amount')} {body.get('currency')} event_id={event_id}")
        seen.write(event_id + "\n")
        seen.flush()
        os.fsync(seen.fileno())
        return True


def handle_notification(headers, raw):
    webhook_id = verify_webhook_signature(headers, raw)
    body = parse_body(raw)
    event_id = body.get("event_id")
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        raise Rejected(400, "event_id is missing or malformed")
    if webhook_id != event_id:
        raise Rejected(400, "webhook-id is not the body's event_id")
    verify_sign(body)
    timestamp = body.get("timestamp")
    if not isinstance(timestamp, JsonNumber) or not UNIX_SECONDS.fullmatch(timestamp):
        raise Rejected(400, "timestamp is missing or not unix seconds")
    check_window("timestamp", int(timestamp))
    if not process_once(body):
        log(f"duplicate event_id={event_id}: already processed, answering success again")


class Handler(BaseHTTPRequestHandler):
    server_version = "merchant-receiver"
    sys_version = ""

    def do_POST(self):
        try:
            length = self.headers.get("content-length")
            if length is None or not length.isascii() or not length.isdigit():
                raise Rejected(411, "Content-Length is required")
            if int(length) > MAX_BODY_BYTES:
                raise Rejected(413, "body is too large")
            handle_notification(self.headers, self.rfile.read(int(length)))
        except Rejected as err:
            log(f"rejected: {err}")
            self.answer(err.status, f"fail: {err}")
            return
        except Exception as err:  # noqa: BLE001 - a failure of ours: 500, so the service retries later
            log(f"error: {err!r}")
            self.answer(500, "fail: internal error")
            return
        self.answer(200, "success")

    def __getattr__(self, name):
        # Every other method (GET, PUT, ...) is answered 405 rather than http.server's 501.
        if name.startswith("do_"):
            return self.not_allowed
        raise AttributeError(name)

    def not_allowed(self):
        self.answer(405, "fail: POST only", {"Allow": "POST"})

    def answer(self, status, text, extra=None):
        payload = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass  # one line per notification is logged above instead of an access log


def main():
    host = os.environ.get("HOST") or "127.0.0.1"
    port = int(os.environ.get("PORT") or "4001")
    server = ThreadingHTTPServer((host, port), Handler)
    log(f"notification receiver listening on http://{host}:{port} (seen events: {SETTINGS['seen_file']})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
