"""Operator code: the ``simple-otp`` command and what it does.

Provisioning (table, stream, TTL, code key, sender), the Lambda roles' IAM
policies, stage configuration and user accounts. None of it runs in Lambda,
so none of it is in the Lambda package: ops imports chalicelib, never the
other way round.
"""

from __future__ import annotations


class OpsError(Exception):
    """A problem the operator can fix; printed as one line."""
