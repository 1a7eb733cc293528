"""The sign-in code email: rendered with the standard library, sent with SES."""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from chalicelib import aws
from chalicelib.errors import error_code

SUBJECT = "Your sign-in code"


@dataclass(frozen=True)
class Kind:
    """One kind of mail: its subject, what it says around the code, and what to do if unasked."""

    subject: str
    lead: str  # the sentence before the code (or the whole message, for a mail without one)
    after: str  # what the code does, or what to do next
    unasked: str  # what to do if the person did not ask for it
    has_code: bool = True


KINDS: dict[str, Kind] = {
    "signin": Kind(
        SUBJECT,
        "Your sign-in code is:",
        "It is valid for {validity} and works once.",
        "If you did not try to sign in, you can ignore this email: nobody can sign in with this code "
        "without your password, and it expires on its own. If this keeps happening, change your password.",
    ),
    "signup": Kind(
        "Confirm your email address",
        "To finish creating your account, enter this code:",
        "It is valid for {validity} and works once.",
        "If you did not try to create an account, you can ignore this email: no account is made "
        "without this code, and it expires on its own.",
    ),
    "signup-exists": Kind(
        "Confirm your email address",
        "Someone tried to create an account with this address, but you already have one.",
        "To get in, sign in with your password on the sign-in page. If you forgot it, choose "
        '"Forgot your password?" there to set a new one.',
        "If this was not you, you can ignore this email: your account has not changed.",
        has_code=False,
    ),
    "reset": Kind(
        "Reset your password",
        "To choose a new password, enter this code:",
        "It is valid for {validity} and works once.",
        "If you did not ask to reset your password, you can ignore this email: your password stays "
        "as it is unless this code is entered, and it expires on its own.",
    ),
    "reset-unknown": Kind(
        "Reset your password",
        "Someone asked to reset the password of an account with this address, but there is no "
        "account you can sign in to with it.",
        "If it was you, you may have signed up with another address: try the reset with that one.",
        "If this was not you, you can ignore this email: nothing was changed.",
        has_code=False,
    ),
    "password-changed": Kind(
        "Your password was changed",
        "The password of your account was just changed.",
        "Every other sign-in was ended, and devices that were remembered must sign in again.",
        'If you did not change it, reset your password at once with "Forgot your password?" '
        "on the sign-in page, and tell the administrator of this service.",
        has_code=False,
    ),
}


def mask(address: str) -> str:
    """``a***@example.com``: enough to recognise, not enough to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def render(
    sender: str, recipient: str, code: str | None, valid_seconds: int, kind: str = "signin"
) -> EmailMessage:
    """A multipart/alternative message with a plain-text and an HTML part."""
    what = KINDS[kind]
    minutes = max(1, round(valid_seconds / 60))
    validity = f"{minutes} minute{'s' if minutes != 1 else ''}"
    after = what.after.format(validity=validity)
    if what.has_code and code is not None:
        text = f"{what.lead} {code}\n\n{after}\n\n{what.unasked}\n"
        code_html = (
            '<p style="font-size:28px;font-weight:700;letter-spacing:6px;font-family:monospace">'
            f"{html.escape(code)}</p>\n"
        )
    else:
        text = f"{what.lead}\n\n{after}\n\n{what.unasked}\n"
        code_html = ""
    body = f"""<!doctype html>
<html lang="en"><body style="font-family:system-ui,sans-serif;color:#1a1a1a;line-height:1.5">
<p>{html.escape(what.lead)}</p>
{code_html}<p>{html.escape(after)}</p>
<p style="color:#555">{html.escape(what.unasked)}</p>
</body></html>
"""
    message = EmailMessage()
    message["Subject"] = what.subject
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


def send(
    sender: str,
    recipient: str,
    message: EmailMessage,
    configuration_set: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Send through SES to exactly ``recipient``; returns the SES message id.

    With ``configuration_set`` SES publishes the message's events (sent,
    delivered, bounced, ...), each carrying ``tags``.

    One SendRawEmail per attempt (the client itself never retries, see
    ``aws.ATTEMPTS``); only throttling, which surely sent nothing, is tried
    again, up to :data:`SEND_ATTEMPTS` times with a short backoff.
    """
    from botocore.exceptions import ClientError

    request: dict[str, Any] = {
        "Source": sender,
        "Destinations": [recipient],
        "RawMessage": {"Data": message.as_bytes()},
    }
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    if tags:
        request["Tags"] = [{"Name": name, "Value": value} for name, value in tags.items()]
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            response = aws.client("ses").send_raw_email(**request)
            return str(response["MessageId"])
        except ClientError as error:
            if error_code(error) not in THROTTLED or attempt == SEND_ATTEMPTS:
                raise
            sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")
