"""The local mailbox: what moto's SES accepted, as a page and as JSON.

It runs in the process that runs moto server and reads SES's sent messages
from moto's own backend, so what it shows is exactly what the app handed to
SES. It stands where the recipient's mail server stands: each message it
stores is handed to a receiver (:class:`devstack.local_ses.LocalSes`),
which answers as that server, or SES's mailbox simulator, would (delivered,
bounced, ...) and publishes SES's events for it.

``GET /`` lists the messages newest first (a small script reloads the page
when one arrives or changes); ``GET /api/messages`` returns them as JSON,
newest first: ``to`` (list), ``subject``, ``text``, ``html``, ``sent_at``
(ISO 8601 UTC, when the mailbox first saw it), ``delivery`` (``sent`` until
the receiver answered, then ``delivered``, ``bounced``, ``complained`` or
``rejected``), ``message_id`` (SES's MessageId; null for a message that did
not come through SES, such as an auto-reply), plus ``from`` and ``id``.

:func:`code_in` reads the sign-in code out of a message's text, for every
reader of the mail that is not a person (tests, the bench).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import json
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# How chalicelib.mail words it: "Your sign-in code is: 123456", "... enter this code: 123456".
CODE_RE = re.compile(r"code(?: is)?:\s*(\d{6,10})")


def code_in(text: str) -> str:
    """The code in a message's text; ValueError when there is none."""
    match = CODE_RE.search(text)
    if match is None:
        raise ValueError(f"no code in message text: {text!r}")
    return match.group(1)


@dataclass(frozen=True)
class Message:
    id: str
    sender: str
    to: list[str]
    subject: str
    text: str
    html: str
    sent_at: str
    message_id: str | None = None
    delivery: str = "sent"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.to,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "sent_at": self.sent_at,
            "delivery": self.delivery,
            "message_id": self.message_id,
        }


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _addresses(values: Sequence[str]) -> list[str]:
    # moto appends the To header's addresses to Destinations (SES does not): de-duplicate.
    return list(dict.fromkeys(addr for _, addr in getaddresses(list(values)) if addr))


