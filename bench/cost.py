"""What 1,000 sign-ins cost on AWS, from the figures the in-process part measured.

Nothing here is measured on its own: :func:`model` takes the in-process
part's figures (per flow: DynamoDB request units from the exact item sizes,
the other AWS calls, the function's own CPU, the bytes it logged, the stream
records it wrote) and prices two scenarios at us-east-1 list prices
(:data:`PRICES`, each with where it was read and when):

* a complete sign-in: ``POST /otp`` with the right password, the stream
  handler mailing the code, SES's events for that mail through SNS to the
  events handler (when the app has one), the login page's status polls
  (when the route exists), and ``POST /otp/verify`` with the right code
  (a token signed in KMS);
* a failed sign-in: ``POST /otp`` with a wrong password (401), and the stream
  batch of its counter updates.

Lambda's duration is modelled, not measured: the function's own CPU time
on this machine (its CPU minus the emulator's share of the bare calls, plus
argon2) scaled to the configured memory's share of a vCPU (Lambda gives
one vCPU at 1,769 MB, proportionally less below), plus a stated latency
per AWS call (:data:`LATENCY_MS`: assumptions, no AWS is reachable here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.common import Measure, Section, Table

TITLES = ("Cost per 1,000 sign-ins",)
NEEDS = "inprocess"  # bench.run measures that part first and hands its figures to measure()
FOUND = "2026-12-01"  # when the prices below were looked up (stored copies; see each source)


@dataclass(frozen=True)
class Price:
    what: str
    usd: float  # per `per` units
    per: float
    unit: str
    source: str  # the price page
    read_from: str  # where the figure itself was read, with its date


PRICES: dict[str, Price] = {
    "apigw": Price(
        "API Gateway REST API request (first 333 million a month)",
        3.50,
        1e6,
        "requests",
        "https://aws.amazon.com/api-gateway/pricing/",
        "AWS whitepaper table 'REST and HTTP API pricing', https://docs.aws.amazon.com/whitepapers/latest/"
        "best-practices-api-gateway-private-apis-integration/cost-optimization.html (undated)",
    ),
    "lambda_request": Price(
        "Lambda request",
        0.20,
        1e6,
        "requests",
        "https://aws.amazon.com/lambda/pricing/",
        "https://cloudchipr.com/blog/aws-lambda-pricing (2024) and "
        "https://git.mcrn.ar/mariano/lambda_local_runner (lambda-13-cost.md, undated)",
    ),
    "lambda_gbs": Price(
        "Lambda duration, x86 (first 6 billion GB-s a month)",
        0.0000166667,
        1,
        "GB-seconds",
        "https://aws.amazon.com/lambda/pricing/",
        "https://cloudchipr.com/blog/aws-lambda-pricing (2024)",
    ),
    "ddb_write": Price(
        "DynamoDB on-demand write request unit (standard table class)",
        0.625,
        1e6,
        "write units",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        "https://airbyte.com/data-engineering-resources/dynamodb-pricing (2025-07-21: after AWS's 50% cut "
        "of November 2024); AWS's page's stored copy has the units but not the figure",
    ),
    "ddb_read": Price(
        "DynamoDB on-demand read request unit (standard table class)",
        0.125,
        1e6,
        "read units",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        "https://airbyte.com/data-engineering-resources/dynamodb-pricing (2025-07-21)",
    ),
    "ses": Price(
        "SES outbound message (no attachment)",
        0.10,
        1000,
        "messages",
        "https://aws.amazon.com/ses/pricing/",
        "not on a stored copy of AWS's page; $0.10 per 1,000 in https://www.acecloudinterviews.com/"
        "tutorials/aws/ses/ (undated) and on a 2019 bill quoted at superuser.com question 1399690",
    ),
    "kms": Price(
        "KMS request with an asymmetric key (ECC Sign)",
        0.15,
        10000,
        "requests",
        "https://aws.amazon.com/kms/pricing/",
        "https://www.factualminds.com/blog/aws-kms-pricing-keys-requests-multi-region/ (2026-06-13: "
        "asymmetric at 5x the $0.03 symmetric rate); https://www.wring.co/blog/aws-kms-pricing-guide "
        "(2026-03-15) lists ECC at $0.03: the higher figure is used",
    ),
    "sns": Price(
        "SNS publish, standard topic (one per SES event)",
        0.50,
        1e6,
        "publishes",
        "https://aws.amazon.com/sns/pricing/",
        "https://www.factualminds.com/blog/amazon-sns-pricing-publishes-fanout-protocols/ (2026); "
        "delivery to Lambda not priced here (not confirmed on a stored AWS page)",
    ),
    "logs": Price(
        "CloudWatch Logs ingestion, standard class",
        0.50,
        1e9,
        "bytes (GB)",
        "https://aws.amazon.com/cloudwatch/pricing/",
        "https://c3x.dev/blog/cloudwatch-logs-cost-optimization ('us-east-1, June 2026') and "
        "https://hykell.com/kb/platform-specific-guides/aws-cloudwatch-logs-pricing (undated)",
    ),
}
# Not in the totals: storage (DynamoDB table, log retention at $0.03/GB-month per the same pages),
# the KMS key ($1/month), SSM standard parameters (free), data transfer out (a few KB per sign-in),
# free tiers. Lambda's reads of the DynamoDB stream are free:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CostOptimization_StreamsUsage.html
STREAMS_FREE = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CostOptimization_StreamsUsage.html"
)

# Assumed time each AWS call keeps the function waiting (in-region, warm connection). AWS states
# "single-digit millisecond" DynamoDB latency; the others are not published: they are assumptions.
LATENCY_MS: dict[str, float] = {
    "dynamodb": 5.0,
    "dynamodb.TransactWriteItems": 10.0,  # two-phase: prepare and commit
    "dynamodb.BatchWriteItem": 10.0,
    "kms": 15.0,
    "ses": 40.0,
    "ssm": 10.0,
}
VCPU_MB = 1769  # https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html
STREAM_BATCH = 25  # batch_size of the stream handler in app.py
# Flows whose stream records are the batch of a later step of the same scenario (priced there).
OWN_BATCH = {"sign-in": "delivery", "sign-in, wrong password": "delivery, nothing to mail"}
# What the login page does while a code is on its way, when the status route exists:
# frontend/src/composables/useDeliveryStatus.js asks 1 s after the send, then 2 s, 4 s, ... later,
# until a final state; a mail SES delivers within a few seconds takes about this many polls.
STATUS_POLLS = 3
# Lambda's own lines per invocation (text format: START, END, REPORT), as the Lambda guide shows them.
PLATFORM_LINES = (
    "START RequestId: 8f507cfc-xmpl-4697-b07a-ac58fc914c95 Version: $LATEST\n"
    "END RequestId: 8f507cfc-xmpl-4697-b07a-ac58fc914c95\n"
    "REPORT RequestId: 8f507cfc-xmpl-4697-b07a-ac58fc914c95\tDuration: 123.45 ms\t"
    "Billed Duration: 124 ms\tMemory Size: 256 MB\tMax Memory Used: 92 MB\t\n"
)
# Hosted services, per verification, for comparison (only what could be read; see HOSTED_NOTE).
HOSTED: tuple[tuple[str, str, str], ...] = (
    (
        "Twilio Verify",
        "$0.05 per successful verification, plus channel fees (third-party: "
        "https://www.github.com/modxcms/twilio/wiki, 2022-10-11)",
        "Twilio's own price page (https://www.twilio.com/en-us/verify/pricing) is not among the stored "
        "copies: not cited",
    ),
    (
        "Telnyx Verify",
        "$0.03 per successful verification plus channel cost (api-evangelist's FinOps file of "
        "2026-07-11, quoting https://telnyx.com/pricing/verify-api, marked not reconciled)",
        "Telnyx's page itself not read: not cited",
    ),
    (
        "Amazon Cognito user pools",
        "priced per monthly active user, not per verification (https://aws.amazon.com/cognito/pricing/)",
        "no per-MAU figure found in the stored copies: not compared",
    ),
)


def _latency(call: str) -> float:
    return LATENCY_MS.get(call, LATENCY_MS.get(call.split(".", 1)[0], 10.0))


def _calls_of(row: dict[str, Any]) -> list[str]:
    """The calls of one request of the flow (its most frequent shape)."""
    ops = row.get("operations") or []
    shape = ops[0] if ops else ""
    return [name for name in shape.split(" + ") if name and name != "(none)"]


def _flow_cost(row: dict[str, Any], cpu_s: float, memory_mb: int, http: bool) -> dict[str, float]:
    calls = _calls_of(row)
    cpu_ms = cpu_s * 1000 * max(1.0, VCPU_MB / memory_mb)
    duration = cpu_ms + sum(_latency(c) for c in calls)
    billed = math.ceil(duration)
    gbs = memory_mb / 1024 * billed / 1000
    others = row.get("other_calls", {})
    kms = sum(n for name, n in others.items() if name.startswith("kms."))
    ses = sum(n for name, n in others.items() if name.startswith("ses.Send"))
    log_bytes = row.get("log_bytes", 0) + len(PLATFORM_LINES.encode())
    usd = {
        "apigw": (1 if http else 0) * _p("apigw"),
        "lambda_request": _p("lambda_request"),
        "lambda_gbs": gbs * _p("lambda_gbs"),
        "ddb_read": row.get("read_units", 0) * _p("ddb_read"),
        "ddb_write": row.get("write_units", 0) * _p("ddb_write"),
        "kms": kms * _p("kms"),
        "ses": ses * _p("ses"),
        "sns": 0.0,
        "logs": log_bytes * _p("logs"),
    }
    return {
        "cpu_ms": cpu_ms,
        "wait_ms": duration - cpu_ms,
        "billed_ms": billed,
        "gbs": gbs,
        "read_units": row.get("read_units", 0),
        "write_units": row.get("write_units", 0),
        "kms": kms,
        "ses": ses,
        "log_bytes": log_bytes,
        "stream_records": row.get("stream_records", 0),
        "items_created": row.get("items_created", 0),
        "usd": usd,
        "total": sum(usd.values()),
    }


def _p(key: str) -> float:
    price = PRICES[key]
    return price.usd / price.per


def _scale(cost: dict[str, float], times: float) -> dict[str, float]:
    return {key: value * times for key, value in cost.items()}


def model(inprocess: dict[str, Any]) -> dict[str, Any]:
    """The two scenarios' cost per 1,000, line by line, from the in-process figures."""
    from bench.inprocess import ROUTES

    memory = int(inprocess.get("memory_mb") or 128)
    rows = {r["flow"]: r for r in inprocess["flows"] if r.get("present")}
    cpu = {r["flow"]: r["function_cpu"] for r in inprocess["own"]}
    flows = {
        name: _flow_cost(rows[name], cpu.get(name, 0.0), memory, name in ROUTES)
        for name in rows
        if name in cpu
    }
    nothing = flows["delivery, nothing to mail"]
    present = inprocess.get("present", {})

    def scenario(steps: list[tuple[str, float]]) -> dict[str, Any]:
        lines: dict[str, float] = dict.fromkeys(PRICES, 0.0)
        parts = []
        records = created = 0.0
        writers = 0.0
        for name, times in steps:
            cost = flows[name]
            for key, usd in cost["usd"].items():
                lines[key] += usd * times
            parts.append(
                {"flow": name, "times": times, "usd": cost["total"] * times, "billed_ms": cost["billed_ms"]}
            )
            records += cost["stream_records"] * times
            if cost["stream_records"] and name not in OWN_BATCH:
                writers += times
            created += cost["items_created"] * times
        if any(name == "delivery event" for name, _ in steps):
            lines["sns"] += sum(t for n, t in steps if n == "delivery event") * _p("sns")
        # The records the other requests write reach the stream handler too: at low traffic each
        # request's records are a batch of their own (an invocation with nothing to mail); at full
        # batches 25 records share one. TTL deletions write one REMOVE record per item made, batched.
        extra = writers + created / STREAM_BATCH
        for key, usd in nothing["usd"].items():
            lines[key] += usd * extra
        parts.append(
            {
                "flow": "stream handler, nothing to mail (other requests' records, TTL deletions)",
                "times": extra,
                "usd": nothing["total"] * extra,
                "billed_ms": nothing["billed_ms"],
            }
        )
        total = sum(lines.values())
        return {
            "steps": parts,
            "lines_per_1000": {k: v * 1000 for k, v in lines.items()},
            "per_1000": total * 1000,
            "stream_records": records,
            "items_created": created,
            "invocations_low_traffic": extra,
            "invocations_full_batches": (records + created) / STREAM_BATCH,
        }

    complete: list[tuple[str, float]] = [("sign-in", 1), ("delivery", 1)]
    if present.get("delivery event") and "delivery event" in flows:
        complete.append(("delivery event", 2))
    if present.get("status") and "status" in flows:
        complete.append(("status", STATUS_POLLS))
    complete.append(("verify", 1))
    # the failed sign-in's own stream batch is "delivery, nothing to mail", counted once, as measured
    failed: list[tuple[str, float]] = [("sign-in, wrong password", 1), ("delivery, nothing to mail", 1)]
    return {
        "memory_mb": memory,
        "vcpu_share": min(1.0, memory / VCPU_MB),
        "flows": flows,
        "complete": scenario(complete),
        "failed": scenario(failed),
        "status_polls": STATUS_POLLS if present.get("status") else 0,
        "ses_events": 2 if present.get("delivery event") else 0,
    }


