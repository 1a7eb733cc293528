"""Hostile request bodies, shared by the in-process and the HTTP injection tests.

Each entry: (label, route, raw body, content type). Every one must be
answered 4xx with the JSON error shape, and none may mail anyone.
"""

from __future__ import annotations

import json

from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD

JSON = "application/json"
MB = 1024 * 1024

HOSTILE_EMAILS = {
    "CRLF header injection": "demo@example.com\r\nBcc: evil@example.net",
    "LF header injection": "demo@example.com\nTo: evil@example.net",
    "trailing CRLF": "demo@example.com\r\n",
    "NUL then another address": "demo@example.com\x00evil@example.net",
    "trailing NUL": "demo@example.com\x00",
    "tab": "demo@example.com\t",
    "unicode line separator": "demo@example.com\u2028evil@example.net",
    "zero-width space": "demo@example.com\u200b",
    "65-character local part": "a" * 65 + "@example.com",
    "1000-character local part": "a" * 1000 + "@example.com",
    "255-character address": "demo@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com",
    "cyrillic a in domain": "demo@ex\u0430mple.com",
    "cyrillic e in local part": "d\u0435mo@example.com",
    "fullwidth letters": "\uff44\uff45\uff4d\uff4f@example.com",
    "punycode-looking unicode domain": "demo@\u0435xample.com",
    "comma list": "demo@example.com,evil@example.net",
    "semicolon list": "demo@example.com;evil@example.net",
    "space list": "demo@example.com evil@example.net",
    "display name": "Demo <demo@example.com>",
    "display name of another": "evil@example.net <demo@example.com>",
    "quoted local part": '"demo@example.com"@evil.net',
    "two at signs": "demo@example.com@evil.net",
    "address literal": "demo@[127.0.0.1]",
    "no dot in domain": "demo@localhost",
    "trailing dot": "demo@example.com.",
    "comment": "demo(comment)@example.com",
    "encoded word": "=?utf-8?q?demo?=@example.com",
    "empty": "",
    "spaces only": "   ",
    "at sign only": "@",
    "numeric top-level domain": "demo@127.0.0.1",
}

WRONG_TYPES = {
    "email is a number": {"email": 42, "password": DEMO_PASSWORD},
    "email is a list of two": {"email": [DEMO_EMAIL, "evil@example.net"], "password": DEMO_PASSWORD},
    "email is an object": {"email": {"address": DEMO_EMAIL}, "password": DEMO_PASSWORD},
    "email is true": {"email": True, "password": DEMO_PASSWORD},
    "email is null": {"email": None, "password": DEMO_PASSWORD},
    "password is a number": {"email": DEMO_EMAIL, "password": 12345678},
    "password is a list": {"email": DEMO_EMAIL, "password": [DEMO_PASSWORD]},
    "password is an object": {"email": DEMO_EMAIL, "password": {"$ne": ""}},
    "password is null": {"email": DEMO_EMAIL, "password": None},
    "password is false": {"email": DEMO_EMAIL, "password": False},
    "empty password": {"email": DEMO_EMAIL, "password": ""},
    "1025-character password": {"email": DEMO_EMAIL, "password": "x" * 1025},
    "fields missing": {},
    "only unknown fields": {"user": DEMO_EMAIL, "pass": DEMO_PASSWORD},
}


def _nested_lists(depth: int) -> str:
    return '{"email": ' + "[" * depth + "]" * depth + ', "password": "x"}'


def _nested_objects(depth: int) -> str:
    return '{"email": ' + '{"a": ' * depth + "1" + "}" * depth + ', "password": "x"}'


