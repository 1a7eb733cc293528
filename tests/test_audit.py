"""The audit trail: entries derived from the stream records, kept 90 days, listed by the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import re
from typing import Any

import pytest

from chalicelib import accounts, audit, challenges, codes, store
from devstack.environment import DEMO_EMAIL, DEMO_PASSWORD
from devstack.testenv import sent_mail

IP = "203.0.113.7"
IP_HASH = hashlib.sha256(IP.encode()).hexdigest()[:32]  # the per-IP windows' ident of this network
NEW = "new.person@example.com"
STRONG = "correct horse battery staple 42"
NEW_PASSWORD = "a different long passphrase 7"
CLIENT_EVENTS = {
    "sign-in",
    "code refused",
    "code verified",
    "code resent",
    "sign-up",
    "reset requested",
    "limit reached",
}


class Trail:
    """The app with a settable clock and client network; the stream handed to the audit by hand."""

    def __init__(self, stack: Any, cfg: Any, clock: Any, monkeypatch: Any) -> None:
        self.stack, self.cfg, self.clock = stack, cfg, clock
        self.seen: list[tuple[str, Any, Any]] = []  # every record so far, as the stream handler gets them
        self.by_handler = 0  # batches the stream handler itself handed to the audit
        real = self.record = audit.record_stream

        def record_stream(*args: Any, **kwargs: Any) -> int:
            self.by_handler += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(audit, "record_stream", record_stream)

    def flush(self) -> list[tuple[str, Any, Any]]:
        """Mail what is new and write the batch's audit entries: the stream handler does both
        (delivery.on_stream); where it does not audit, the batch is handed to the audit here."""
        handled = self.by_handler
        batch = triples(self.stack.pump())
        self.seen += batch
        if batch and self.by_handler == handled:
            self.record(self.cfg, batch)
        return batch

    def code(self, email: str = DEMO_EMAIL) -> str:
        self.flush()
        return [m for m in sent_mail() if email in m.to][-1].code

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """A request one second after the last: each entry its own time, as a person's clicks."""
        self.clock.advance(1)
        return self.stack.post(path, body)

    def sign_in(self, password: str = DEMO_PASSWORD, **extra: Any) -> Any:
        return self.post("/otp", {"email": DEMO_EMAIL, "password": password, **extra})

    def verify(self, session_id: str, code: str) -> Any:
        return self.post("/otp/verify", {"session_id": session_id, "code": code})

    def rows(self, email: str = DEMO_EMAIL) -> list[dict[str, Any]]:
        self.flush()
        return audit.listing(self.cfg, email, 90)

    def events(self, email: str = DEMO_EMAIL) -> list[tuple[str, str]]:
        return [(row["event"], row["outcome"]) for row in self.rows(email)]


