"""Suppressed addresses from the command line: list them, look one up, lift one.

SES's delivery events suppress an address after a permanent bounce or a
complaint (chalicelib.events); the mailer then sends it nothing, not even a
sign-in code, until an operator lifts the suppression here. Lift it only
when the address works again (the mailbox exists now, the person asked for
mail): each new bounce or complaint counts against the account's sending
reputation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, TextIO

from chalicelib import store
from chalicelib.settings import Settings
from ops.users import address


def _when(epoch: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(epoch))) if epoch else "-"


def _line(item: Mapping[str, Any], width: int) -> str:
    return (
        f"{item['email']:{width}}  {item.get('reason', '-'):9}  {item.get('detail') or '-':24}  "
        f"{_when(item.get('at')):20}  {item.get('message_id') or '-'}"
    )


def _table(items: list[dict[str, Any]], out: TextIO) -> None:
    width = max(len("email"), *(len(item["email"]) for item in items))
    print(f"{'email':{width}}  {'reason':9}  {'detail':24}  {'since':20}  SES message", file=out)
    for item in items:
        print(_line(item, width), file=out)


def show(cfg: Settings, email: str | None, out: TextIO) -> bool:
    """Print the suppressed addresses (or ``email``'s suppression); False when ``email`` is not suppressed.

    Without ``email``: every suppressed address, one line each (reason,
    SES's detail, since when, the message that bounced or was complained
    about), oldest first. This scans the table: an operator's command only.
    """
    if email is None:
        items = store.list_suppressed(cfg.table_name)
        if not items:
            print("no address is suppressed", file=out)
        else:
            _table(items, out)
            print(f"{len(items)} address(es) suppressed", file=out)
        return True
    email = address(email)
    item = store.get_suppression(cfg.table_name, email)
    if item is None:
        print(f"{email} is not suppressed", file=out)
        return False
    _table([item], out)
    return True


def lift(cfg: Settings, email: str) -> tuple[str, bool]:
    """Mail ``email`` again; returns the address and whether it was suppressed."""
    email = address(email)
    return email, store.unsuppress(cfg.table_name, email)
