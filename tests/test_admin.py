"""The operator CLI (simple-otp): add, disable and enable users."""

from __future__ import annotations

import io
import json

import pytest

from devstack.testenv import TEST_ENV, sent_mail
from ops import cli, stage


@pytest.fixture(autouse=True)
def test_stage(tmp_path, monkeypatch):
    """A config whose stage points at the in-process moto, not at a local stack."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"version": "2.0", "stages": {"test": {"environment_variables": TEST_ENV}}}))
    monkeypatch.setattr(stage, "CONFIG", config)


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def run(*argv: str, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["--stage", "test", *argv], stdin=Pipe(stdin), out=out)
    return code, out.getvalue()


def test_add_user_reads_password_from_stdin_and_can_sign_in(stack):
    code, out = run("add-user", "New.Person@Example.com", stdin="a long passphrase\n")
    assert code == 0 and "new.person@example.com" in out
    assert stack.sign_in("new.person@example.com", "a long passphrase").status_code == 200
    stack.pump()
    assert sent_mail()[0].to == ["new.person@example.com"]


def test_disable_and_enable_user(stack):
    run("add-user", "p@example.com", stdin="pw-123456\n")
    assert run("disable-user", "p@example.com")[0] == 0
    assert stack.sign_in("p@example.com", "pw-123456").status_code == 401
    assert run("enable-user", "p@example.com")[0] == 0
    assert stack.sign_in("p@example.com", "pw-123456").status_code == 200


def test_bad_input_is_one_line_error(stack, capsys):
    assert run("add-user", "not-an-email", stdin="pw\n")[0] == 2
    assert run("add-user", "x@example.com", stdin="\n")[0] == 2
    assert run("disable-user", "ghost@example.com")[0] == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert "no user ghost@example.com" in err
    assert "Traceback" not in err


def test_console_entry_reads_sys_argv_and_takes_stage_after_the_command(stack, monkeypatch, capsys):
    """What the ``simple-otp`` script calls: ``sys.exit(main())`` with no arguments."""
    monkeypatch.setattr("sys.argv", ["simple-otp", "disable-user", "ghost@example.com", "--stage", "test"])
    assert cli.main(out=io.StringIO()) == 2
    assert capsys.readouterr().err == "error: no user ghost@example.com\n"


def test_add_user_refuses_a_weak_password_in_one_line(stack, capsys):
    assert run("add-user", "weak@example.com", stdin="Password\n") == (2, "")
    assert run("add-user", "jane.doe@example.com", stdin="Jane.Doe\n") == (2, "")
    assert run("add-user", "short@example.com", stdin="pw-1234\n") == (2, "")
    assert capsys.readouterr().err.splitlines() == [
        "error: This password is on a list of common or leaked passwords: choose another.",
        "error: Choose a password that is not your email address.",
        "error: Use at least 8 characters.",
    ]
    assert stack.sign_in("weak@example.com", "Password").status_code == 401  # never created


def test_add_user_refuses_a_weak_replacement_and_keeps_the_old_password(stack):
    assert run("add-user", "keep@example.com", stdin="a long passphrase\n")[0] == 0
    assert run("add-user", "keep@example.com", stdin="123456789\n")[0] == 2
    assert stack.sign_in("keep@example.com", "123456789").status_code == 401
    assert stack.sign_in("keep@example.com", "a long passphrase").status_code == 200


def test_add_user_allow_weak_takes_the_password_anyway(stack):
    code, out = run("add-user", "demo.weak@example.com", "--allow-weak", stdin="password\n")
    assert code == 0 and "user demo.weak@example.com added" in out
    assert stack.sign_in("demo.weak@example.com", "password").status_code == 200


def test_add_user_function_applies_the_policy_unless_allowed(stack):
    from chalicelib import settings
    from ops import OpsError
    from ops.users import add_user

    with pytest.raises(OpsError, match=r"^Use at least 8 characters\.$"):
        add_user(settings.load(), "fn@example.com", "pw")
    assert add_user(settings.load(), "fn@example.com", "pw", allow_weak=True) == "fn@example.com"
    assert stack.sign_in("fn@example.com", "pw").status_code == 200


def test_allow_weak_is_only_on_add_user_and_says_what_it_is_for(capsys):
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["add-user", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--allow-weak" in help_text and "for tests and demos" in help_text
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["disable-user", "x@example.com", "--allow-weak"])


def _trusted_device(stack, label_agent: str) -> str:
    started = stack.sign_in()
    verified = stack.post(
        "/otp/verify",
        {"session_id": started.data["session_id"], "code": stack.latest_code()},
        headers={"User-Agent": label_agent},
    )
    return verified.data["device_token"]


def test_devices_lists_and_revoke_devices_forgets(stack, clock, capsys):
    from chalicelib import codes
    from devstack.environment import DEMO_EMAIL

    assert run("devices", DEMO_EMAIL) == (0, f"user {DEMO_EMAIL} has no trusted devices\n")
    firefox = _trusted_device(
        stack, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0"
    )
    code, out = run("devices", DEMO_EMAIL)
    lines = out.splitlines()
    device_id = codes.device_hash(firefox)[:16]
    assert code == 0 and lines[0].startswith("id") and len(lines) == 2
    assert lines[1].startswith(device_id) and lines[1].endswith("Firefox on Windows")
    assert firefox not in out  # the token itself is never shown
    assert run("revoke-devices", DEMO_EMAIL)[0] == 2  # neither an id nor --all
    assert run("revoke-devices", DEMO_EMAIL, "ffffffffffffffff")[0] == 2
    assert run("revoke-devices", DEMO_EMAIL, device_id) == (0, f"1 device(s) of {DEMO_EMAIL} revoked\n")
    assert run("devices", DEMO_EMAIL)[1] == f"user {DEMO_EMAIL} has no trusted devices\n"
    clock.advance(60)  # past the cooldown
    _trusted_device(stack, "curl/8.0")
    assert run("revoke-devices", DEMO_EMAIL, "--all") == (0, f"1 device(s) of {DEMO_EMAIL} revoked\n")
    assert run("devices", "ghost@example.com")[0] == 2
    err = capsys.readouterr().err
    assert "name one device ID, or --all" in err and "has no device ffffffffffffffff" in err
    assert "no user ghost@example.com" in err
