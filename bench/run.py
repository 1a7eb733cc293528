"""Run the benchmarks and write bench/RESULTS.md.

    .venv/bin/python -m bench                 # everything; rewrites bench/RESULTS.md
    .venv/bin/python -m bench --smoke         # few iterations of the in-process parts; prints only
    make bench ARGS=--smoke                   # the same, after the setup step
    .venv/bin/python -m bench --only package,frontend --output /tmp/r.md
    .venv/bin/python -m bench --smoke --json out.json   # the figures as JSON too

Parts: coldstart (a new container's first answer), inprocess (round trips,
request units, log bytes and own CPU), cost (the cost model, from the
in-process figures: asking for it runs inprocess too), localstack (load and
mailbox latency), frontend, package; each is a module of this package with
``measure(size)`` and its own report rows (see ``bench.common``).
``make bench`` runs ``scripts/bench.sh``: the setup step, then this with
the options in ``ARGS``. A smoke run never writes RESULTS.md; neither does
a run of some parts only, unless ``--output`` says where.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import coldstart, cost, frontend, inprocess, load, package, report
from bench.common import ROOT

RESULTS = ROOT / "bench" / "RESULTS.md"
PACKAGE_RECORD = ROOT / "bench" / "RESULTS-package.md"
# The parts, in the report's order.
PARTS = {
    "coldstart": coldstart,
    "inprocess": inprocess,
    "cost": cost,
    "localstack": load,
    "frontend": frontend,
    "package": package,
}
SMOKE_PARTS = ("coldstart", "inprocess", "cost")

SIZES: dict[str, dict[str, int]] = {
    "full": {
        "cold_repeats": 21,
        "iterations": 100,
        "warmup": 3,
        "argon2_repeats": 50,
        "sign_ins": 200,
        "latency_sign_ins": 50,
        "clients": 4,
    },
    "smoke": {
        "cold_repeats": 2,
        "iterations": 3,
        "warmup": 1,
        "argon2_repeats": 3,
        "sign_ins": 10,
        "latency_sign_ins": 3,
        "clients": 2,
    },
}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        meminfo = Path("/proc/meminfo").read_text()
        kib = int(next(line for line in meminfo.splitlines() if line.startswith("MemTotal")).split()[1])
        info["memory_gib"] = round(kib / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        info["memory_gib"] = None
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(
            line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")
        )
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or None
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app.py", "chalicelib", "requirements.txt"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["commit"] = head + (" (app.py/chalicelib/requirements.txt modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = None
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="few iterations; never writes RESULTS.md")
    parser.add_argument("--only", help=f"comma-separated parts: {','.join(PARTS)}")
    parser.add_argument(
        "--output", type=Path, help="write the report here (default: RESULTS.md on a full run)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)

    parts = tuple(args.only.split(",")) if args.only else (SMOKE_PARTS if args.smoke else tuple(PARTS))
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s): {', '.join(unknown)}")
    for part in list(parts):  # a part that prices another's figures needs that one first
        needed = getattr(PARTS[part], "NEEDS", None)
        if needed and needed not in parts:
            parts = (*parts[: parts.index(part)], needed, *parts[parts.index(part) :])
    output = args.output
    if output is None and not args.smoke and not args.only:
        output = RESULTS
    if args.smoke and output is not None and output.resolve() == RESULTS.resolve():
        parser.error("a smoke run does not write RESULTS.md")

    size = SIZES["smoke" if args.smoke else "full"]
    command = os.environ.get("BENCH_COMMAND") or shlex.join(
        ["python", "-m", "bench", *(argv or sys.argv[1:])]
    )
    results: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command,
            "smoke": args.smoke,
            "sizes": size,
            "machine": machine(),
        }
    }
    failed = []
    for name in parts:
        print(f"==> bench: {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            needed = getattr(PARTS[name], "NEEDS", None)
            if needed:
                results[name] = PARTS[name].measure(size, results.get(needed))
            else:
                results[name] = PARTS[name].measure(size)
        except Exception as error:  # noqa: BLE001 - one broken part must not hide the others
            traceback.print_exc()
            results[name] = {"ok": False, "error": f"failed: {type(error).__name__}: {error}"[:500]}
            failed.append(name)
        print(f"    {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    if PACKAGE_RECORD.is_file():
        results["package_record"] = PACKAGE_RECORD.read_text()
    text = report.render(results, PARTS)
    if output is not None:
        output.write_text(text)
        print(report.console(results, PARTS))
        print(f"==> bench: wrote {output}", file=sys.stderr)
    else:
        print(text)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if failed:
        print(f"==> bench: these parts failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
