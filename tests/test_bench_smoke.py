"""The bench still runs: a smoke run of its in-process parts.

Benchmarks are not tests, so no time is asserted here. Only facts are:
the AWS calls each flow makes (counted with botocore's hooks), and that
importing the app creates no AWS client and touches no network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.inprocess import FLOWS, meets

ROOT = Path(__file__).resolve().parent.parent
# Bounds for a hung run only, never a speed target: the smoke run takes about 15 s
# alone and took 180 s beside other CPU-bound jobs, so it may take 10 minutes,
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
    assert "# Benchmarks" in done.stdout
    return json.loads(out.read_text())


def test_round_trips_per_flow_meet_the_targets(smoke):
    """Against the bench's own targets (``bench.inprocess.TARGETS``), never a copy of them."""
    rows = {row["flow"]: row for row in smoke["inprocess"]["round_trips"]}
    assert set(rows) == set(FLOWS)
    for flow, row in rows.items():
        assert row["requests"] >= 1
        assert max(row["counts_seen"]) == row["calls"]
        assert meets(flow, row["calls"]), row
        assert row["met"], row


def test_verify_is_the_guess_the_device_and_a_signature_and_delivery_includes_the_ses_call(smoke):
    rows = {row["flow"]: row for row in smoke["inprocess"]["round_trips"]}
    # the right code: the guess, the device token on the account, the signature
    assert rows["verify"]["operations"] == ["dynamodb.UpdateItem + dynamodb.UpdateItem + kms.Sign"]
    assert any("ses.SendRawEmail" in ops for ops in rows["delivery"]["operations"])


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
    assert cold["repeats"] == 2 and all(len(times) == 2 for times in cold["times"].values())