def parse_raw(raw: str | bytes, destinations: Sequence[str], source: str) -> tuple[list[str], str, str, str]:
    """(to, subject, text, html) of a raw MIME message as SES received it."""
    if isinstance(raw, bytes):
        message = email.message_from_bytes(raw, policy=email.policy.default)
    else:
        message = email.message_from_string(raw, policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    return (
        _addresses(destinations) or _addresses([str(message.get("To", ""))]),
        str(message.get("Subject", "")),
        str(text.get_content()) if text is not None else "",
        str(rich.get_content()) if rich is not None else "",
    )


def from_moto(sent: Any, sent_at: str) -> Message:
    """A Message from one entry of moto's ``sent_messages`` (raw or simple send)."""
    if hasattr(sent, "raw_data"):
        to, subject, text, rich = parse_raw(sent.raw_data, sent.destinations or [], sent.source or "")
    else:  # SendEmail / SendTemplatedEmail: destinations is a dict of address lists
        lists = getattr(sent, "destinations", {}) or {}
        to = _addresses(
            [a for key in ("ToAddresses", "CcAddresses", "BccAddresses") for a in lists.get(key, [])]
        )
        subject = str(getattr(sent, "subject", "") or "")
        text = str(getattr(sent, "body", "") or "")
        rich = ""
    message_id = str(getattr(sent, "id", ""))
    return Message(
        id=message_id,
        sender=str(getattr(sent, "source", "") or ""),
        to=to,
        subject=subject,
        text=text,
        html=rich,
        sent_at=sent_at,
        message_id=message_id or None,
    )


def from_reply(raw: str, sent_at: str) -> Message:
    """A message the receiving side sent back (an auto-reply), stored as delivered."""
    parsed = email.message_from_string(raw, policy=email.policy.default)
    to, subject, text, rich = parse_raw(raw, [], "")
    return Message(
        id=f"reply-{secrets.token_hex(8)}",
        sender=str(parsed.get("From", "")),
        to=to,
        subject=subject,
        text=text,
        html=rich,
        sent_at=sent_at,
        delivery="delivered",
    )


def moto_sent_messages(region: str) -> Callable[[], list[Any]]:
    """Reads moto's SES backend for ``region`` in the default account."""

    def read() -> list[Any]:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ses.models import ses_backends

        return ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages

    return read


# The receiving side: a stored message -> (its delivery state, raw replies it sends back).
Receiver = Callable[[Message], tuple[str, Sequence[str]]]


class Outbox:
    """Every message SES accepted, each stamped with when it was first seen.

    :meth:`collect` is cheap and thread-safe; the emulator calls it after
    every AWS request, so ``sent_at`` is the time of the SES call and the
    console line appears at once. Each new message is then handed to
    ``receiver``, whose answer becomes its ``delivery`` (and whose replies
    are stored as messages of their own); without one a message stays
    ``sent``.
    """

    def __init__(
        self,
        source: Callable[[], list[Any]],
        on_new: Callable[[Message], None] | None = None,
        clock: Callable[[], str] = now_iso,
        receiver: Receiver | None = None,
    ) -> None:
        self._source = source
        self._on_new = on_new
        self._clock = clock
        self._receiver = receiver
        self._lock = threading.Lock()
        self._list: list[Any] | None = None
        self._seen = 0
        self._messages: list[Message] = []

    def collect(self) -> list[Message]:
        """Pick up messages sent since the last call; return the new ones (replies included)."""
        with self._lock:
            current = self._source()
            if current is not self._list or len(current) < self._seen:
                self._list, self._seen = current, 0  # the emulator was reset
            fresh = [from_moto(sent, self._clock()) for sent in current[self._seen :]]
            self._seen = len(current)
            self._messages.extend(fresh)
        for message in fresh:
            if self._on_new is not None:
                self._on_new(message)
        if self._receiver is None:
            return fresh
        replies = []
        for message in fresh:
            state, raws = self._receiver(message)
            replies += [from_reply(raw, self._clock()) for raw in raws]
            self._set_delivery(message.id, state)
        with self._lock:
            self._messages.extend(replies)
        for reply in replies:
            if self._on_new is not None:
                self._on_new(reply)
        return fresh + replies

    def _set_delivery(self, message_id: str, state: str) -> None:
        with self._lock:
            for index, message in enumerate(self._messages):
                if message.id == message_id:
                    self._messages[index] = replace(message, delivery=state)

    def messages(self) -> list[Message]:
        """Newest first."""
        self.collect()
        with self._lock:
            return list(reversed(self._messages))


def printable(value: str) -> str:
    """``value`` without control characters (for one console line)."""
    return "".join(ch if ch.isprintable() else " " for ch in value)


def console_line(message: Message) -> str:
    """Recipient and subject, never the body: the code is read in the mailbox."""
    return f"mail to {printable(', '.join(message.to))}: {printable(message.subject)!r}"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:50rem;padding:0 1rem;color:#1a1a1a}
h1{font-size:1.4rem} .empty{color:#666}
article{border:1px solid #ccc;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}
dl{display:grid;grid-template-columns:5rem 1fr;margin:0 0 .5rem;gap:.2rem .5rem} dt{color:#666}
.delivery{font-weight:600} .delivery[data-delivery=delivered]{color:#060}
.delivery[data-delivery=bounced],.delivery[data-delivery=complained],.delivery[data-delivery=rejected]{color:#a00}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.75rem;border-radius:4px;margin:0}
"""

_SCRIPT = b"""// Reload when a message arrives or its delivery state changes.
(function () {
  var shown = Array.prototype.map.call(document.querySelectorAll("article"), function (a) {
    return a.getAttribute("data-id") + " " + a.getAttribute("data-delivery");
  }).join(",");
  setInterval(function () {
    fetch("/api/messages", {cache: "no-store"})
      .then(function (r) { return r.json(); })
      .then(function (list) {
        var now = list.map(function (m) { return m.id + " " + m.delivery; }).join(",");
        if (now !== shown) { location.reload(); }
      })
      .catch(function () {});
  }, 1500);
})();
"""

_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def render_page(messages: Sequence[Message]) -> str:
    """The mailbox page; every value from a message is escaped."""
    e = html.escape
    if messages:
        items = "\n".join(
            f'<article data-id="{e(m.id)}" data-delivery="{e(m.delivery)}">'
            f"<dl><dt>To</dt><dd>{e(', '.join(m.to))}</dd>"
            f"<dt>From</dt><dd>{e(m.sender)}</dd>"
            f"<dt>Subject</dt><dd>{e(m.subject)}</dd>"
            f'<dt>Sent</dt><dd><time datetime="{e(m.sent_at)}">{e(m.sent_at)}</time></dd>'
            f'<dt>Delivery</dt><dd class="delivery" data-delivery="{e(m.delivery)}">{e(m.delivery)}</dd></dl>'
            f"<pre>{e(m.text or m.html)}</pre>"
            "</article>"
            for m in messages
        )
    else:
        items = '<p class="empty">No messages yet. Sign in on the login page and the code appears here.</p>'
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>simple-otp mailbox ({len(messages)})</title><style>{_STYLE}</style></head>"
        f"<body><h1>Local mailbox</h1>"
        f"<p>Messages sent through the local SES, newest first, each with what the receiving side made of it "
        f"(docs/local.md, Delivery events). JSON: "
        f'<a href="/api/messages">/api/messages</a></p>\n{items}\n'
        '<script src="/mailbox.js"></script></body></html>\n'
    )


class _Handler(BaseHTTPRequestHandler):
    outbox: Outbox
    server_version = "simple-otp-mailbox"

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        path = self.path.split("?", 1)[0]
        if path == "/api/messages":
            body = json.dumps([m.as_json() for m in self.outbox.messages()]).encode("utf-8")
            self._send(200, body, "application/json")
        elif path in ("/", "/index.html"):
            self._send(200, render_page(self.outbox.messages()).encode("utf-8"), "text/html; charset=utf-8")
        elif path == "/mailbox.js":
            self._send(200, _SCRIPT, "text/javascript; charset=utf-8")
        else:
            self._send(404, b'{"error": "not_found"}', "application/json")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the page polls
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # socketserver's 5 resets connections when tests poll in parallel


def make_server(outbox: Outbox, host: str, port: int) -> ThreadingHTTPServer:
    """The mailbox HTTP server, bound (not yet serving)."""
    handler = type("MailboxHandler", (_Handler,), {"outbox": outbox})
    return _Server((host, port), handler)
