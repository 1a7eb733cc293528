"""simple-otp: routes and the stream handler. Thin on purpose.

Each route parses the request, calls one chalicelib function and maps its
exceptions to a status code; all rules live in chalicelib.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalice import Chalice, CORSConfig, Response

from chalicelib import challenges, delivery, events, inputs, observe, selfservice, settings, tokens
from chalicelib.clock import now
from chalicelib.errors import (
    AccountExists,
    InvalidCode,
    InvalidCredentials,
    InvalidRequest,
    MethodNotAllowed,
    OtpError,
    RateLimited,
    ServiceUnavailable,
    SessionClosed,
    SignupDisabled,
    SignupNotAllowed,
    WeakPassword,
    aws_unavailable,
)

SETTINGS = settings.load()  # fails at start-up, naming the bad variable

app = Chalice(app_name="simple-otp")
app.log.setLevel(logging.INFO)
logging.getLogger("simple-otp").setLevel(logging.INFO)

CORS = CORSConfig(allow_origin=SETTINGS.allowed_origin, allow_headers=["Content-Type"], max_age=600)
ROUTE = {"methods": ["POST"], "cors": CORS, "content_types": ["*/*"]}

STATUS: dict[type[OtpError], int] = {
    InvalidRequest: 400,
    WeakPassword: 400,
    InvalidCredentials: 401,
    InvalidCode: 401,
    SignupDisabled: 403,
    SignupNotAllowed: 403,
    MethodNotAllowed: 405,
    AccountExists: 409,
    SessionClosed: 410,
    RateLimited: 429,
    ServiceUnavailable: 503,
}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=body, status_code=status, headers={"Content-Type": "application/json", **(headers or {})}
    )


def _error_response(error: Exception) -> Response:
    if isinstance(error, OtpError):
        headers = None
        if isinstance(error, RateLimited):
            headers = {"Retry-After": str(error.retry_after)}
        elif isinstance(error, MethodNotAllowed):
            headers = {"Allow": error.fields["allowed"]}
        return _json(STATUS[type(error)], error.body(), headers)
    busy, code = aws_unavailable(error)
    if busy:
        app.log.error("AWS unavailable: %s %s", type(error).__name__, code)
        return _json(503, ServiceUnavailable().body())
    app.log.error("unexpected error: %s", type(error).__name__)
    return _json(500, {"error": "internal_error", "message": "Something went wrong on our side."})


def _handle(call: Callable[[dict[str, Any]], dict[str, Any]], status: int = 200) -> Response:
    request = app.current_request
    try:
        body = inputs.parse_body(request.raw_body, request.headers.get("content-type"))
        return _json(status, call(body))
    except Exception as error:  # noqa: BLE001 - every failure becomes a JSON answer
        return _error_response(error)


def _published(call: Callable[[], dict[str, Any]], max_age: int = int(tokens.CACHE_SECONDS)) -> Response:
    """A public document: GET only, cacheable by anyone."""
    try:
        if app.current_request.method != "GET":
            raise MethodNotAllowed("GET")
        return _json(200, call(), {"Cache-Control": f"public, max-age={max_age}"})
    except Exception as error:  # noqa: BLE001 - every failure becomes a JSON answer
        return _error_response(error)


def _source_ip() -> str | None:
    return (app.current_request.context.get("identity") or {}).get("sourceIp")


def _user_agent() -> str | None:
    return app.current_request.headers.get("user-agent")


@app.route("/otp", **ROUTE)
def start_sign_in() -> Response:
    return _handle(lambda body: challenges.start(SETTINGS, body, _source_ip()))


@app.route("/otp/verify", **ROUTE)
def verify_code() -> Response:
    return _handle(lambda body: challenges.verify(SETTINGS, body, _user_agent(), _source_ip()))


@app.route("/otp/resend", **ROUTE)
def resend_code() -> Response:
    return _handle(lambda body: challenges.resend(SETTINGS, body, _source_ip()))


@app.route("/otp/status", **ROUTE)
def delivery_status() -> Response:
    return _handle(lambda body: challenges.status(SETTINGS, body))


@app.route("/signup", **ROUTE)
def sign_up() -> Response:
    return _handle(lambda body: selfservice.signup(SETTINGS, body, _source_ip()), 202)


@app.route("/signup/verify", **ROUTE)
def verify_sign_up() -> Response:
    return _handle(lambda body: selfservice.signup_verify(SETTINGS, body, _user_agent(), _source_ip()), 201)


@app.route("/password/reset", **ROUTE)
def reset_password() -> Response:
    return _handle(lambda body: selfservice.reset(SETTINGS, body, _source_ip()), 202)


@app.route("/password/reset/confirm", **ROUTE)
def confirm_password_reset() -> Response:
    return _handle(lambda body: selfservice.reset_confirm(SETTINGS, body, _source_ip()))


# Every method is routed here so that the others get the JSON error shape (405).
PUBLISHED = {"methods": ["GET", "POST", "PUT", "PATCH", "DELETE"], "content_types": ["*/*"]}


@app.route("/config", cors=CORS, **PUBLISHED)
def public_config() -> Response:
    return _published(lambda: selfservice.public_config(SETTINGS), max_age=60)


@app.route("/.well-known/jwks.json", **PUBLISHED)
def jwks() -> Response:
    return _published(lambda: tokens.jwks(SETTINGS, now()))


@app.route("/.well-known/openid-configuration", **PUBLISHED)
def openid_configuration() -> Response:
    return _published(lambda: tokens.discovery(SETTINGS))


@app.on_dynamodb_record(
    stream_arn=SETTINGS.stream_arn, batch_size=25, starting_position="TRIM_HORIZON", name="send_code"
)
def send_code(event: Any) -> None:
    delivery.on_stream(SETTINGS, [(r.event_name, r.new_image, r.old_image) for r in event])


@app.on_sns_message(topic=SETTINGS.events_topic, name="delivery_events")
def delivery_events(event: Any) -> None:
    records = event.to_dict().get("Records") or []  # SNS hands Lambda one record; take any
    events.record(SETTINGS, [record["Sns"]["Message"] for record in records])


@app.middleware("all")
def observed(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Every invocation: its request id on each log line, its metrics flushed at the end."""
    context = getattr(event, "context", None)  # a request's context, or an event's Lambda context
    request_id = context.get("requestId") if isinstance(context, dict) else None
    lambda_context = context if not isinstance(context, dict) and context else app.lambda_context
    observe.begin(request_id or getattr(lambda_context, "aws_request_id", None))
    try:
        return get_response(event)
    finally:
        observe.flush()
