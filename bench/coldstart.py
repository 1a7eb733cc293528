"""Cold start: the import time of ``app`` against the floor ``import chalice.app, boto3``.

Every measurement is a fresh interpreter that times its own import with
``perf_counter`` (so interpreter start-up, the same for both, is left out).
The two are run alternately, after one untimed run each that leaves the
bytecode caches written. A separate fresh interpreter checks that the
import creates no AWS client and opens no connection.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench.common import PYTHON, ROOT, Measure, Section, Table, median, ms, verdict

TARGET_RATIO = 1.15
TITLES = ("Cold start",)

_TIMER = """
import json, sys, time
t0 = time.perf_counter()
{statement}
t1 = time.perf_counter()
print(json.dumps({{"seconds": t1 - t0, "modules": len(sys.modules),
                  "boto3": "boto3" in sys.modules, "botocore": "botocore" in sys.modules}}))
"""

SUBJECTS = {
    "app": "import app",
    "floor": "import chalice.app, boto3",
    # informational: what a cold container's first request adds on top of `import app`
    "app_then_client": "import app\nfrom chalicelib import aws\naws.client('dynamodb')",
}

# botocore is imported first only so that client creation can be watched (its
# own import probes IPv6 support with a local socket, before the watch starts).
_IMPORT_CHECK = """
import json, sys
import botocore.session

created = []
_create = botocore.session.Session.create_client

def spy(self, *args, **kwargs):
    created.append(args[0] if args else kwargs.get("service_name"))
    return _create(self, *args, **kwargs)

botocore.session.Session.create_client = spy
seen = []

def audit(event, args):
    if event.startswith(("socket.", "http.client.", "urllib.Request", "ssl.")):
        seen.append(event)

sys.addaudithook(audit)
import app  # noqa: F401
print(json.dumps({"clients": created, "network_events": seen}))
"""


def _run(code: str) -> dict[str, Any]:
    from devstack.testenv import child_environment

    done = subprocess.run(
        [PYTHON, "-c", code],
        cwd=ROOT,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child python failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_check() -> dict[str, Any]:
    """AWS clients created and socket/HTTP audit events raised while importing ``app``."""
    return _run(_IMPORT_CHECK)


def run(repeats: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {name: [] for name in SUBJECTS}
    facts: dict[str, dict[str, Any]] = {}
    for name, statement in SUBJECTS.items():  # untimed: bytecode caches written
        facts[name] = _run(_TIMER.format(statement=statement))
    for i in range(repeats):
        order = list(SUBJECTS) if i % 2 == 0 else list(reversed(SUBJECTS))
        for name in order:
            times[name].append(_run(_TIMER.format(statement=SUBJECTS[name]))["seconds"])
    medians = {name: median(values) for name, values in times.items()}
    ratio = medians["app"] / medians["floor"]
    check = import_check()
    return {
        "repeats": repeats,
        "times": times,
        "median": medians,
        "min": {name: min(values) for name, values in times.items()},
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO,
        "app_imports_boto3": facts["app"]["boto3"],
        "app_imports_botocore": facts["app"]["botocore"],
        "modules": {name: fact["modules"] for name, fact in facts.items()},
        "clients_at_import": check["clients"],
        "network_at_import": check["network_events"],
    }


def measure(size: dict[str, int]) -> dict[str, Any]:
    return run(size["cold_repeats"])


def summary(cold: dict[str, Any] | None) -> list[Measure]:
    ratio = Measure("Cold start: `import app` / `import chalice.app, boto3`", f"<= {TARGET_RATIO}")
    quiet = Measure("AWS clients / network calls at import", "0 / 0")
    if cold is not None:
        medians = cold["median"]
        ratio.measured(
            f"{cold['ratio']:.2f} ({ms(medians['app'])} ms / {ms(medians['floor'])} ms)", cold["met"]
        )
        clients, network = cold["clients_at_import"], cold["network_at_import"]
        quiet.measured(f"{len(clients)} / {len(network)}", not clients and not network)
    return [ratio, quiet]


def sections(cold: dict[str, Any]) -> list[Section]:
    rows = [
        [label, ms(cold["median"][name]), ms(cold["min"][name]), cold["modules"][name], boto3]
        for name, label, boto3 in (
            ("app", "`import app`", "yes" if cold["app_imports_boto3"] else "no"),
            ("floor", "floor: `import chalice.app, boto3`", "yes"),
            ("app_then_client", "for reference: `import app` + the first DynamoDB client", "yes"),
        )
    ]
    return [
        Section(
            TITLES[0],
            [
                Table(["import", "median ms", "min ms", "modules loaded", "boto3 loaded"], rows),
                f"Ratio app / floor: **{cold['ratio']:.2f}** "
                f"(target <= {TARGET_RATIO}: {verdict(cold['met'])}).\n"
                f"Clients created while importing app: {cold['clients_at_import'] or 'none'}; "
                f"socket/HTTP audit events: {cold['network_at_import'] or 'none'}.",
                f"Each figure: a fresh interpreter timing its own import with `perf_counter` "
                f"(interpreter start-up left out), {cold['repeats']} runs each, the three alternated, "
                "after one untimed run each (bytecode caches written). `app` imports no boto3 at all: "
                "`chalicelib.aws` creates clients on first use, so a cold container pays boto3's "
                "import with its first request (third row), not at init. The import check is a "
                "separate interpreter with an audit hook on socket and HTTP events and a spy on "
                "`botocore.session.Session.create_client`.",
            ],
        )
    ]
