"""bench/RESULTS.md from the figures of one run."""

from __future__ import annotations

from typing import Any

from bench.common import ms

HOW_TO_RUN = """\
Run them all with `make bench` (it runs `scripts/bench.sh`: the usual setup
step, then `.venv/bin/python -m bench`, which rewrites this file). A quick
check that the bench still works, which writes nothing:
`.venv/bin/python -m bench --smoke` (also run by `tests/test_bench_smoke.py`).
One part: `.venv/bin/python -m bench --only package --output /tmp/package.md`.
Parts: `coldstart`, `inprocess`, `localstack`, `frontend`, `package`.
Benchmarks are not tests: nothing here fails a build on a slow figure; the
smoke test asserts only facts (round-trip counts, no AWS client or network
at import)."""


def _yes(met: bool | None) -> str:
    if met is None:
        return "not measured"
    return "met" if met else "**not met**"


def _kib(n: float) -> str:
    return f"{n / 1024:.1f} KiB"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _failed(part: Any) -> str | None:
    if part is None:
        return "not run in this invocation"
    if isinstance(part, dict) and part.get("ok") is False:
        return str(part.get("error", "failed"))
    return None


# ---------------------------------------------------------------- summary


def _summary(r: dict[str, Any]) -> list[str]:
    rows: list[list[Any]] = []
    cold = r.get("coldstart")
    if _failed(cold) is None:
        rows.append(
            [
                "Cold start: `import app` / `import chalice.app, boto3`",
                f"{cold['ratio']:.2f} ({ms(cold['median']['app'])} ms / {ms(cold['median']['floor'])} ms)",
                f"<= {cold['target_ratio']}",
                _yes(cold["met"]),
            ]
        )
        clean = not cold["clients_at_import"] and not cold["network_at_import"]
        rows.append(
            [
                "AWS clients / network calls at import",
                f"{len(cold['clients_at_import'])} / {len(cold['network_at_import'])}",
                "0 / 0",
                _yes(clean),
            ]
        )
    else:
        rows.append(["Cold start", _failed(cold), "<= 1.15", _yes(None)])
    inproc = r.get("inprocess")
    if _failed(inproc) is None:
        for row in inproc["round_trips"]:
            rows.append([f"AWS calls per {row['flow']}", row["calls"], row["target"], _yes(row["met"])])
    else:
        rows.append(["AWS calls per flow", _failed(inproc), "", _yes(None)])
    local = r.get("localstack")
    if _failed(local) is None:
        phases = local["load"]["phases"]
        errors = sum(p["errors"] for p in phases)
        expected_401 = sum(int(p["statuses"].get("401", 0)) for p in phases)
        rows.append(
            [
                "Load on the local stack: errors",
                f"{errors} ({expected_401} expected 401s)",
                "0 besides expected 401s",
                _yes(errors == 0),
            ]
        )
        for p in phases:
            rows.append([f"Load: {p['phase']}", f"{p['rps']:.1f} req/s, p95 {ms(p['p95'])} ms", "-", "-"])
        lat = local["latency"]
        rows.append(
            [
                "`POST /otp` returned -> message in the mailbox, p95",
                f"{ms(lat['p95'])} ms (p50 {ms(lat['p50'])} ms)",
                f"< {lat['target_p95']:g} s",
                _yes(lat["met"]),
            ]
        )
    else:
        rows.append(["Load on the local stack", _failed(local), "0 errors", _yes(None)])
        rows.append(["`POST /otp` -> mailbox, p95", _failed(local), "< 1 s", _yes(None)])
    front = r.get("frontend")
    if _failed(front) is None:
        rows.append(
            [
                "Frontend: gzipped JS + CSS",
                f"{front['measured']['gzip_bytes']:,} bytes ({_kib(front['measured']['gzip_bytes'])})",
                f"< {front['target_bytes']:,} bytes",
                _yes(front["met"]),
            ]
        )
    else:
        rows.append(["Frontend: gzipped JS + CSS", _failed(front), "< 60,000 bytes", _yes(None)])
    pkg = r.get("package")
    if _failed(pkg) is None:
        rows.append(
            [
                "Lambda package (`deployment.zip`)",
                f"{pkg['bytes']:,} bytes, {len(pkg['aws_sdk_paths'])} boto3/botocore files",
                f"< {pkg['target_bytes']:,} bytes, no boto3",
                _yes(pkg["met"]),
            ]
        )
    else:
        rows.append(["Lambda package", _failed(pkg), "< 1,000,000 bytes, no boto3", _yes(None)])
    return _table(["measure", "result", "target", ""], rows)


# ---------------------------------------------------------------- sections


