"""The bench still runs: a smoke run of its quick parts (cold start, in-process, cost model).

Benchmarks are not tests, so no time is asserted here. Only facts are: the
AWS calls each flow makes, against the bench's own targets (counted with
botocore's hooks), that importing the app creates no AWS client and touches
no network, that every cold run answered and was timed, and that the cost
model adds up from what was measured. The item sizing and the log meter
the bench relies on are checked on their own, without a run.
"""

from __future__ import annotations

import io
import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.capacity import changes, item_size, targets, units
from bench.cost import PRICES
from bench.inprocess import LOOP, OPTIONAL, TARGETS, meets
from bench.logmeter import LogMeter

ROOT = Path(__file__).resolve().parent.parent
# Bounds for a hung run only, never a speed target: the smoke run takes about a minute
# alone and took several beside other CPU-bound jobs, so it may take 10 minutes,
# and this module's tests get a pytest timeout above that (the default is 300 s).
SMOKE_SECONDS = 600
pytestmark = pytest.mark.timeout(SMOKE_SECONDS + 300)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    results = ROOT / "bench" / "RESULTS.md"
    before = results.read_bytes() if results.exists() else None
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_SECONDS,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (results.read_bytes() if results.exists() else None) == before, "a smoke run wrote RESULTS.md"
    assert done.stdout.startswith("# Benchmarks"), done.stdout[:500]  # nothing of the app's logs before it
    return json.loads(out.read_text())


def test_every_flow_meets_its_round_trip_target(smoke):
    """Against the bench's own targets (``bench.inprocess.TARGETS``), never a copy of them."""
    rows = {row["flow"]: row for row in smoke["inprocess"]["flows"]}
    assert set(rows) == set(LOOP)
    for flow, row in rows.items():
        if not row["present"]:
            assert flow in OPTIONAL, f"{flow} is not optional"
            continue
        assert row["requests"] >= 1
        assert max(row["dynamodb_counts_seen"]) == row["dynamodb_calls"]
        assert meets(flow, row["per_target"]), row
        assert row["met"], row
    checked = [row for row in smoke["inprocess"]["extras"] if row["flow"] in TARGETS]
    assert {row["flow"] for row in checked} >= {"sign-up", "sign-up verify", "reset", "reset confirm"}
    for row in checked:
        assert row["met"], row


def test_verify_is_the_guess_and_the_device_in_dynamodb_and_one_kms_sign(smoke):
    rows = {row["flow"]: row for row in smoke["inprocess"]["flows"]}
    assert rows["verify"]["dynamodb_operations"] == ["dynamodb.UpdateItem + dynamodb.UpdateItem"]
    assert rows["verify"]["other_calls"] == {"kms.Sign": 1.0}
    assert rows["verify, wrong code"]["dynamodb_operations"] == ["dynamodb.UpdateItem"]
    assert rows["verify, wrong code"]["other_calls"] == {}
    assert rows["delivery"]["other_calls"] == {"ses.SendRawEmail": 1.0}
    assert rows["delivery"]["mails"] == rows["delivery"]["requests"]
    warm = {row["flow"]: row for row in smoke["inprocess"]["extras"]}
    for path in ("/.well-known/jwks.json", "/.well-known/openid-configuration"):
        assert warm[f"GET {path}, warm"]["operations"] == "(none)"


def test_every_dynamodb_call_was_sized_and_the_app_logged_what_it_did(smoke):
    for row in smoke["inprocess"]["flows"]:
        if not row["present"]:
            continue
        assert row["units_sized"], row["flow"]
        if row["dynamodb_calls"]:
            assert row["read_units"] + row["write_units"] >= 1, row["flow"]
    rows = {row["flow"]: row for row in smoke["inprocess"]["flows"]}
    # every write of a transaction counts twice: a sign-in's two transactions are at least 2 x 2 items
    assert rows["sign-in"]["write_units"] >= 8
    assert rows["sign-in"]["log_bytes"] > 0 and rows["verify"]["log_bytes"] > 0


def test_the_bare_replay_made_the_same_calls_with_the_same_outcomes(smoke):
    inprocess = smoke["inprocess"]
    assert inprocess["replay_failures"] == inprocess["original_failures"]
    # the only failing call of the flows: a new container looks for a previous token key, and there is none
    assert inprocess["original_errors"] in ([], ["NotFoundException"])
    assert inprocess["original_failures"] <= 1


