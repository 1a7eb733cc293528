"""The production deployment, checked with no AWS access.

* provisioning (``simple-otp provision``, ops.provision) against moto:
  exactly the resources the app needs, twice in a row, and its teardown;
* ``chalice package --stage dev``: the template passes cfn-lint, wires the
  stream ARN, the SES events topic and the IAM policies from configuration,
  gives every function the Powertools layer, carries the alarms, and the
  Lambda package holds no boto3/botocore nor Powertools (its size is printed);
* ``chalice deploy --stage dev`` against moto server, as far as moto goes.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chalicelib import aws, keys
from devstack.environment import without
from devstack.local_ses import install_event_destinations
from ops import OpsError, cli, stage
from ops.policies import FUNCTIONS, function_name
from ops.provision import ensure_code_key, ensure_table, provision, sender_address, table_definition
from ops.stage import stage_environment

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STAGE = "dev"
APP = "simple-otp"
# Lambda's python3.11 runtime runs on Amazon Linux 2: glibc 2.26.
LAMBDA_GLIBC = (2, 26)
PACKAGE_BUDGET_BYTES = 1024 * 1024


def dev_env() -> dict[str, str]:
    return stage_environment(STAGE)


# ---------------------------------------------------------------- provisioning (in-process moto)


def _missing_configuration_set_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """SES answers NotFoundException for a configuration set that is not there; moto raises a
    KeyError. Deprovisioning twice relies on the answer SES gives."""
    from moto.ses.exceptions import NotFoundException
    from moto.sesv2.models import SESV2Backend

    original = SESV2Backend.delete_configuration_set

    def delete(backend: Any, configuration_set_name: str) -> None:
        if configuration_set_name not in backend.core_backend.config_sets:
            raise NotFoundException(f"Configuration set <{configuration_set_name}> does not exist.")
        original(backend, configuration_set_name)

    monkeypatch.setattr(SESV2Backend, "delete_configuration_set", delete)


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process moto, with os.environ put back afterwards (the CLI fills it).

    moto has no SES API v2 event destinations: the local stack's emulator adds them."""
    from moto import mock_aws

    install_event_destinations()
    _missing_configuration_set_is_not_found(monkeypatch)
    saved = dict(os.environ)
    try:
        with mock_aws():
            aws.reset()
            keys.forget()
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        aws.reset()


