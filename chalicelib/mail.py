"""The sign-in code email: rendered with the standard library, sent with SES."""

from __future__ import annotations

import html
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from chalicelib import aws
from chalicelib.errors import error_code

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


# SES's answers that say the message was surely not accepted and may be sent
# again later: throttling (retried here a few times) and its own 5xx.
THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException"}
TRANSIENT = THROTTLED | {"ServiceUnavailable", "InternalFailure", "InternalServerError"}
SEND_ATTEMPTS = 3
sleep = time.sleep  # tests replace it


def send(sender: str, recipient: str, message: EmailMessage) -> str:
    """Send through SES to exactly ``recipient``; returns the SES message id.

    One SendRawEmail per attempt (the client itself never retries, see
    ``aws.ATTEMPTS``); only throttling, which surely sent nothing, is tried
    again, up to :data:`SEND_ATTEMPTS` times with a short backoff.
    """
    from botocore.exceptions import ClientError

    data = message.as_bytes()
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            response = aws.client("ses").send_raw_email(
                Source=sender, Destinations=[recipient], RawMessage={"Data": data}
            )
            return str(response["MessageId"])
        except ClientError as error:
            if error_code(error) not in THROTTLED or attempt == SEND_ATTEMPTS:
                raise
            sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")
