"""The operator CLI on suppressed addresses: ``simple-otp suppressed [EMAIL]`` and ``unsuppress EMAIL``."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from chalicelib import aws, store
from devstack.environment import DEMO_EMAIL
from devstack.testenv import TEST_ENV, sent_mail
from ops import cli, stage

TABLE = TEST_ENV["OTP_TABLE_NAME"]
AT = 1_764_600_000  # 2025-12-01 14:40 UTC


@pytest.fixture(autouse=True)
def test_stage(tmp_path, monkeypatch):
    """A config whose stage points at the in-process moto, not at a local stack."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"version": "2.0", "stages": {"test": {"environment_variables": TEST_ENV}}}))
    monkeypatch.setattr(stage, "CONFIG", config)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["--stage", "test", *argv], out=out)
    return code, out.getvalue()


def _put_raw(email: str, reason: str, detail: str, at: int, message_id: str) -> None:
    """A suppression as the delivery events handler stores it, written with boto3 itself."""
    item = {
        "pk": {"S": f"suppressed#{email}"},
        "kind": {"S": "suppressed"},
        "email": {"S": email},
        "reason": {"S": reason},
        "detail": {"S": detail},
        "at": {"N": str(at)},
        "message_id": {"S": message_id},
    }
    aws.client("dynamodb").put_item(TableName=TABLE, Item=item)


def test_nothing_suppressed(stack):
    assert run("suppressed") == (0, "no address is suppressed\n")
    assert run("suppressed", "nobody@example.com") == (1, "nobody@example.com is not suppressed\n")


def test_lists_every_suppressed_address_oldest_first_with_reason_detail_and_time(stack):
    assert store.suppress(TABLE, "late@example.com", "complaint", "abuse", AT + 3600, "0100-b")
    _put_raw("early@example.com", "bounce", "NoEmail", AT, "0100-a")

    code, out = run("suppressed")

    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[0].split() == ["email", "reason", "detail", "since", "SES", "message"]
    assert lines[1].split() == [
        "early@example.com",
        "bounce",
        "NoEmail",
        "2025-12-01",
        "14:40",
        "UTC",
        "0100-a",
    ]
    assert lines[2].split() == [
        "late@example.com",
        "complaint",
        "abuse",
        "2025-12-01",
        "15:40",
        "UTC",
        "0100-b",
    ]
    assert lines[3] == "2 address(es) suppressed"
    # the columns line up, whatever the length of the addresses
    assert lines[1].index("bounce") == lines[2].index("complaint") == lines[0].index("reason")


def test_one_address_is_looked_up_as_the_api_takes_it(stack):
    assert store.suppress(TABLE, "dead@example.com", "bounce", "General", AT, "0100-c")

    code, out = run("suppressed", "Dead@Example.COM")

    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[1].split()[:3] == ["dead@example.com", "bounce", "General"]
    assert run("suppressed", "alive@example.com") == (1, "alive@example.com is not suppressed\n")


def test_unsuppress_lifts_it_and_says_when_there_was_nothing_to_lift(stack):
    assert store.suppress(TABLE, "back@example.com", "bounce", "General", AT, "0100-d")
    assert store.suppress(TABLE, "kept@example.com", "complaint", "abuse", AT, "0100-e")

    assert run("unsuppress", "Back@example.com") == (0, "back@example.com unsuppressed: it is mailed again\n")
    assert run("unsuppress", "back@example.com") == (
        0,
        "back@example.com was not suppressed: nothing to lift\n",
    )

    assert run("suppressed", "back@example.com")[0] == 1
    assert store.get_suppression(TABLE, "back@example.com") is None
    code, out = run("suppressed")
    assert code == 0 and "kept@example.com" in out and "back@example.com" not in out


def test_bad_addresses_are_one_line_errors(stack, capsys):
    assert run("suppressed", "not-an-address") == (2, "")
    assert run("unsuppress", "also not one") == (2, "")
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


def test_an_aws_failure_is_one_line_and_exit_1(stack, capsys, monkeypatch):
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("no route")

    monkeypatch.setattr(store, "list_suppressed", unreachable)
    assert run("suppressed") == (1, "")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ConnectionError") and "Traceback" not in line


def _bounce(to: str) -> str:
    """SES's event for a permanent bounce of a mail to ``to`` (no session tag: only the suppression)."""
    return json.dumps(
        {
            "eventType": "Bounce",
            "mail": {
                "timestamp": "2026-12-01T14:36:02.123Z",
                "messageId": "0100-bounced",
                "destination": [to],
                "tags": {"ses:configuration-set": [TEST_ENV["OTP_SES_CONFIGURATION_SET"]]},
            },
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "NoEmail",
                "bouncedRecipients": [{"emailAddress": to, "action": "failed", "status": "5.1.1"}],
                "timestamp": "2026-12-01T14:36:03.000Z",
                "feedbackId": "0100-feedback",
            },
        }
    )


def test_an_operator_lifts_what_a_bounce_suppressed_and_mail_flows_again(stack, clock):
    stack.client.lambda_.invoke(
        "delivery_events", stack.client.events.generate_sns_event(message=_bounce(DEMO_EMAIL))
    )
    code, out = run("suppressed", DEMO_EMAIL)
    assert code == 0 and out.splitlines()[1].split()[:3] == [DEMO_EMAIL, "bounce", "NoEmail"]

    before = len(sent_mail())
    assert stack.sign_in().status_code == 200
    stack.pump()
    assert len(sent_mail()) == before, "a suppressed address is mailed nothing"

    assert run("unsuppress", DEMO_EMAIL)[0] == 0
    clock.advance(60)  # past the resend cooldown
    assert stack.sign_in().status_code == 200
    stack.pump()
    assert sent_mail()[-1].to == [DEMO_EMAIL]


def test_help_names_both_commands(capsys):
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "suppressed" in text and "unsuppress" in text
