"""Count and record AWS API calls with botocore's own event hooks.

The hooks are added to ``botocore.handlers.BUILTIN_HANDLERS``, which every
new botocore session registers (it is how moto hooks in too), so they see
the calls of every client created after :meth:`Recorder.install`, however
the client was made. ``chalicelib.aws`` caches its clients: install, then
``aws.reset()``.

* ``provide-client-params`` keeps a copy of the arguments as the caller gave
  them, so the very same call can be made again without the app
  (:func:`replay`);
* ``before-call`` counts one API call (once per client method call, however
  many HTTP attempts its retries take);
* ``response-received`` counts HTTP attempts and their error codes;
* with a sizer (:class:`bench.capacity.MotoSizer`), ``before-call`` and
  ``after-call`` of DynamoDB also read the size of every item the call names,
  before and after it, and give the call its request units.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.capacity import Units, changes, targets, units

_PARAMS_KEY = "bench_api_params"
_CALL_KEY = "bench_call"


@dataclass
class Call:
    service: str  # botocore service id, hyphenated: "dynamodb", "ses", "ssm"
    operation: str  # API name: "GetItem"
    params: dict[str, Any]
    units: Units | None = None  # DynamoDB request units (with a sizer), once answered
    error: str | None = None  # the error code of its answer, if any
    stream_records: int = 0  # items it changed (each one record on the table's stream)
    items_created: int = 0  # items it made (each one REMOVE record when its TTL deletes it)
    _targets: Any = None
    _before: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.service}.{self.operation}"

    @property
    def is_dynamodb(self) -> bool:
        return self.service == "dynamodb"


@dataclass
class Recording:
    calls: list[Call] = field(default_factory=list)
    attempts: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return len(self.calls)

    @property
    def names(self) -> list[str]:
        return [call.name for call in self.calls]

    @property
    def dynamodb(self) -> list[Call]:
        return [call for call in self.calls if call.is_dynamodb]

    @property
    def others(self) -> list[Call]:
        return [call for call in self.calls if not call.is_dynamodb]

    @property
    def stream_records(self) -> int:
        return sum(call.stream_records for call in self.dynamodb)

    @property
    def items_created(self) -> int:
        return sum(call.items_created for call in self.dynamodb)

    @property
    def units(self) -> Units:
        """DynamoDB request units of every call (sized=False if any call could not be sized)."""
        total = Units()
        for call in self.dynamodb:
            total = total + (call.units if call.units is not None else Units(sized=False))
        return total


class Recorder:
    """Installs the hooks once; :meth:`record` scopes what is counted."""

    def __init__(self) -> None:
        self._current: Recording | None = None
        self.sizer: Any = None  # a bench.capacity.MotoSizer, once the emulator is up
        self._handlers = [
            ("provide-client-params", self._on_params),
            ("before-call", self._on_call),
            ("after-call", self._on_answer),
            ("response-received", self._on_response),
        ]

    def install(self) -> None:
        from botocore.handlers import BUILTIN_HANDLERS

        for handler in self._handlers:
            if handler not in BUILTIN_HANDLERS:
                BUILTIN_HANDLERS.append(handler)

    def uninstall(self) -> None:
        from botocore.handlers import BUILTIN_HANDLERS

        for handler in self._handlers:
            while handler in BUILTIN_HANDLERS:
                BUILTIN_HANDLERS.remove(handler)

    @contextmanager
    def record(self) -> Iterator[Recording]:
        """Every API call made inside the block (not nested)."""
        recording = Recording()
        self._current = recording
        try:
            yield recording
        finally:
            self._current = None

    # ------------------------------------------------------------ hooks

    def _on_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if self._current is not None:
            context[_PARAMS_KEY] = copy.deepcopy(params)

    def _on_call(self, event_name: str, context: dict[str, Any], **_: Any) -> None:
        if self._current is None:
            return
        _, service, operation = event_name.split(".", 2)
        call = Call(service, operation, context.pop(_PARAMS_KEY, {}))
        if self.sizer is not None and call.is_dynamodb:
            call._targets = targets(operation, call.params, self.sizer.key_names)
            call._before = self.sizer.sizes(call._targets)
        context[_CALL_KEY] = call
        self._current.calls.append(call)

    def _on_answer(self, context: dict[str, Any], parsed: Any = None, **_: Any) -> None:
        call = context.pop(_CALL_KEY, None)
        if call is None:
            return
        call.error = ((parsed or {}).get("Error") or {}).get("Code") or None
        if self.sizer is None or not call.is_dynamodb:
            return
        after = self.sizer.sizes(call._targets)
        call.units = units(call._targets, call._before, after)
        if call.error is None:
            call.stream_records, call.items_created = changes(call._targets, call._before, after)

    def _on_response(self, parsed_response: Any = None, exception: Any = None, **_: Any) -> None:
        if self._current is None:
            return
        self._current.attempts += 1
        code = ((parsed_response or {}).get("Error") or {}).get("Code")
        if code:
            self._current.errors[code] += 1
        elif exception is not None:
            self._current.errors[type(exception).__name__] += 1


_CLIENT_NAMES = {"dynamodb-streams": "dynamodbstreams"}


def prepare(calls: list[Call]) -> list[tuple[Any, dict[str, Any]]]:
    """Bound client methods and fresh argument copies for :func:`replay`, made ahead of timing."""
    from botocore import xform_name

    from chalicelib import aws

    return [
        (
            getattr(aws.client(_CLIENT_NAMES.get(c.service, c.service)), xform_name(c.operation)),
            copy.deepcopy(c.params),
        )
        for c in calls
    ]


def replay(prepared: list[tuple[Any, dict[str, Any]]]) -> int:
    """Make the prepared calls directly, without the app; return how many failed.

    A call that failed the first time (a condition that did not hold) is
    expected to fail again; the error is swallowed either way.
    """
    from botocore.exceptions import ClientError

    failed = 0
    for method, params in prepared:
        try:
            method(**params)
        except ClientError:
            failed += 1
    return failed
