"""Write the common-password list the policy ships with (chalicelib/data/).

    python -m ops.password_list              # rewrites chalicelib/data/common-passwords.txt
    python -m ops.password_list --out FILE   # somewhere else (the drift test)

The source is the ranked "passwords" frequency list of the PyPI package
zxcvbn (MIT), pinned in requirements-dev.txt: it is needed to build the
file, never at run time, so the Lambda zip carries the list (240 KB, about
130 KB deflated) instead of the whole package (1.7 MB). The output is one password a line in the form
``chalicelib.passwords.folded`` compares, most common first, so the same
zxcvbn gives the same bytes and tests/test_password_policy.py can check
that the shipped file has not drifted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

from chalicelib import passwords
from ops import OpsError

SOURCE_PACKAGE = "zxcvbn"
SOURCE_VERSION = "4.5.0"
# The top of the ranked list to ship: all of zxcvbn 4.5.0's 30,000.
COUNT = 30_000


def ranked() -> list[str]:
    """zxcvbn's passwords, most common first; OpsError when it is missing or another version."""
    try:
        version = metadata.version(SOURCE_PACKAGE)
    except metadata.PackageNotFoundError:
        raise OpsError(f"{SOURCE_PACKAGE} is not installed: pip install -r requirements-dev.txt") from None
    if version != SOURCE_VERSION:
        raise OpsError(f"{SOURCE_PACKAGE} {version} is installed; the list is made from {SOURCE_VERSION}")
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return list(FREQUENCY_LISTS["passwords"])


def render(entries: Iterable[str], count: int = COUNT) -> str:
    """The file's text: the first ``count`` distinct entries, folded, one a line."""
    seen: dict[str, None] = {}
    for entry in entries:
        value = passwords.folded(entry)
        if value and "\n" not in value:
            seen.setdefault(value, None)
        if len(seen) == count:
            break
    if len(seen) < count:
        raise OpsError(f"the source has {len(seen)} distinct passwords, fewer than {count}")
    return "".join(f"{value}\n" for value in seen)


def write(target: Path = passwords.COMMON_LIST) -> int:
    """Write the list to ``target``; returns how many passwords it holds."""
    text = render(ranked())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text.encode("utf-8"))
    return text.count("\n")


def main(argv: Sequence[str] | None = None) -> int:
    command = argparse.ArgumentParser(prog="python -m ops.password_list", description=__doc__.split("\n")[0])
    command.add_argument("--out", type=Path, default=passwords.COMMON_LIST, help="file to write")
    args = command.parse_args(argv)
    try:
        count = write(args.out)
    except OpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out}: {count} passwords from {SOURCE_PACKAGE} {SOURCE_VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