def measure(size: dict[str, int], inprocess: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cost model of the in-process figures (run that part first, in the same invocation)."""
    if not inprocess or inprocess.get("ok") is False:
        raise RuntimeError("needs the in-process part's figures: run it in the same invocation")
    return model(inprocess)


def _usd(value: float) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def summary(cost: dict[str, Any] | None) -> list[Measure]:
    complete = Measure("Cost of 1,000 complete sign-ins (us-east-1 list prices)", "-")
    failed = Measure("Cost of 1,000 failed sign-ins (wrong password)", "-")
    if cost is not None:
        complete.measured(_usd(cost["complete"]["per_1000"]))
        failed.measured(_usd(cost["failed"]["per_1000"]))
    return [complete, failed]


_LINE_NAMES = {
    "apigw": "API Gateway requests",
    "lambda_request": "Lambda requests",
    "lambda_gbs": "Lambda duration (GB-s)",
    "ddb_read": "DynamoDB read units",
    "ddb_write": "DynamoDB write units",
    "kms": "KMS (Sign)",
    "ses": "SES messages",
    "sns": "SNS publishes (SES events)",
    "logs": "CloudWatch Logs ingestion",
}


def sections(cost: dict[str, Any]) -> list[Section]:
    memory = cost["memory_mb"]
    flows = Table(
        [
            "flow",
            f"CPU at {memory} MB (ms)",
            "waiting on AWS (ms)",
            "billed ms",
            "read / write units",
            "KMS / SES",
            "log bytes (with Lambda's lines)",
            "$ per 1,000",
        ],
        [
            [
                name,
                f"{c['cpu_ms']:.1f}",
                f"{c['wait_ms']:.0f}",
                c["billed_ms"],
                f"{c['read_units']:g} / {c['write_units']:g}",
                f"{c['kms']:g} / {c['ses']:g}",
                f"{c['log_bytes']:,.0f}",
                _usd(c["total"] * 1000),
            ]
            for name, c in cost["flows"].items()
        ],
    )
    lines = Table(
        ["line", "1,000 complete sign-ins", "1,000 failed sign-ins"],
        [
            [
                _LINE_NAMES[key],
                _usd(cost["complete"]["lines_per_1000"][key]),
                _usd(cost["failed"]["lines_per_1000"][key]),
            ]
            for key in PRICES
        ]
        + [
            [
                "**total**",
                f"**{_usd(cost['complete']['per_1000'])}**",
                f"**{_usd(cost['failed']['per_1000'])}**",
            ]
        ],
    )
    steps = "; ".join(f"{s['flow']} × {s['times']:g}" for s in cost["complete"]["steps"])
    hosted = Table(
        ["hosted service", "published price per verification", "citation"],
        [[name, price, note] for name, price, note in HOSTED],
    )
    per = cost["complete"]["per_1000"] / 1000
    return [
        Section(
            TITLES[0],
            [
                lines,
                f"A complete sign-in here is: {steps}. A failed one: a wrong password (401) and the stream "
                "batch of its counter updates, plus the same share of later stream batches. "
                f"Per complete sign-in: **{_usd(per)}**.",
                flows,
                f"Each flow's Lambda duration = its own CPU time on this machine (through the app, minus the "
                f"emulator's share of the same calls made bare, plus argon2) × {VCPU_MB}/{memory} (Lambda "
                f"gives one vCPU at {VCPU_MB} MB and a proportional share below: {cost['vcpu_share']:.3f} of "
                "one at the configured "
                f"{memory} MB of `.chalice/config.json`) + for each AWS call an assumed wait: "
                + ", ".join(f"{k} {v:g} ms" for k, v in LATENCY_MS.items())
                + " (AWS states single-digit milliseconds for DynamoDB; the others are not published and "
                "are assumptions). CPU-bound work costs the same GB-seconds at any memory below "
                f"{VCPU_MB} MB (half the memory, twice the time), so argon2 dominates the duration and its "
                "price. Request units are the measured medians from the exact item sizes; log bytes are "
                "what each request wrote, plus Lambda's START/END/REPORT lines "
                f"({len(PLATFORM_LINES.encode())} bytes). Stream: each request that writes items sends "
                "its records to the stream handler; at low traffic each is an invocation of its own with "
                f"nothing to mail, at full batches {STREAM_BATCH} records share one "
                f"({cost['complete']['invocations_low_traffic']:.2f} invocations per complete sign-in as "
                f"priced, {cost['complete']['invocations_full_batches']:.2f} at full batches); TTL "
                "deletions add one REMOVE record per item made, batched. Lambda's reads of the stream are "
                f"free ({STREAMS_FREE}). The status polls per sign-in ({cost['status_polls']}) and SES "
                f"events per mail ({cost['ses_events']}: Send, Delivery) are assumptions; 0 where the app "
                "has no such flow.",
                "Not in the totals: storage (items, logs kept), the KMS key's $1 a month, data transfer, "
                "free tiers, the SES event path's SNS deliveries, cold starts (a cold container's init "
                "duration, see the cold start section, is billed too).",
                "Beside hosted services (per verification, list prices, only where a figure could be read):",
                hosted,
            ],
            console=True,
        )
    ]
