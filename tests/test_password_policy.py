"""The password policy (chalicelib/passwords.py, NIST SP 800-63B) and its shipped list."""

from __future__ import annotations

import secrets
import zipfile

import pytest

from chalicelib import passwords
from chalicelib.passwords import MESSAGES, weakness

EMAIL = "jane.doe@example.com"


def rule(password: str, email: str = EMAIL) -> str | None:
    found = weakness(password, email)
    return None if found is None else found[0]


# ---------------------------------------------------------------- length


def test_eight_characters_is_the_minimum():
    assert rule("xq7-Lp2") == "too_short"
    assert rule("xq7-Lp2z") is None
    assert rule("") == "too_short"


def test_length_counts_code_points_after_nfc():
    """An accent typed as a combining mark counts once, as the composed letter does."""
    decomposed = "e\u0301"  # é as two code points
    assert rule(decomposed * 7) == "too_short"  # 14 code points, 7 characters
    assert rule(decomposed * 8) is None
    assert rule("\u00e9" * 8) is None


def test_1024_characters_is_the_maximum():
    assert rule("ab" * 512) is None
    assert rule("ab" * 512 + "c") == "too_long"
    assert passwords.MAX_LENGTH == 1024


def test_non_ascii_and_emoji_are_allowed_and_count_once_each():
    assert rule("Пароль-для-входа") is None
    assert rule("密码是一只猫和一条鱼") is None
    assert rule("🦊🐙🌵🍄🚲⛵🎻🧭") is None  # 8 emoji
    assert rule("🦊🐙🌵🍄🚲⛵🎻") == "too_short"  # 7 emoji: not counted as bytes or UTF-16 units


def test_spaces_count_and_a_phrase_is_allowed():
    assert rule("correct horse battery staple") is None
    assert rule("a b c d") == "too_short"
    assert rule("a b c de") is None


def test_no_composition_rules():
    """Only letters, only digits or only lowercase is fine when it is long and not known."""
    assert rule("zebraquiltmorning") is None
    assert rule("8405193726") is None


# ---------------------------------------------------------------- the list


@pytest.mark.parametrize("password", ["password", "123456789", "qwertyuiop", "iloveyou", "sunshine"])
def test_common_passwords_are_refused(password):
    assert weakness(password, EMAIL) == ("common", MESSAGES["common"])


@pytest.mark.parametrize("password", ["PASSWORD", "Password", "QwertyUIOP", "  password  ", "password\n"])
def test_common_is_case_insensitive_and_ignores_surrounding_whitespace(password):
    assert rule(password) == "common"


def test_a_common_password_with_more_around_it_is_not_the_common_one():
    assert rule("password horse battery") is None
    assert rule("pass word") is None


def test_the_whole_list_is_used_to_its_last_entry():
    entries = passwords.COMMON_LIST.read_text(encoding="utf-8").splitlines()
    long_enough = [entry for entry in entries if len(entry) >= passwords.MIN_LENGTH]
    assert rule(long_enough[-1]) == "common"  # the least common one that is long enough
    assert rule(long_enough[len(long_enough) // 2]) == "common"


def test_the_shipped_list_has_at_least_10000_entries_folded_and_unique():
    raw = passwords.COMMON_LIST.read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw
    entries = raw.decode("utf-8").split("\n")[:-1]
    assert len(entries) >= 10_000
    assert len(set(entries)) == len(entries)
    assert all(entry and entry == passwords.folded(entry) for entry in entries)
    assert entries[:2] == ["123456", "password"]  # ranked, most common first
    assert passwords.common_passwords() == frozenset(entries)


def test_the_list_is_read_lazily_and_once():
    passwords.common_passwords.cache_clear()
    assert rule("short") == "too_short"
    assert rule(EMAIL) == "matches_email"
    assert passwords.common_passwords.cache_info().currsize == 0  # no lookup needed: not read
    assert rule("password") == "common"
    assert rule("qwertyuiop") == "common"
    info = passwords.common_passwords.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_the_shipped_list_is_what_the_generator_writes(tmp_path):
    """Regenerated from the pinned zxcvbn, byte for byte: the file cannot drift from its source."""
    pytest.importorskip("zxcvbn")
    from ops import password_list

    target = tmp_path / "common-passwords.txt"
    assert password_list.main(["--out", str(target)]) == 0
    assert target.read_bytes() == passwords.COMMON_LIST.read_bytes()
    assert target.read_text().count("\n") == password_list.COUNT


def test_the_list_and_its_licence_note_are_in_the_lambda_package(tmp_path_factory):
    from tests.test_deploy import built_package

    with zipfile.ZipFile(built_package(tmp_path_factory).zip_path) as archive:
        names = set(archive.namelist())
        packaged = archive.read("chalicelib/data/common-passwords.txt")
    assert {"chalicelib/passwords.py", "chalicelib/data/README.md"} <= names
    assert packaged == passwords.COMMON_LIST.read_bytes()


# ---------------------------------------------------------------- the address


@pytest.mark.parametrize(
    "password", ["jane.doe@example.com", "Jane.Doe@Example.COM", " JANE.DOE@example.com "]
)
def test_the_address_is_refused(password):
    assert weakness(password, EMAIL) == ("matches_email", MESSAGES["matches_email"])


@pytest.mark.parametrize("password", ["jane.doe", "JANE.DOE", "Jane.Doe"])
def test_the_local_part_is_refused(password):
    assert rule(password) == "matches_email"


def test_the_address_rule_compares_whole_values_only():
    assert rule("jane.doe.1984") is None
    assert rule("example.com") is None  # the domain alone is not the address
    assert rule("jane.doe", "john.roe@example.com") is None
    assert rule("Jane.Doe@example.com", "JANE.DOE@EXAMPLE.COM") == "matches_email"


# ---------------------------------------------------------------- strong and the messages


def test_a_random_strong_password_is_accepted():
    for _ in range(20):
        assert weakness(secrets.token_urlsafe(18), EMAIL) is None


def test_each_rule_has_one_sentence_for_a_person():
    assert set(MESSAGES) == {"too_short", "too_long", "common", "matches_email"}
    for message in MESSAGES.values():
        assert message[0].isupper() and message.endswith(".") and message.count(". ") == 0
    assert MESSAGES["too_short"] == "Use at least 8 characters."
    assert weakness("x" * 1025, EMAIL) == ("too_long", "Use at most 1024 characters.")