def test_importing_the_app_creates_no_aws_client_and_makes_no_network_call(smoke):
    cold = smoke["coldstart"]
    assert cold["clients_at_import"] == []
    assert cold["network_at_import"] == []


def test_every_cold_run_answered_and_was_timed(smoke):
    cold = smoke["coldstart"]
    assert cold["repeats"] == 2
    assert set(cold["times"]) == {"sign-in", "verify", "floor"}
    assert all(len(times) == 2 and all(t > 0 for t in times) for times in cold["times"].values())
    assert cold["calls"]["floor"] == ["dynamodb.GetItem"]
    assert cold["calls"]["sign-in"][0] == "dynamodb.GetItem"
    assert "kms.Sign" in cold["calls"]["verify"]
    assert set(cold["ratio"]) == {"sign-in", "verify"}


def test_the_cost_model_adds_up_from_what_was_measured(smoke):
    cost = smoke["cost"]
    for name in ("complete", "failed"):
        scenario = cost[name]
        assert math.isclose(sum(scenario["lines_per_1000"].values()), scenario["per_1000"], rel_tol=1e-9)
        assert scenario["per_1000"] > 0
    complete, failed = cost["complete"]["lines_per_1000"], cost["failed"]["lines_per_1000"]
    # one mail and one token per complete sign-in; none for a failed one
    assert math.isclose(complete["ses"], 1000 * PRICES["ses"].usd / PRICES["ses"].per)
    assert math.isclose(complete["kms"], 1000 * PRICES["kms"].usd / PRICES["kms"].per)
    assert failed["ses"] == failed["kms"] == 0
    assert cost["complete"]["per_1000"] > cost["failed"]["per_1000"]
    # argon2 alone keeps a wrong password's function busy: its billed time is never below its share
    assert cost["flows"]["sign-in, wrong password"]["cpu_ms"] > 0


# ---------------------------------------------------------------- no run needed


def test_item_sizes_follow_dynamodbs_rules():
    assert item_size({"pk": {"S": "user#a"}}) == 2 + 6
    assert item_size({"n": {"N": "123"}}) == 1 + 2 + 1  # two bytes for three digits, plus one
    assert item_size({"n": {"N": "-0.0500"}}) == 1 + 1 + 1 + 1  # "5": one digit, one byte, sign
    assert item_size({"b": {"B": b"\x00" * 16}}) == 1 + 16
    assert item_size({"f": {"BOOL": True}}) == 1 + 1
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (2 + 1) + (2 + 1)
    assert item_size(None) == 0


def test_request_units_of_reads_writes_and_transactions():
    keys = lambda table: ("pk",)  # noqa: E731
    get = targets("GetItem", {"TableName": "t", "Key": {"pk": {"S": "a"}}, "ConsistentRead": True}, keys)
    assert units(get, [0], [0]).read == 1  # a missing item costs a read too
    assert units(get, [5000], [5000]).read == 2
    update = targets("UpdateItem", {"TableName": "t", "Key": {"pk": {"S": "a"}}}, keys)
    assert units(update, [100], [1500]).write == 2  # the larger of before and after
    tx = targets(
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}, "x": {"S": "y"}}}},
                {"Update": {"TableName": "t", "Key": {"pk": {"S": "b"}}}},
                {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "c"}}}},
            ]
        },
        keys,
    )
    assert [role for _, role, _ in tx] == ["tx-write", "tx-write", "tx-check"]
    both = units(tx, [0, 100, 100], [50, 120, 100])
    assert (both.write, both.read) == (4, 2)
    assert changes(tx, [0, 100, 100], [50, 120, 100]) == (2, 1)
    assert not units(targets("Scan", {"TableName": "t"}, keys), [], []).sized


def test_the_log_meter_counts_what_handlers_and_prints_write():
    logger = logging.getLogger("bench-smoke-meter")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    meter = LogMeter().install()
    try:
        logger.warning("héllo")
        print("12345")
        written = meter.take()
    finally:
        meter.uninstall()
        logger.removeHandler(handler)
    assert written == (len("héllo\n".encode()) + len("12345\n"), 2)
    assert stream.getvalue() == ""  # counted, not shown