def _without_otp_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let ``--stage dev`` supply the OTP_* settings (the test ones would win)."""
    for name in list(os.environ):
        if name.startswith("OTP_"):
            monkeypatch.delenv(name)


def _inventory() -> dict[str, Any]:
    ddb, ssm, ses = aws.client("dynamodb"), aws.client("ssm"), aws.client("ses")
    sesv2, sns = aws.client("sesv2"), aws.client("sns")
    return {
        "tables": ddb.list_tables()["TableNames"],
        "parameters": [(p["Name"], p["Type"]) for p in ssm.describe_parameters()["Parameters"]],
        "identities": ses.list_identities()["Identities"],
        "configuration_sets": sesv2.list_configuration_sets()["ConfigurationSets"],
        "topics": [t["TopicArn"].rsplit(":", 1)[1] for t in sns.list_topics()["Topics"]],
    }


def _provision_dev(env: dict[str, str]) -> dict[str, Any]:
    return provision(
        env["OTP_TABLE_NAME"],
        env["OTP_KEY_PARAMETER"],
        env["OTP_SENDER"],
        env["OTP_TOKEN_KEY_ID"],
        env["OTP_SES_CONFIGURATION_SET"],
        env["OTP_SES_EVENTS_TOPIC"],
    )


def test_provision_creates_exactly_what_the_app_needs_twice_in_a_row(moto_aws):
    env = dev_env()
    table, parameter, sender = env["OTP_TABLE_NAME"], env["OTP_KEY_PARAMETER"], env["OTP_SENDER"]
    token_key = env["OTP_TOKEN_KEY_ID"]
    configuration_set, topic = env["OTP_SES_CONFIGURATION_SET"], env["OTP_SES_EVENTS_TOPIC"]
    first = _provision_dev(env)
    ddb, ssm, kms = aws.client("dynamodb"), aws.client("ssm"), aws.client("kms")
    key = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]
    signing = kms.describe_key(KeyId=token_key)["KeyMetadata"]

    second = _provision_dev(env)

    assert first["key_created"] is True and second["key_created"] is False
    assert first["token_key_created"] is True and second["token_key_created"] is False
    assert kms.describe_key(KeyId=token_key)["KeyMetadata"]["KeyId"] == signing["KeyId"], "token key replaced"
    assert (signing["KeySpec"], signing["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    ours = [
        a["AliasName"] for a in kms.list_aliases()["Aliases"] if not a["AliasName"].startswith("alias/aws/")
    ]
    assert ours == [token_key]
    assert second["stream_arn"] == first["stream_arn"]
    assert _inventory() == {
        "tables": [table],
        "parameters": [(parameter, "SecureString")],
        "identities": [sender_address(sender)],
        "configuration_sets": [configuration_set],
        "topics": [topic],
    }
    # SES's events: the set, created once, publishes every event type to the topic the app subscribes to
    assert first["configuration_set_created"] is True and second["configuration_set_created"] is False
    assert (first["event_destination"], second["event_destination"]) == ("created", "kept")
    assert second["events_topic_arn"] == first["events_topic_arn"]
    assert first["events_topic_arn"].endswith(f":{topic}")
    (destination,) = aws.client("sesv2").get_configuration_set_event_destinations(
        ConfigurationSetName=configuration_set
    )["EventDestinations"]
    assert destination["SnsDestination"]["TopicArn"] == first["events_topic_arn"]
    assert destination["Enabled"] is True
    assert {"SEND", "DELIVERY", "DELIVERY_DELAY", "BOUNCE", "COMPLAINT", "REJECT"} <= set(
        destination["MatchingEventTypes"]
    )
    description = ddb.describe_table(TableName=table)["Table"]
    assert description["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert description["StreamSpecification"] == stream
    assert description["LatestStreamArn"] == first["stream_arn"]
    assert description["SSEDescription"]["Status"] == "ENABLED"
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    kept = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]
    assert (kept["Value"], kept["Version"]) == (key["Value"], key["Version"]), "the code key was rotated"
    assert len(keys.decode_key(kept["Value"])) == 32
    assert second["sender_status"] == "verified"  # moto verifies at once; AWS waits for the click


def test_provision_completes_a_table_made_without_stream_or_ttl(moto_aws):
    env = dev_env()
    table = env["OTP_TABLE_NAME"]
    bare = {k: v for k, v in table_definition(table).items() if k != "StreamSpecification"}
    aws.client("dynamodb").create_table(**bare)

    stream_arn = ensure_table(table)

    description = aws.client("dynamodb").describe_table(TableName=table)["Table"]
    assert description["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert description["LatestStreamArn"] == stream_arn
    ttl = aws.client("dynamodb").describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"


def test_provision_refuses_what_it_cannot_fix(moto_aws, capsys, monkeypatch):
    env = dev_env()
    table, parameter = env["OTP_TABLE_NAME"], env["OTP_KEY_PARAMETER"]
    definition = table_definition(table)
    definition["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    aws.client("dynamodb").create_table(**definition)
    with pytest.raises(OpsError, match="KEYS_ONLY"):
        provision(table, parameter, env["OTP_SENDER"], env["OTP_TOKEN_KEY_ID"])

    aws.client("ssm").put_parameter(Name="/plain/key", Value="x", Type="String")
    with pytest.raises(OpsError, match="not a SecureString"):
        ensure_code_key("/plain/key")

    _without_otp_settings(monkeypatch)
    assert cli.main(["provision", "--stage", STAGE], out=io.StringIO()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "KEYS_ONLY" in err[0]


def test_provision_cli_writes_config_and_policies(moto_aws, tmp_path, monkeypatch):
    config = tmp_path / ".chalice" / "config.json"
    config.parent.mkdir()
    shutil.copy(ROOT / ".chalice" / "config.json", config)
    monkeypatch.setattr(stage, "CONFIG", config)
    _without_otp_settings(monkeypatch)

    out = io.StringIO()
    assert cli.main(["provision", "--stage", STAGE, "--write-config"], out=out) == 0
    text = out.getvalue()
    stream_arn = re.search(r"^OTP_STREAM_ARN=(\S+)$", text, re.M)[1]
    assert "code key /simple-otp/dev/code-key created" in text

    before = json.loads((ROOT / ".chalice" / "config.json").read_text())
    after = json.loads(config.read_text())
    before["stages"][STAGE]["environment_variables"]["OTP_STREAM_ARN"] = stream_arn
    assert after == before, "only the stage's stream ARN may change"
    send_code = json.loads((config.parent / "policy-dev-send_code.json").read_text())
    assert stream_arn in json.dumps(send_code)

    again = io.StringIO()
    assert cli.main(["--stage", STAGE, "provision", "--write-config"], out=again) == 0
    assert "kept" in again.getvalue() and "updated" not in again.getvalue()
    assert cli.main(["--stage", STAGE, "policy", "--check"], out=io.StringIO()) == 0


def test_deprovision_removes_it_all_and_asks_first(moto_aws, monkeypatch, capsys):
    _without_otp_settings(monkeypatch)
    env = dev_env()
    _provision_dev(env)
    token_key = aws.client("kms").describe_key(KeyId=env["OTP_TOKEN_KEY_ID"])["KeyMetadata"]["KeyId"]

    assert cli.main(["deprovision", "--stage", STAGE], out=io.StringIO()) == 2
    assert "--yes" in capsys.readouterr().err
    assert _inventory()["tables"] == [env["OTP_TABLE_NAME"]]

    out = io.StringIO()
    assert cli.main(["deprovision", "--stage", STAGE, "--yes"], out=out) == 0
    assert out.getvalue().count("deleted") == 6
    assert _inventory() == {
        "tables": [],
        "parameters": [],
        "identities": [],
        "configuration_sets": [],
        "topics": [],
    }
    kms = aws.client("kms")
    assert [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == env["OTP_TOKEN_KEY_ID"]] == []
    assert kms.describe_key(KeyId=token_key)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    again = io.StringIO()
    assert cli.main(["deprovision", "--stage", STAGE, "--yes"], out=again) == 0
    assert "nothing to delete" in again.getvalue()


# ---------------------------------------------------------------- chalice package


# The checkout's Python folders besides chalicelib: the operator CLI (run from the
# copy as ``python -m ops``), and what must stay out of the Lambda package.
BESIDE_THE_APP = ("ops", "devstack", "tests", "bench")


EXTRAS = Path(".chalice") / "template-extras.json"


def copy_project(target: Path) -> Path:
    """The checkout's Python layout, copied: builds never touch the shared checkout."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "app.py", target)
    shutil.copy(ROOT / "requirements.txt", target)
    skip = shutil.ignore_patterns("__pycache__")
    for folder in ("chalicelib", *BESIDE_THE_APP):
        shutil.copytree(ROOT / folder, target / folder, ignore=skip)
    if (ROOT / "vendor").is_dir():
        shutil.copytree(ROOT / "vendor", target / "vendor")
    (target / ".chalice").mkdir()
    for path in (ROOT / ".chalice").glob("*.json"):
        shutil.copy(path, target / ".chalice")
    return target


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for chalice and the operator CLI: no test or stage settings leak in."""
    env = without(os.environ)
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    env.update(extra)
    return env


@dataclass
class Package:
    template: dict[str, Any]
    template_path: Path
    zip_path: Path


_packages: list[Package] = []


def built_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """``chalice package --stage dev`` of a copy of the checkout, built once per test run.

    tests/test_packaging.py opens the same zip (through its own fixture).
    """
    if not _packages:
        _packages.append(_build_package(tmp_path_factory))
    return _packages[0]


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    return built_package(tmp_path_factory)


def _build_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    project = copy_project(tmp_path_factory.mktemp("package") / "project")
    out = project / "out"
    result = subprocess.run(
        # as docs/deploy.md packages it: with the template extras Chalice has no option for
        [str(BIN / "chalice"), "package", "--stage", STAGE, "--merge-template", str(EXTRAS), str(out)],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    template_path = out / "sam.json"
    return Package(json.loads(template_path.read_text()), template_path, out / "deployment.zip")


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_package_template_passes_cfn_lint(package):
    result = subprocess.run(
        [str(BIN / "cfn-lint"), str(package.template_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_template_takes_stream_and_policies_from_config(package):
    env = dev_env()
    functions = _resources(package.template, "AWS::Serverless::Function")
    assert set(functions) == {"APIHandler", "SendCode", "DeliveryEvents"}
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.11"
        assert props["Environment"]["Variables"] == {**env}
    (event,) = functions["SendCode"]["Properties"]["Events"].values()
    assert event["Type"] == "DynamoDB"
    assert event["Properties"]["Stream"] == env["OTP_STREAM_ARN"]
    assert event["Properties"]["StartingPosition"] == "TRIM_HORIZON"
    # a record that keeps failing is retried a bounded number of times, split off from
    # the rest of its batch, and dropped once its code is long dead: it cannot hold up the shard
    assert event["Properties"]["MaximumRetryAttempts"] == 10
    assert event["Properties"]["BisectBatchOnFunctionError"] is True
    assert event["Properties"]["MaximumRecordAgeInSeconds"] == 3600
    assert "arn:aws" not in (ROOT / "app.py").read_text(), "the stream ARN belongs in config.json"
    # SES's events reach the delivery handler through the stage's topic
    (sns,) = functions["DeliveryEvents"]["Properties"]["Events"].values()
    assert sns["Type"] == "SNS"
    topic = sns["Properties"]["Topic"]["Fn::Sub"]
    assert (
        topic
        == f"arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:{env['OTP_SES_EVENTS_TOPIC']}"
    )

    def policy(function: str) -> dict[str, Any]:
        return json.loads((ROOT / ".chalice" / f"policy-dev-{function}.json").read_text())

    expected = {
        "ApiHandlerRole": policy("api_handler"),
        "SendCodeRole": policy("send_code"),
        "DeliveryEventsRole": policy("delivery_events"),
    }
    roles = _resources(package.template, "AWS::IAM::Role")
    assert set(roles) == set(expected)
    for name, role in roles.items():
        (role_policy,) = role["Properties"]["Policies"]
        assert role_policy["PolicyDocument"] == expected[name]
    for function, role in (
        ("APIHandler", "ApiHandler"),
        ("SendCode", "SendCode"),
        ("DeliveryEvents", "DeliveryEvents"),
    ):
        assert functions[function]["Properties"]["Role"] == {"Fn::GetAtt": [f"{role}Role", "Arn"]}
    assert "EndpointURL" in package.template["Outputs"]


# The AWS-managed Powertools layer: account 017000801446, one layer per Python
# version and architecture, and its version number (docs/deploy.md says which
# aws-lambda-powertools release it holds, pinned in requirements-dev.txt).
_LAYER = re.compile(
    r"^arn:aws:lambda:(?P<region>[a-z0-9-]+):017000801446:layer:"
    r"AWSLambdaPowertoolsPythonV3-(?P<python>python3\d+)-(?P<arch>x86_64|arm64):(?P<version>\d+)$"
)


def _layer_pin() -> tuple[str, str]:
    """The aws-lambda-powertools version requirements-dev.txt pins, and the layer its line names."""
    (line,) = [
        line
        for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
        if line.startswith("aws-lambda-powertools==")
    ]
    version = line.split("==", 1)[1].split()[0]
    layer = re.search(r"AWSLambdaPowertoolsPythonV3-\S+:\d+", line)
    assert layer, "requirements-dev.txt: say which layer the pinned Powertools matches"
    return version, layer[0]


def test_every_function_runs_with_the_powertools_layer_of_its_runtime(package):
    env = dev_env()
    region = env["OTP_STREAM_ARN"].split(":")[3]
    (configured,) = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][STAGE]["layers"]
    match = _LAYER.match(configured)
    assert match, configured
    functions = _resources(package.template, "AWS::Serverless::Function")
    for name, function in functions.items():
        props = function["Properties"]
        assert props["Layers"] == [configured], name
        assert match["python"] == props["Runtime"].replace(".", ""), f"{name}: layer for another Python"
        assert [match["arch"]] == props["Architectures"], f"{name}: layer for another architecture"
    assert match["region"] == region, "a layer is used from the function's own region"
    version, layer = _layer_pin()
    assert configured.endswith(layer), "requirements-dev.txt pins another layer's Powertools"
    deploy_doc = (ROOT / "docs" / "deploy.md").read_text()
    assert layer in deploy_doc and f"aws-lambda-powertools {version}" in deploy_doc
    requirements = (ROOT / "requirements.txt").read_text().lower()
    assert "powertools" not in requirements, "Powertools comes from the layer, not the zip"


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in _resources(template, "AWS::CloudWatch::Alarm").items()}


def _metric(alarm: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
    return alarm["Namespace"], alarm["MetricName"], dimensions


def test_package_template_carries_the_alarms(package):
    from chalicelib import observe

    env = dev_env()
    template = package.template
    (topic,) = _resources(template, "AWS::SNS::Topic")
    assert template["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": topic}
    alarms = _alarms(template)
    notify = [{"Ref": topic}]
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == notify and alarm["OKActions"] == notify, name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["EvaluationPeriods"] == 1, name

    def one(namespace: str, metric: str) -> dict[str, Any]:
        (found,) = [
            a for a in alarms.values() if a.get("Namespace") == namespace and a.get("MetricName") == metric
        ]
        return found

    mail = one(observe.NAMESPACE, observe.MAIL_FAILED)
    assert _metric(mail)[2] == {"service": observe.SERVICE}
    assert (mail["Statistic"], mail["Period"], mail["Threshold"]) == ("Sum", 300, 1)
    assert mail["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

    api = one("AWS/ApiGateway", "5XXError")
    rest_api = template["Resources"]["RestAPI"]
    assert _metric(api)[2] == {
        "ApiName": rest_api["Properties"]["DefinitionBody"]["info"]["title"],
        "Stage": rest_api["Properties"]["StageName"],
    }
    assert (api["Statistic"], api["Period"], api["Threshold"]) == ("Sum", 300, 1)
    assert template["Resources"]["ApiServerErrorsAlarm"]["DependsOn"] == "RestAPI"

    (throttles,) = [a for a in alarms.values() if "Metrics" in a]
    stats = {m["Id"]: m["MetricStat"] for m in throttles["Metrics"] if "MetricStat" in m}
    assert {s["Metric"]["MetricName"] for s in stats.values()} == {
        "ReadThrottleEvents",
        "WriteThrottleEvents",
    }
    for stat in stats.values():
        assert stat["Metric"]["Namespace"] == "AWS/DynamoDB"
        assert stat["Metric"]["Dimensions"] == [{"Name": "TableName", "Value": env["OTP_TABLE_NAME"]}]
        assert (stat["Stat"], stat["Period"]) == ("Sum", 300)
    (expression,) = [m for m in throttles["Metrics"] if "Expression" in m]
    assert expression["ReturnData"] is True and set(stats) <= set(
        re.findall(r"\w+", expression["Expression"])
    )
    assert (throttles["Threshold"], throttles["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")

    # half the rates at which SES places an account under review: 5 % bounces, 0.1 % complaints
    for metric, threshold in (("Reputation.BounceRate", 0.025), ("Reputation.ComplaintRate", 0.0005)):
        rate = one("AWS/SES", metric)
        assert _metric(rate)[2] == {}, "the account's rate, not one configuration set's"
        assert (rate["Threshold"], rate["ComparisonOperator"]) == (threshold, "GreaterThanThreshold")
    assert len(alarms) == 5


def _glibc_ok(tag: str) -> bool:
    if tag.endswith("-none-any"):
        return True
    match = re.search(r"manylinux_(\d+)_(\d+)_x86_64$", tag) or re.search(r"manylinux(2014)_x86_64$", tag)
    if not match:
        return False
    version = (2, 17) if match.group(1) == "2014" else (int(match.group(1)), int(match.group(2)))
    return version <= LAMBDA_GLIBC


def test_package_has_no_boto3_fits_lambda_and_its_size_is_reported(package, capsys):
    with zipfile.ZipFile(package.zip_path) as archive:
        names = archive.namelist()
        unpacked = sum(info.file_size for info in archive.infolist())
        wheels = {n: archive.read(n).decode() for n in names if n.endswith(".dist-info/WHEEL")}
    tops = {name.split("/")[0] for name in names}
    for forbidden in (
        "boto3",
        "botocore",
        "s3transfer",
        "jmespath",
        "moto",
        "pytest",
        "aws_lambda_powertools",
    ):
        assert not any(top == forbidden or top.startswith(forbidden + "-") for top in tops), forbidden
    assert {"app.py", "chalicelib", "argon2", "_argon2_cffi_bindings"} <= tops
    assert "chalicelib/store.py" in names
    for name, text in wheels.items():
        tags = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Tag: ")]
        assert any(_glibc_ok(tag) for tag in tags), f"{name}: no wheel tag Lambda's python3.11 can load"
    size = package.zip_path.stat().st_size
    with capsys.disabled():
        print(
            f"\n[package] chalice package --stage {STAGE}: deployment.zip {size} bytes (unzipped {unpacked})"
        )
    assert size < PACKAGE_BUDGET_BYTES, f"the Lambda package grew to {size} bytes"


# ---------------------------------------------------------------- chalice deploy against moto server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    install_event_destinations()  # before the server maps its routes
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _client(url: str, service: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client(service, endpoint_url=url)


def test_chalice_deploy_against_moto_server(moto_server, tmp_path):
    """Provision twice with the CLI, then deploy: moto takes every call up to
    API Gateway's ImportRestApi (docs/decisions.md says why it stops there)."""
    project = copy_project(tmp_path / "project")
    env = clean_env(AWS_ENDPOINT_URL=moto_server)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=300)

    # ``python -m ops`` (the same as simple-otp) run in the copy reads and rewrites the copy's config.
    command = [sys.executable, "-m", "ops", "provision", "--stage", STAGE, "--write-config"]
    first, second = run(*command), run(*command)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "code key /simple-otp/dev/code-key created" in first.stdout
    assert "code key /simple-otp/dev/code-key kept" in second.stdout
    stream_arn = re.search(r"^OTP_STREAM_ARN=(\S+)$", second.stdout, re.M)[1]
    config = json.loads((project / ".chalice" / "config.json").read_text())
    assert config["stages"][STAGE]["environment_variables"]["OTP_STREAM_ARN"] == stream_arn
    assert run(sys.executable, "-m", "ops", "policy", "--stage", STAGE, "--check").returncode == 0

    # moto finds a layer by its name and version in its own account only: publish a stand-in
    # of the AWS-managed Powertools layer under the same name until it has the same version.
    (layer,) = config["stages"][STAGE]["layers"]
    layer_name, layer_version = layer.split(":")[6], int(layer.split(":")[7])
    stand_in = io.BytesIO()
    with zipfile.ZipFile(stand_in, "w") as archive:
        archive.writestr("python/aws_lambda_powertools/__init__.py", "")
    lam = _client(moto_server, "lambda")
    for _ in range(layer_version):
        lam.publish_layer_version(LayerName=layer_name, Content={"ZipFile": stand_in.getvalue()})

    env["AWS_MAX_ATTEMPTS"] = "1"  # moto answers ImportRestApi with a 500: no retries
    deploy = run(str(BIN / "chalice"), "deploy", "--stage", STAGE)
    output = deploy.stdout + deploy.stderr
    if deploy.returncode == 0:
        pytest.fail(
            "chalice deploy now succeeds on moto: assert the API (chalice url, a POST /otp) here "
            f"and update docs/decisions.md\n{output}"
        )
    assert "ImportRestApi" in output, output  # the one call moto cannot take
    assert "Creating Rest API" in output

    iam = _client(moto_server, "iam")
    for function in FUNCTIONS:
        role = f"{APP}-{STAGE}-{function}"
        (policy_name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
        expected = json.loads((project / ".chalice" / f"policy-{STAGE}-{function}.json").read_text())
        assert document == expected, role
        if function == "send_code":
            assert stream_arn in json.dumps(document), "provision --write-config left the policy behind"
        trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}

    stage_env = stage_environment(STAGE, project / ".chalice" / "config.json")
    for role in FUNCTIONS:
        name = function_name(APP, STAGE, role)
        function = lam.get_function_configuration(FunctionName=name)
        handler = "app.app" if role == "api_handler" else f"app.{role}"
        assert function["Handler"] == handler and function["Runtime"] == "python3.11"
        assert function["Environment"]["Variables"] == stage_env
        assert function["Role"].endswith(f":role/{APP}-{STAGE}-{role}")
        assert [entry["Arn"].partition(":layer:")[2] for entry in function["Layers"]] == [
            layer.partition(":layer:")[2]
        ], name
    mappings = lam.list_event_source_mappings()["EventSourceMappings"]
    (mapping,) = [m for m in mappings if m["FunctionArn"].endswith(f":function:{APP}-{STAGE}-send_code")]
    assert mapping["EventSourceArn"] == stream_arn
    assert mapping["BatchSize"] == 25