def triples(records: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    """Stream records as the stream handler passes them on: (event name, new image, old image)."""
    return [(r["eventName"], r["dynamodb"].get("NewImage"), r["dynamodb"].get("OldImage")) for r in records]


def audit_items() -> list[dict[str, Any]]:
    from chalicelib import aws

    client = aws.client("dynamodb")
    items = client.scan(TableName="simple-otp-test")["Items"]
    return [store.from_ddb(item) for item in items if item["kind"]["S"] == "audit"]


def _wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


@pytest.fixture
def trail(stack, clock, monkeypatch) -> Trail:
    clock.now = float((int(clock.now) // 3600 + 1) * 3600 + 60)  # the start of a clock hour
    cfg = dataclasses.replace(
        stack.app_module.SETTINGS, signup_enabled=True, failed_sign_ins_per_email_per_hour=4
    )
    monkeypatch.setattr(stack.app_module, "SETTINGS", cfg)
    monkeypatch.setattr(stack.app_module, "_source_ip", lambda: IP)
    found = Trail(stack, cfg, clock, monkeypatch)
    found.flush()  # provisioning's own records
    return found


def _verified_ip_wired(stack: Any) -> bool:
    """Whether the app hands the verify routes the client's address (for the verify entries' network)."""
    import inspect

    return "_source_ip()" in inspect.getsource(stack.app_module.verify_code)


# ----------------------------------------------------------------- every kind


def test_every_event_kind_has_time_outcome_and_network(trail, clock):
    stack = trail.stack
    assert trail.sign_in("wrong password").status_code == 401
    first = trail.sign_in().data["session_id"]
    code = trail.code()
    assert trail.verify(first, _wrong(code)).status_code == 401
    device_token = trail.verify(first, code).data["device_token"]

    clock.advance(40)
    second = trail.sign_in(device_token=device_token).data["session_id"]
    trail.flush()
    clock.advance(40)
    assert trail.post("/otp/resend", {"session_id": second}).status_code == 200
    assert trail.verify(second, trail.code()).status_code == 200  # the device's token renewed

    for _ in range(3):
        assert trail.sign_in("wrong password").status_code == 401
    assert trail.sign_in("wrong password").status_code == 429  # nothing written: the cap was noted

    clock.advance(40)
    reset = trail.post("/password/reset", {"email": DEMO_EMAIL}).data["session_id"]
    body = {"session_id": reset, "code": trail.code(), "new_password": NEW_PASSWORD}
    assert stack.post("/password/reset/confirm", body).status_code == 200

    clock.advance(40)
    third = trail.sign_in(NEW_PASSWORD).data["session_id"]
    assert trail.verify(third, trail.code()).status_code == 200
    accounts.revoke_devices(trail.cfg, DEMO_EMAIL, None)
    accounts.set_disabled(trail.cfg, DEMO_EMAIL, True)
    accounts.set_disabled(trail.cfg, DEMO_EMAIL, False)
    store.suppress(trail.cfg.table_name, DEMO_EMAIL, "bounce", "General", int(clock.now), "message-1")
    trail.flush()
    store.unsuppress(trail.cfg.table_name, DEMO_EMAIL)

    events = trail.events()
    assert events == [
        ("sign-in", "refused"),
        ("sign-in", "code sent"),
        ("code refused", "wrong code"),
        ("code verified", "ok"),
        ("device added", "ok"),
        ("sign-in", "code sent"),
        ("code resent", "code sent"),
        ("code verified", "ok"),
        ("sign-in", "refused"),
        ("sign-in", "refused"),
        ("sign-in", "refused"),
        ("limit reached", "limited"),
        ("reset requested", "code sent"),
        ("code verified", "ok"),
        ("password changed", "ok"),
        ("device revoked", "ok"),
        ("password reset", "ok"),
        ("sign-in", "code sent"),
        ("code verified", "ok"),
        ("device added", "ok"),
        ("device revoked", "ok"),
        ("account disabled", "ok"),
        ("account enabled", "ok"),
        ("address suppressed", "bounce"),
        ("address unsuppressed", "ok"),
    ], events
    rows = trail.rows()
    assert all(rows[i]["at"] <= rows[i + 1]["at"] for i in range(len(rows) - 1)), "oldest first"
    start = (int(clock.now) // 3600) * 3600
    assert all(start <= row["at"] <= clock.now for row in rows), "each entry has the time it happened"
    verify_ip = IP_HASH if _verified_ip_wired(stack) else None
    for row in rows:
        if row["event"] in CLIENT_EVENTS:
            wanted = (
                verify_ip if row["event"].startswith("code ") and row["event"] != "code resent" else IP_HASH
            )
            if wanted is not None:
                assert row["ip"] == wanted, row
        else:
            assert row["ip"] == "", row  # an operator's change, or one the account's item shows
    details = {(row["event"], row["detail"]) for row in rows}
    assert ("sign-in", "wrong password") in details
    assert any(e == "sign-in" and d.startswith("trusted device ") for e, d in details)
    assert ("code verified", f"reset, session {codes.session_hash(reset)[:16]}") in details
    revoked = sorted(d.split(": ", 1)[1] for e, d in details if e == "device revoked")
    assert revoked == ["revoked by an operator", "with the new password"]
    assert ("address suppressed", "General") in details


def test_sign_up_and_an_operator_made_account(trail):
    started = trail.post("/signup", {"email": NEW, "password": STRONG})
    assert started.status_code == 202
    body = {"session_id": started.data["session_id"], "code": trail.code(NEW)}
    assert trail.post("/signup/verify", body).status_code == 201
    assert trail.post("/signup", {"email": DEMO_EMAIL, "password": STRONG}).status_code == 202
    accounts.set_password(trail.cfg, "made.by.operator@example.com", STRONG)

    assert trail.events(NEW) == [
        ("sign-up", "code sent"),
        ("code verified", "ok"),
        ("account created", "ok"),
        ("device added", "ok"),
    ]
    created = [row for row in trail.rows(NEW) if row["event"] == "account created"]
    assert created[0]["detail"] == "by sign-up"
    assert trail.rows(NEW)[0]["ip"] == IP_HASH
    exists = [row for row in trail.rows() if row["event"] == "sign-up"]
    assert [(row["outcome"], row["ip"]) for row in exists] == [("account exists", IP_HASH)]
    operator = trail.rows("made.by.operator@example.com")
    assert [(r["event"], r["detail"], r["ip"]) for r in operator] == [
        ("account created", "by an operator", "")
    ]


def test_a_reset_or_a_refused_sign_in_for_no_account_writes_nothing(trail):
    stack = trail.stack
    assert trail.post("/password/reset", {"email": "nobody@example.com"}).status_code == 202
    assert stack.post("/otp", {"email": "nobody@example.com", "password": "whatever"}).status_code == 401
    assert trail.rows("nobody@example.com") == []
    assert not [item for item in audit_items() if item["email"] == "nobody@example.com"]


def test_a_right_password_that_a_send_limit_refuses_is_limited_not_refused(trail, clock, monkeypatch):
    cfg = dataclasses.replace(trail.cfg, sends_per_email_per_hour=1)
    monkeypatch.setattr(trail.stack.app_module, "SETTINGS", cfg)
    trail.cfg = cfg
    assert trail.sign_in().status_code == 200
    clock.advance(40)
    assert trail.sign_in().status_code == 429  # the slot is given back, noted on the refund
    rows = trail.rows()
    assert [(r["event"], r["outcome"]) for r in rows] == [
        ("sign-in", "code sent"),
        ("limit reached", "limited"),
        ("sign-in", "limited"),
    ]
    assert rows[1]["detail"].startswith("codes sent to the address: 1 in 60 minutes")
    assert all(row["ip"] == IP_HASH for row in rows)


def test_verify_entries_carry_the_network_of_the_verify(trail):
    session_id = trail.sign_in().data["session_id"]
    code = trail.code()
    other = "2001:db8:1:2::5"
    with pytest.raises(Exception, match="code"):
        challenges.verify(trail.cfg, {"session_id": session_id, "code": _wrong(code)}, None, other)
    challenges.verify(trail.cfg, {"session_id": session_id, "code": code}, None, other)
    network = hashlib.sha256(b"2001:db8:1:2::/64").hexdigest()[:32]  # an IPv6 client counts as its /64
    guesses = [row for row in trail.rows() if row["event"].startswith("code ")]
    assert [(row["event"], row["ip"]) for row in guesses] == [
        ("code refused", network),
        ("code verified", network),
    ]


# ----------------------------------------------------------------- stream delivery


def test_records_delivered_twice_or_out_of_order_write_nothing_twice(trail, clock):
    assert trail.sign_in("wrong password").status_code == 401
    session_id = trail.sign_in().data["session_id"]
    assert trail.verify(session_id, trail.code()).status_code == 200
    trail.flush()
    before = sorted(audit_items(), key=lambda item: item["pk"])
    entries = sum(1 for item in before for name in item if name.startswith(audit.PREFIX))

    assert audit.record_stream(trail.cfg, trail.seen) == 0
    assert audit.record_stream(trail.cfg, list(reversed(trail.seen))) == 0
    after = sorted(audit_items(), key=lambda item: item["pk"])
    assert [{k: v for k, v in item.items() if k != "n"} for item in after] == [
        {k: v for k, v in item.items() if k != "n"} for item in before
    ]
    assert entries == len(trail.rows()) + 1  # and the demo user's creation, long before the clock's now
    assert [row["event"] for row in trail.rows()] == ["sign-in", "sign-in", "code verified", "device added"]


def test_the_session_settles_its_sign_in_whichever_record_comes_first(trail):
    assert trail.sign_in().status_code == 200
    batch = triples(trail.stack.stream_records())
    slots = [r for r in batch if (r[1] or {}).get("pk", {}).get("S", "").startswith("limit#fail-email#")]
    session = [r for r in batch if (r[1] or {}).get("kind", {}).get("S") == "session"]
    assert slots and session
    assert audit.record_stream(trail.cfg, session) == 1
    assert audit.record_stream(trail.cfg, slots) == 0  # "refused" only where there is no entry yet
    assert trail.events() == [("sign-in", "code sent")]


def test_a_new_image_stream_still_records_sign_ins_and_codes(trail):
    """A table whose stream was never switched: no old images, no account diffs, the rest the same."""
    assert trail.sign_in("wrong password").status_code == 401
    session_id = trail.sign_in().data["session_id"]
    code = trail.code()
    assert trail.verify(session_id, _wrong(code)).status_code == 401
    assert trail.verify(session_id, code).status_code == 200
    trail.flush()
    for item in audit_items():
        store._ddb().delete_item(TableName=trail.cfg.table_name, Key=store.to_ddb({"pk": item["pk"]}))
    trail.flush()
    new_only = [(name, new, None) for name, new, _ in trail.seen]
    audit.record_stream(trail.cfg, new_only)
    assert trail.events() == [
        ("sign-in", "refused"),
        ("sign-in", "code sent"),
        ("code refused", "wrong code"),
        ("code verified", "ok"),
    ]


def test_audit_items_are_ignored_by_the_mailer_and_write_nothing_again(trail):
    assert trail.sign_in().status_code == 200
    trail.flush()
    batch = trail.flush()  # the audit item's own INSERT
    assert any((new or {}).get("kind", {}).get("S") == "audit" for _, new, _ in batch)
    assert audit.record_stream(trail.cfg, batch) == 0
    assert len([m for m in sent_mail() if DEMO_EMAIL in m.to]) == 1


# ----------------------------------------------------------------- storage


def test_no_raw_ip_code_password_token_or_session_id_in_audit_items(trail):
    stack = trail.stack
    assert trail.sign_in("a wrong password").status_code == 401
    session_id = trail.sign_in().data["session_id"]
    code = trail.code()
    answer = trail.verify(session_id, code).data
    trail.clock.advance(40)  # past the cooldown
    reset = trail.post("/password/reset", {"email": DEMO_EMAIL}).data["session_id"]
    reset_code = trail.code()
    body = {"session_id": reset, "code": reset_code, "new_password": NEW_PASSWORD}
    assert stack.post("/password/reset/confirm", body).status_code == 200
    trail.flush()
    items = audit_items()
    assert items
    dumped = json.dumps(items, default=str)
    secrets = [
        IP,
        "203.0.113",
        DEMO_PASSWORD,
        "a wrong password",
        NEW_PASSWORD,
        answer["token"],
        answer["device_token"],
        session_id,
        reset,
        codes.session_hash(session_id),  # the full hash: entries name 16 hex digits at most
        codes.device_hash(answer["device_token"]),
    ]
    for secret in secrets:
        assert secret not in dumped, secret
    texts = [
        str(v) for item in items for k, entry in item.items() if k.startswith("e:") for v in entry.values()
    ]
    for value in texts:
        assert code not in value and reset_code not in value, value
    for item in items:
        for name, entry in item.items():
            if name.startswith(audit.PREFIX):
                assert set(entry) <= {"t", "ev", "out", "ip", "d"}
                assert not entry.get("ip") or re.fullmatch(r"[0-9a-f]{32}", entry["ip"])


def test_audit_items_live_90_days_and_are_bounded(trail, monkeypatch, caplog):
    assert trail.sign_in().status_code == 200
    trail.flush()
    for item in audit_items():
        hour = int(item["pk"].rpartition("#")[2])
        assert item["pk"] == f"audit#{item['email']}#{hour}"
        assert item["expires_at"] == (hour + 1) * 3600 + 90 * 86400
        assert item["n"] <= audit.MAX_ENTRIES
    monkeypatch.setattr(audit, "MAX_ENTRIES", 3)
    assert trail.sign_in("wrong password").status_code == 401
    trail.flush()
    for _ in range(2):
        assert trail.sign_in("wrong password").status_code == 401
    trail.flush()  # two more entries would make four
    assert len(trail.rows()) == 2  # the item took what it had room for, then refused
    assert "audit item full" in caplog.text


def test_a_failed_audit_write_never_stops_the_mail(trail, monkeypatch, caplog):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("throttled")

    monkeypatch.setattr(store, "add_audit", broken)
    assert trail.sign_in().status_code == 200
    assert trail.code()  # mailed
    assert audit.record_stream(trail.cfg, trail.seen) == 0
    assert "audit write failed" in caplog.text


# ----------------------------------------------------------------- cost


def _item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: names plus values (numbers about half their digits)."""

    def size(value: Any) -> int:
        if isinstance(value, bool) or value is None:
            return 1
        if isinstance(value, int):
            return math.ceil(len(str(abs(value))) / 2) + 1
        if isinstance(value, (bytes, bytearray)):
            return len(value)
        if isinstance(value, dict):
            return 3 + sum(len(k.encode()) + size(v) + 1 for k, v in value.items())
        if isinstance(value, (list, tuple, set)):
            return 3 + sum(size(v) + 1 for v in value)
        return len(str(value).encode())

    return sum(len(name.encode()) + size(value) for name, value in item.items())


@pytest.fixture
def metered(trail, monkeypatch) -> list[int]:
    """Each audit UpdateItem's write units: ceil(larger of the item before and after / 1 KB)."""
    units: list[int] = []
    real = store.add_audit

    def add_audit(table: str, email: str, hour: int, *args: Any, **kwargs: Any) -> Any:
        def current() -> dict[str, Any]:
            key = store.to_ddb({"pk": store.audit_key(email, hour)})
            return store.from_ddb(store._ddb().get_item(TableName=table, Key=key).get("Item")) or {}

        before = current()
        result = real(table, email, hour, *args, **kwargs)
        units.append(math.ceil(max(_item_size(before), _item_size(current()), 1) / 1024))
        return result

    monkeypatch.setattr(store, "add_audit", add_audit)
    return units


def test_cost_one_write_per_failed_sign_in_and_three_per_complete_one(trail, metered):
    """The figures in docs/decisions.md: audit UpdateItems and their write units."""
    assert trail.sign_in("wrong password").status_code == 401
    trail.flush()
    assert metered == [1], "a failed sign-in: one write of one unit"
    metered.clear()
    session_id = trail.sign_in().data["session_id"]
    code = trail.code()  # the batch of the sign-in: session, challenge, slot and send counters
    assert metered == [1]
    assert trail.verify(session_id, code).status_code == 200
    trail.flush()  # the batch of the verify: the guess and the new device, one item
    assert metered == [1, 1]
    trail.flush()  # the audit item's own records: no write
    assert metered == [1, 1]


# ----------------------------------------------------------------- the command


def test_cli_lists_the_trail_oldest_first(trail, tmp_path, monkeypatch):
    from devstack.testenv import TEST_ENV
    from ops import cli, stage

    config = tmp_path / "config.json"  # a stage that points at the in-process moto
    config.write_text(json.dumps({"version": "2.0", "stages": {"test": {"environment_variables": TEST_ENV}}}))
    monkeypatch.setattr(stage, "CONFIG", config)

    assert trail.sign_in("wrong password").status_code == 401
    session_id = trail.sign_in().data["session_id"]
    assert trail.verify(session_id, trail.code()).status_code == 200
    trail.flush()
    out = io.StringIO()
    assert cli.main(["--stage", "test", "audit", DEMO_EMAIL, "--days", "1"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    pattern = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  (.{20}) (.{14}) (ip=\S+)\s+(.*)"
    parsed = [re.fullmatch(pattern, line) for line in lines]
    assert all(parsed), lines
    assert [(m[1].strip(), m[2].strip()) for m in parsed if m] == [
        ("sign-in", "refused"),
        ("sign-in", "code sent"),
        ("code verified", "ok"),
        ("device added", "ok"),
    ]
    assert parsed[0] and parsed[0][3] == f"ip={IP_HASH[:12]}"
    assert sorted(lines) == lines  # ISO times sort as text: oldest first

    empty = io.StringIO()
    assert cli.main(["--stage", "test", "audit", "nobody@example.com"], out=empty) == 0
    assert empty.getvalue() == "no audit entries for nobody@example.com in the last 90 day(s)\n"
    assert cli.main(["--stage", "test", "audit", DEMO_EMAIL, "--days", "91"], out=io.StringIO()) == 2
