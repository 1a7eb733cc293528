"""The sign-in code email: rendered with the standard library, sent with SES."""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from chalicelib import aws

SUBJECT = "Your sign-in code"


def mask(address: str) -> str:
    """``a***@example.com``: enough to recognise, not enough to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def render(sender: str, recipient: str, code: str, valid_seconds: int) -> EmailMessage:
    """A multipart/alternative message with a plain-text and an HTML part."""
    minutes = max(1, round(valid_seconds / 60))
    validity = f"{minutes} minute{'s' if minutes != 1 else ''}"
    text = (
        f"Your sign-in code is: {code}\n\n"
        f"It is valid for {validity} and works once.\n\n"
        "If you did not try to sign in, you can ignore this email: nobody can sign in "
        "with this code without your password, and it expires on its own. If this keeps "
        "happening, change your password.\n"
    )
    safe_code = html.escape(code)
    body = f"""<!doctype html>
<html lang="en"><body style="font-family:system-ui,sans-serif;color:#1a1a1a;line-height:1.5">
<p>Your sign-in code is:</p>
<p style="font-size:28px;font-weight:700;letter-spacing:6px;font-family:monospace">{safe_code}</p>
<p>It is valid for {html.escape(validity)} and works once.</p>
<p style="color:#555">If you did not try to sign in, you can ignore this email: nobody can
sign in with this code without your password, and it expires on its own. If this keeps
happening, change your password.</p>
</body></html>
"""
    message = EmailMessage()
    message["Subject"] = SUBJECT
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or None)
    message.set_content(text)
    message.add_alternative(body, subtype="html")
    return message


def send(sender: str, recipient: str, message: EmailMessage) -> str:
    """Send through SES to exactly ``recipient``; returns the SES message id."""
    response = aws.client("ses").send_raw_email(
        Source=sender,
        Destinations=[recipient],
        RawMessage={"Data": message.as_bytes()},
    )
    return str(response["MessageId"])