def _coldstart(cold: dict[str, Any]) -> list[str]:
    rows = [
        [
            "`import app`",
            ms(cold["median"]["app"]),
            ms(cold["min"]["app"]),
            cold["modules"]["app"],
            "no" if not cold["app_imports_boto3"] else "yes",
        ],
        [
            "floor: `import chalice.app, boto3`",
            ms(cold["median"]["floor"]),
            ms(cold["min"]["floor"]),
            cold["modules"]["floor"],
            "yes",
        ],
        [
            "for reference: `import app` + the first DynamoDB client",
            ms(cold["median"]["app_then_client"]),
            ms(cold["min"]["app_then_client"]),
            cold["modules"]["app_then_client"],
            "yes",
        ],
    ]
    lines = _table(["import", "median ms", "min ms", "modules loaded", "boto3 loaded"], rows)
    lines += [
        "",
        f"Ratio app / floor: **{cold['ratio']:.2f}** "
        f"(target <= {cold['target_ratio']}: {_yes(cold['met'])}).",
        f"Clients created while importing app: {cold['clients_at_import'] or 'none'}; "
        f"socket/HTTP audit events: {cold['network_at_import'] or 'none'}.",
        "",
        f"Each figure: a fresh interpreter timing its own import with `perf_counter` "
        f"(interpreter start-up left out), {cold['repeats']} runs each, the three alternated, after "
        "one untimed run each (bytecode caches written). `app` imports no boto3 at all: "
        "`chalicelib.aws` creates clients on first use, so a cold container pays boto3's "
        "import with its first request (third row), not at init. The import check is a "
        "separate interpreter with an audit hook on socket and HTTP events and a spy on "
        "`botocore.session.Session.create_client`.",
    ]
    return lines


def _roundtrips(inproc: dict[str, Any]) -> list[str]:
    rows = [
        [
            r["flow"],
            r["requests"],
            r["calls"],
            ", ".join(r["operations"]),
            r["attempts"],
            r["target"],
            _yes(r["met"]),
        ]
        for r in inproc["round_trips"]
    ]
    lines = _table(["flow", "requests", "AWS calls", "calls", "HTTP attempts", "target", ""], rows)
    lines += ["", "Other outcomes, each counted once in a warm container:", ""]
    lines += _table(
        ["flow", "status", "AWS calls", "calls"],
        [[e["flow"], e["status"], e["calls"], e["operations"]] for e in inproc["extras"]],
    )
    lines += [
        "",
        "Counted with botocore's `before-call` event (one per API call, whatever its retries; "
        "`response-received` counts HTTP attempts), registered through "
        "`botocore.handlers.BUILTIN_HANDLERS` so that every client the app creates carries it. "
        '"Delivery" is one invocation of the stream handler with the batch moto\'s stream '
        "produced for one send (the status column of deliveries is the number of emails sent). "
        "Warm container: the code key's SSM read happens once per container and is shown on "
        "its own in the last row.",
    ]
    return lines


def _own(inproc: dict[str, Any]) -> list[str]:
    rows = [
        [
            r["flow"],
            r["requests"],
            r["aws_calls"],
            ms(r["app_cpu"]),
            ms(r["bare_cpu"]),
            ms(r["hash_cpu"]) if r["flow"] == "sign-in" else "-",
            f"**{ms(r['own_cpu'])}**",
            ms(r["own_cpu_mean"]),
            ms(r["own_wall"]),
        ]
        for r in inproc["own"]
    ]
    argon2 = inproc["argon2"]
    floor = inproc["chalice_floor"]
    lines = _table(
        [
            "flow",
            "requests",
            "AWS calls",
            "through the app",
            "same calls, bare",
            "argon2",
            "own (median)",
            "own (mean)",
            "own, wall time (median)",
        ],
        rows,
    )
    lines += [
        "",
        "CPU milliseconds per request (`time.process_time`), except the last column (wall clock, "
        "`perf_counter`). Own = through the app - the same AWS calls made bare - argon2, "
        "per request, then the median (or mean).",
        "",
        f"- Password hashing on its own: argon2id m={argon2['memory_kib']} KiB, t={argon2['time_cost']}, "
        f"p={argon2['parallelism']} (OWASP minimum, `chalicelib/credentials.py`): "
        f"**{ms(argon2['cpu_median'])} ms CPU** per verification (median of {argon2['repeats']}). "
        "Every sign-in pays exactly one, also for unknown users. Its cost is chosen.",
        f'- Of "own", Chalice\'s routing and the test client: {ms(floor["cpu_median"])} ms '
        f"(a one-line JSON route with the same options, median of {floor['requests']}).",
        f"- {inproc['iterations']} whole sign-ins measured (after {inproc['warmup']} untimed): "
        "`POST /otp`, delivery, `POST /otp/resend`, delivery, `POST /otp/verify`, through "
        "`chalice.test.Client`, with moto's `mock_aws` answering in the same process. Settings "
        "are the production defaults; a fake clock moves 2 hours between sign-ins so no send "
        "limit trips.",
        "- Bare: every call recorded (its arguments as the app passed them, through "
        "`provide-client-params`) is made again, in the same order, on the same kind of client, "
        "against a freshly provisioned moto, with nothing around it. Calls that failed in the "
        f"app run: {inproc['original_failures']}; in the bare run: {inproc['replay_failures']}.",
        "- Between two sign-ins, untimed, both runs delete every item but the users and drop "
        "the stream records already read: moto deep-copies the whole table (stream included) "
        "on each TransactWriteItems, so without this each transaction would cost more than the "
        "last. The garbage collector is off during each timed request (as `timeit` does) and "
        "runs between sign-ins instead.",
        "- moto's cost is not DynamoDB's: the bare column is the emulator's work, shown so that "
        "the difference is ours. The real per-request time on Lambda is dominated by the network "
        "round trips counted above.",
    ]
    return lines


