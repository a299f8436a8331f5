"""Local stand-ins for the alert providers, checking the request shapes they document.

One HTTP server answers Slack and Teams incoming webhooks, the PagerDuty
Events API v2 and Twilio's Messages resource; an aiosmtpd server takes mail.
A request of the wrong shape is answered 400 (as the provider would) and kept
in ``rejected``, so a test sees it. ``script(path_prefix, [(status, headers), ...])``
makes the next requests on a path fail before it answers normally again.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller

SLACK_BLOCKS = {"header", "section", "actions", "context", "divider"}
PD_SEVERITIES = {"critical", "error", "warning", "info"}
TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "test-token"


@dataclass
class Received:
    at: float
    path: str
    body: Any


@dataclass
class Receivers:
    server: ThreadingHTTPServer
    accepted: list[Received] = field(default_factory=list)
    attempts: list[Received] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    scripts: dict[str, deque[tuple[int, dict[str, str]]]] = field(default_factory=lambda: defaultdict(deque))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def script(self, prefix: str, answers: list[tuple[int, dict[str, str]]]) -> None:
        with self.lock:
            self.scripts[prefix].extend(answers)

    def hold(self, prefix: str, status: int = 500) -> None:
        """Answer ``status`` on this path until :meth:`release`."""
        with self.lock:
            self.scripts[prefix] = deque([(status, {"__hold__": "1"})])

    def release(self, prefix: str) -> None:
        with self.lock:
            self.scripts.pop(prefix, None)

    def on(self, prefix: str) -> list[Received]:
        with self.lock:
            return [r for r in self.accepted if r.path.startswith(prefix)]

    def attempts_on(self, prefix: str) -> list[Received]:
        with self.lock:
            return [r for r in self.attempts if r.path.startswith(prefix)]


def _check_slack(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
        return "invalid_payload: text is required"
    for block in body.get("blocks", []):
        if block.get("type") not in SLACK_BLOCKS:
            return f"invalid_blocks: {block.get('type')}"
        if block["type"] == "header" and block["text"].get("type") != "plain_text":
            return "invalid_blocks: header text must be plain_text"
        if block["type"] == "section" and "text" not in block and "fields" not in block:
            return "invalid_blocks: section needs text or fields"
    return None


def _check_teams(body: Any) -> str | None:
    if not isinstance(body, dict) or body.get("type") != "message":
        return "type must be message"
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return "exactly one attachment"
    card = attachments[0]
    if card.get("contentType") != "application/vnd.microsoft.card.adaptive":
        return "contentType must be the adaptive card type"
    content = card.get("content", {})
    if content.get("type") != "AdaptiveCard" or not content.get("version") or not content.get("body"):
        return "content must be an AdaptiveCard with a version and a body"
    return None


def _check_pagerduty(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Event object is invalid"
    if not re.fullmatch(r"[A-Za-z0-9]{32}", str(body.get("routing_key", ""))):
        return "routing_key is invalid"
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        return "event_action is invalid"
    if action != "trigger":
        return None if body.get("dedup_key") else "dedup_key is required"
    payload = body.get("payload") or {}
    if not payload.get("summary") or len(payload["summary"]) > 1024 or not payload.get("source"):
        return "payload.summary and payload.source are required"
    if payload.get("severity") not in PD_SEVERITIES:
        return "payload.severity is invalid"
    return None


class _Handler(BaseHTTPRequestHandler):
    receivers: Receivers

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            if not name.startswith("__"):
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        rec = self.receivers
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path = self.path
        now = time.time()
        if path.startswith("/2010-04-01/"):
            body: Any = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                self._answer(400, b"invalid_payload", "text/plain")
                return
        with rec.lock:
            rec.attempts.append(Received(now, path, body))
            scripted = None
            for prefix, answers in rec.scripts.items():
                if path.startswith(prefix) and answers:
                    scripted = answers[0] if answers[0][1].get("__hold__") else answers.popleft()
                    break
        if scripted is not None:
            status, headers = scripted
            self._answer(status, json.dumps({"status": "scripted failure"}).encode(), "application/json", headers)
            return
        if path.startswith("/slack/"):
            problem, ok = _check_slack(body), (200, b"ok", "text/plain")
        elif path.startswith("/teams/"):
            problem, ok = _check_teams(body), (202, b"", "text/plain")
        elif path == "/v2/enqueue":
            problem = _check_pagerduty(body)
            answer = {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")}
            ok = (202, json.dumps(answer).encode(), "application/json")
        elif path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json":
            problem = self._check_twilio(body)
            message = {
                "sid": "SM" + "1" * 32,
                "account_sid": TWILIO_SID,
                "to": body.get("To"),
                "from": body.get("From"),
                "body": body.get("Body"),
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "date_created": "Fri, 27 Nov 2026 10:00:00 +0000",
                "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/SM{'1' * 32}.json",
            }
            ok = (201, json.dumps(message).encode(), "application/json")
        else:
            self._answer(404, b"no_service", "text/plain")
            return
        if problem is not None:
            with rec.lock:
                rec.rejected.append((path, problem))
            self._answer(400, problem.encode(), "text/plain")
            return
        with rec.lock:
            rec.accepted.append(Received(now, path, body))
        self._answer(*ok)

    def _check_twilio(self, form: dict[str, str]) -> str | None:
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return "authenticate: wrong account SID or token"
        if not re.fullmatch(r"\+[1-9][0-9]{6,14}", form.get("To", "")):
            return "21211: invalid To number"
        if not form.get("From") or not form.get("Body"):
            return "21602: Message body and From are required"
        return None


def start_http() -> Receivers:
    handler = type("Handler", (_Handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    receivers = Receivers(server)
    handler.receivers = receivers
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receivers


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[float, str, Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        for recipient in envelope.rcpt_tos:
            self.messages.append((time.time(), recipient, message))
        return "250 Message accepted for delivery"


def start_smtp() -> tuple[Controller, _Mailbox]:
    mailbox = _Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, mailbox