RAW_BODIES = {
    # sizes
    "1 MB email": json.dumps({"email": "a" * MB + "@example.com", "password": DEMO_PASSWORD}),
    "1 MB password": json.dumps({"email": DEMO_EMAIL, "password": "p" * MB}),
    "1 MB of whitespace around JSON": " " * MB + json.dumps({"email": DEMO_EMAIL, "password": DEMO_PASSWORD}),
    "16 KiB + 1 body": json.dumps({"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "pad": "x" * 16 * 1024}),
    # nesting
    "lists nested 5000 deep (10 KB)": _nested_lists(5000),
    "lists nested 100000 deep (200 KB)": _nested_lists(100_000),
    "objects nested 1500 deep": _nested_objects(1500),
    # duplicate keys: which one wins differs between parsers, so refuse both
    "duplicate email, last is the victim": (
        '{"email": "evil@example.net", "email": "demo@example.com", "password": "demo-password"}'
    ),
    "duplicate password": '{"email": "demo@example.com", "password": "x", "password": "demo-password"}',
    # not JSON, or not an object
    "empty body": "",
    "JSON null": "null",
    "JSON list": "[]",
    "JSON string": '"demo@example.com"',
    "JSON number": "123",
    "JSON true": "true",
    "single-quoted pseudo-JSON": "{'email': 'demo@example.com', 'password': 'demo-password'}",
    "truncated JSON": '{"email": "demo@example.com", "password": ',
    "trailing garbage": '{"email": "demo@example.com", "password": "demo-password"}x',
    "two objects": '{"email": "demo@example.com"}{"password": "demo-password"}',
    "NaN": '{"email": NaN, "password": "x"}',
    "Infinity": '{"email": "demo@example.com", "password": Infinity}',
    "1e400": '{"email": 1e400, "password": "x"}',
    "5000-digit integer": '{"email": ' + "1" * 5000 + ', "password": "x"}',
    "byte order mark": "\ufeff" + json.dumps({"email": DEMO_EMAIL, "password": DEMO_PASSWORD}),
    "lone surrogate escape": '{"email": "demo@example.com\\ud800", "password": "x"}',
    "escaped NUL": '{"email": "demo@example.com\\u0000", "password": "x"}',
    "form-encoded as JSON": "email=demo%40example.com&password=demo-password",
    "XML": "<login><email>demo@example.com</email><password>demo-password</password></login>",
}

BINARY_BODIES = {
    "invalid UTF-8": b'{"email": "demo@example.com\xff", "password": "demo-password"}',
    "UTF-16 JSON": json.dumps({"email": DEMO_EMAIL, "password": DEMO_PASSWORD}).encode("utf-16"),
    "random bytes": bytes(range(256)) * 4,
    "NUL bytes": b"\x00" * 64,
}

GOOD_BODY = json.dumps({"email": DEMO_EMAIL, "password": DEMO_PASSWORD})

CONTENT_TYPES: dict[str, str | None] = {
    "text/plain": "text/plain",
    "form": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data; boundary=x",
    "xml": "application/xml",
    "text/json": "text/json",
    "json-patch": "application/json-patch+json",
    "jsonx": "application/jsonx",
    "json with charset utf-16": "application/json; charset=utf-16",  # body below is UTF-16
    "empty": "",
    "missing": None,
    "CRLF in header value": "application/json\r\nX-Injected: 1",
}

VERIFY_FIELDS = {
    "session id path traversal": {"session_id": "../../etc/passwd", "code": "123456"},
    "session id with key prefix": {"session_id": "session#abc", "code": "123456"},
    "session id with NUL": {"session_id": "abc\x00def", "code": "123456"},
    "session id 1 MB": {"session_id": "A" * MB, "code": "123456"},
    "session id unicode": {"session_id": "\u0430bc", "code": "123456"},
    "session id is a list": {"session_id": ["abc"], "code": "123456"},
    "session id is a number": {"session_id": 12345, "code": "123456"},
    "session id is an object": {"session_id": {"$gt": ""}, "code": "123456"},
    "code with NUL": {"session_id": "abc", "code": "12345\x00"},
    "fullwidth digits": {"session_id": "abc", "code": "\uff11\uff12\uff13\uff14\uff15\uff16"},
    "arabic-indic digits": {"session_id": "abc", "code": "\u0661\u0662\u0663\u0664\u0665\u0666"},
    "code with space": {"session_id": "abc", "code": "123456 "},
    "code with CRLF": {"session_id": "abc", "code": "123456\r\n"},
    "signed code": {"session_id": "abc", "code": "+12345"},
    "exponent code": {"session_id": "abc", "code": "1e5000"},
    "code is a number": {"session_id": "abc", "code": 123456},
    "code is a float": {"session_id": "abc", "code": 123456.0},
    "code is a list": {"session_id": "abc", "code": ["123456"]},
    "code is a regex-ish object": {"session_id": "abc", "code": {"$regex": ".*"}},
    "code 1 MB": {"session_id": "abc", "code": "1" * MB},
    "seven digits": {"session_id": "abc", "code": "1234567"},
}


def cases() -> list[tuple[str, str, bytes, str | None]]:
    """Every hostile request: (label, route, body bytes, content type or None for none)."""
    out: list[tuple[str, str, bytes, str | None]] = []
    for label, address in HOSTILE_EMAILS.items():
        out.append(
            (
                f"email: {label}",
                "/otp",
                json.dumps({"email": address, "password": DEMO_PASSWORD}).encode(),
                JSON,
            )
        )
    for label, body in WRONG_TYPES.items():
        out.append((f"types: {label}", "/otp", json.dumps(body).encode(), JSON))
    for label, raw in RAW_BODIES.items():
        out.append((f"body: {label}", "/otp", raw.encode("utf-8", "surrogatepass"), JSON))
    for label, raw_bytes in BINARY_BODIES.items():
        out.append((f"body: {label}", "/otp", raw_bytes, JSON))
    for label, content_type in CONTENT_TYPES.items():
        body = GOOD_BODY.encode("utf-16") if "utf-16" in (content_type or "") else GOOD_BODY.encode()
        out.append((f"content type: {label}", "/otp", body, content_type))
    for route in ("/otp/verify", "/otp/resend"):
        for label, raw in RAW_BODIES.items():
            if label.startswith(("1 MB", "lists", "objects", "duplicate", "JSON", "NaN", "byte")):
                out.append((f"{route} body: {label}", route, raw.encode("utf-8", "surrogatepass"), JSON))
        for label, content_type in CONTENT_TYPES.items():
            out.append(
                (
                    f"{route} content type: {label}",
                    route,
                    b'{"session_id": "abc", "code": "123456"}',
                    content_type,
                )
            )
    for label, body in VERIFY_FIELDS.items():
        out.append((f"/otp/verify: {label}", "/otp/verify", json.dumps(body).encode(), JSON))
        if "session id" in label:
            out.append((f"/otp/resend: {label}", "/otp/resend", json.dumps(body).encode(), JSON))
    return out