def _local(local: dict[str, Any]) -> list[str]:
    lat = local["latency"]
    loaded = local["load"]
    rows = [
        [
            p["phase"],
            p["clients"],
            p["requests"],
            ", ".join(f"{k}: {v}" for k, v in p["statuses"].items()),
            p["errors"],
            f"{p['seconds']:.1f}",
            f"{p['rps']:.1f}",
            ms(p["p50"]),
            ms(p["p95"]),
            ms(p["p99"]),
            ms(p["max"]),
        ]
        for p in loaded["phases"]
    ]
    lines = _table(
        [
            "phase",
            "clients",
            "requests",
            "statuses",
            "errors",
            "seconds",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
        ],
        rows,
    )
    examples = [e for p in loaded["phases"] for e in p["error_examples"]]
    if examples:
        lines += ["", "Errors, first few: " + "; ".join(examples)]
    floor = local["floor"]
    lines += [
        "",
        f"Baseline in the same run, the local server's own time: `POST /otp` with `{{}}` (a 400 "
        f"before any AWS call or hashing), one at a time: p50 {ms(floor['p50'])} ms, p95 "
        f"{ms(floor['p95'])} ms over {floor['requests']} requests. Chalice's local server as "
        "shipped writes each answer in several small packets with Nagle's algorithm on, so each "
        "answer waits for a delayed ACK: a one-line Chalice app on that server class, in the "
        f"bench's own process, answers in {ms(local['stall']['as_shipped'])} ms as shipped and in "
        f"{ms(local['stall']['nodelay'])} ms with its request handler's `disable_nagle_algorithm` "
        "set (p50 of 20). The local stack's API sets it (`devstack/api.py`).",
        "",
        f"{loaded['users']} users, one sign-in each; every {loaded['wrong_every']}th user also "
        "sends a wrong password first (401 expected) and, later, a wrong code before the right "
        f"one (401 expected). In {loaded['rounds']} round(s) of up to {loaded['round_size']} users, each "
        "on a freshly started stack: moto server's TransactWriteItems deep-copies the whole table "
        "on every call (the local emulator keeps the stream out of that copy), so its cost grows "
        "with every item written, and one long run would measure that copying. Figures are over "
        "all rounds; seconds and req/s count the phases' own time. In each round, verifies "
        "start once all codes are in the "
        f"mailbox ({loaded['codes_found']} found in all). Every request has a timeout "
        f"({local['timeout'][0]:g} s connect, {local['timeout'][1]:g} s read); each phase stops "
        f"starting requests after {local['phase_deadline']:g} s. Everything on 127.0.0.1; the "
        "load clients share the machine's cores with the stack.",
        "",
        "### `POST /otp` returned -> message in the local mailbox",
        "",
    ]
    lines += _table(
        ["sign-ins", "arrived", "p50 ms", "p95 ms", "max ms", "target p95", ""],
        [
            [
                lat["sign_ins"],
                lat["arrived"],
                ms(lat["p50"]),
                ms(lat["p95"]),
                ms(lat["max"]),
                f"< {lat['target_p95']:g} s",
                _yes(lat["met"]),
            ]
        ],
    )
    if lat["failures"]:
        lines += ["", "Failures: " + "; ".join(lat["failures"][:5])]
    lines += [
        "",
        "One sign-in at a time, each a different user; from the moment `POST /otp` returned, "
        "`GET /api/messages` every 10 ms until the message to that address is listed. The "
        "stream pump polls the emulated stream every 0.2 s, which sets most of this time "
        "(on AWS, Lambda polls the stream itself).",
        "",
        f"The stack: `tests/localstack.py` (`.venv/bin/python -m devstack` on free ports), "
        f"started in {local['stack_start_seconds']:.1f} s, with "
        + ", ".join(f"`{k}={v}`" for k, v in local["stack_env"].items())
        + " (every request comes from 127.0.0.1, so the per-IP limit of 50 an hour would stop "
        "the run); all other settings as configured. Users made with `chalicelib.admin.add_user`.",
    ]
    return lines


