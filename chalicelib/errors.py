"""The domain's exceptions. app.py maps each to an HTTP status and JSON body."""

from __future__ import annotations

from typing import Any


class OtpError(Exception):
    """Base class: ``code`` is the JSON ``error`` value, ``fields`` go beside it."""

    code = "error"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.fields}


class InvalidRequest(OtpError):
    code = "invalid_request"


class InvalidCredentials(OtpError):
    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("The email or password is not correct.")


class InvalidCode(OtpError):
    code = "invalid_code"

    def __init__(self, attempts_remaining: int) -> None:
        super().__init__("That code is not correct.", attempts_remaining=max(attempts_remaining, 0))


class SessionClosed(OtpError):
    """The session takes no more codes: expired, used, or out of attempts.

    The JSON code stays ``session_expired`` (a contract); ``reason`` says which.
    """

    code = "session_expired"
    _TEXT = {
        "expired": "This sign-in has expired. Start again.",
        "used": "This code was already used. Start again.",
        "too_many_attempts": "Too many wrong codes. Start again.",
    }

    def __init__(self, reason: str) -> None:
        super().__init__(self._TEXT[reason], reason=reason)
        self.reason = reason


class WeakPassword(OtpError):
    """A new password the policy refuses; ``rule`` says which rule (chalicelib.passwords)."""

    code = "weak_password"

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message, rule=rule)


class SignupDisabled(OtpError):
    code = "signup_disabled"

    def __init__(self) -> None:
        super().__init__("Sign-up is turned off here: ask the administrator for an account.")


class SignupNotAllowed(OtpError):
    code = "signup_not_allowed"

    def __init__(self) -> None:
        super().__init__("Accounts cannot be created for addresses of this domain here.")


class AccountExists(OtpError):
    code = "account_exists"

    def __init__(self) -> None:
        super().__init__("An account already exists for this address: sign in, or reset the password.")


class MethodNotAllowed(OtpError):
    code = "method_not_allowed"

    def __init__(self, allowed: str) -> None:
        super().__init__(f"This path answers {allowed} only.", allowed=allowed)


class RateLimited(OtpError):
    code = "rate_limited"

    def __init__(self, retry_after: int, what: str) -> None:
        """``what`` is a sentence saying which limit was reached."""
        retry_after = max(int(retry_after), 1)
        super().__init__(f"{what} Try again in {retry_after} s.", retry_after=retry_after)
        self.retry_after = retry_after


class ServiceUnavailable(OtpError):
    code = "service_unavailable"

    def __init__(self) -> None:
        super().__init__("The service is busy or unavailable. Try again shortly.")


_UNAVAILABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalServerError",
    "TransactionConflictException",
    "Throttling",
}
# A transaction cancelled for these reasons met a busy table (throttling, or
# another transaction on the same item, as two sign-ins for one address at
# once), not a bug: 503 like the errors above.
_BUSY_REASONS = {"ThrottlingError", "TransactionConflict", "ProvisionedThroughputExceeded"}


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code") or "")


def aws_unavailable(error: Exception) -> tuple[bool, str]:
    """Whether an AWS error means "busy or unreachable, try again" (503), and its code.

    Throttling that outlasted botocore's retries, AWS's own 5xx, transport
    failures, and transactions cancelled only by throttling or a conflict.
    Anything else is a bug (500).
    """
    response = getattr(error, "response", None) or {}
    code = error_code(error)
    if code == "TransactionCanceledException":
        reasons = {r.get("Code") for r in response.get("CancellationReasons") or []} - {None, "None"}
        return bool(reasons & _BUSY_REASONS) and reasons <= _BUSY_REASONS | {"ConditionalCheckFailed"}, code
    transport = type(error).__module__.startswith(("botocore", "urllib3"))
    return code in _UNAVAILABLE or (transport and not code), code