def _frontend(front: dict[str, Any]) -> list[str]:
    measured = front["measured"]
    rows = [[name, f"{f['bytes']:,}", f"{f['gzip']:,}"] for name, f in measured["files"].items()]
    rows.append(["**total**", f"{measured['raw_bytes']:,}", f"**{measured['gzip_bytes']:,}**"])
    lines = _table(["file (frontend/dist)", "bytes", "gzip -9 bytes"], rows)
    lines += [
        "",
        f"Total gzipped: **{measured['gzip_bytes']:,} bytes** ({_kib(measured['gzip_bytes'])}; "
        f"target < {front['target_bytes']:,} bytes: "
        f"{_yes(front['met'])}). Built with `{front['command']}` in `frontend/`; each file "
        "gzipped on its own.",
    ]
    own = front.get("size_json")
    if isinstance(own, dict) and "total_gzip_bytes" in own:
        lines += [
            "",
            f"The build's own count (`dist/size.json`, from `frontend/scripts/size.mjs`, Node's zlib "
            f"at level {own.get('gzip_level', '?')}): JS {own.get('js_gzip_bytes', 0):,} + CSS "
            f"{own.get('css_gzip_bytes', 0):,} = **{own['total_gzip_bytes']:,} bytes** "
            f"({_kib(own['total_gzip_bytes'])}); the table above is Python's zlib at level 9.",
        ]
    elif own is not None:
        lines += ["", f"The build's own `dist/size.json`: `{own}`"]
    return lines


def _package(pkg: dict[str, Any]) -> list[str]:
    rows = [
        [name, entry["files"], f"{entry['compressed']:,}", f"{entry['uncompressed']:,}"]
        for name, entry in pkg["top_level"].items()
    ]
    lines = [
        f"`deployment.zip`: **{pkg['bytes']:,} bytes** ({pkg['files']} files, "
        f"{pkg['uncompressed']:,} bytes unpacked); target < {pkg['target_bytes']:,} bytes and no "
        f"boto3: {_yes(pkg['met'])}. AWS SDK files inside (boto3, botocore, s3transfer, "
        f"jmespath, dateutil, urllib3): {len(pkg['aws_sdk_paths'])}.",
        "",
    ]
    lines += _table(["top level", "files", "compressed bytes", "unpacked bytes"], rows)
    lines += [
        "",
        f"Built with `{pkg['command']}` from a copy of the project's Chalice files in a "
        "temporary folder (Linux wheels come from pip's configured index).",
    ]
    if pkg.get("note"):
        lines += ["", f"Note: {pkg['note']}."]
    return lines


def _demoted(markdown: str) -> list[str]:
    """``markdown``'s lines with every heading made level 3 (code blocks left alone)."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            line = "### " + line.lstrip("#").lstrip()
        out.append(line)
    return out


SECTIONS = [
    ("coldstart", "1. Cold start", _coldstart),
    ("inprocess", "2. AWS round trips per flow", _roundtrips),
    ("inprocess", "3. Own CPU per request", _own),
    ("localstack", "4. Load on the local stack", _local),
    ("frontend", "5. Frontend bundle", _frontend),
    ("package", "6. Lambda package", _package),
]


def console(results: dict[str, Any]) -> str:
    """What a full run prints when it is done: the summary and the round-trip tables."""
    lines = ["", "Summary", ""] + _summary(results)
    inproc = results.get("inprocess")
    if _failed(inproc) is None:
        lines += ["", "AWS round trips per flow", ""] + _roundtrips(inproc)[:-2]
    return "\n".join(lines) + "\n"


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    m = meta["machine"]
    lines = [
        "# Benchmarks",
        "",
        HOW_TO_RUN,
        "",
        "## This run",
        "",
        f"- Date: {meta['date']}"
        + (" (smoke run: few iterations, figures not meaningful)" if meta["smoke"] else ""),
        f"- Machine: {m['cores']} cores ({m['usable_cores']} usable), {m['memory_gib']} GiB memory, "
        f"{m.get('cpu') or 'CPU unknown'}; {m['platform']}",
        f"- Python {m['python']}; commit {m.get('commit') or 'unknown'}",
        f"- Command: `{meta['command']}`",
        "",
        "## Summary",
        "",
    ]
    lines += _summary(results)
    for key, title, render_part in SECTIONS:
        part = results.get(key)
        lines += ["", f"## {title}", ""]
        problem = _failed(part)
        lines += [problem] if problem else render_part(part)
    record = results.get("package_record")
    if record:
        lines += ["", "## Deployment's package record (bench/RESULTS-package.md, as written there)", ""]
        lines += _demoted(record)
    return "\n".join(lines).rstrip() + "\n"
