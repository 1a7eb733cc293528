"""The Lambda roles' IAM policies grant every AWS call the code makes, and no more.

Two independent checks of the policy generator (``ops.policies.role_policies``):

* dynamic: the app runs its flows against moto while every botocore call is
  recorded, attributed to the role that would make it in AWS (the routes'
  function, the stream handler's, which also owns Lambda's stream reads, or
  the handler of SES's delivery events, fed the events of the mail it sent);
  each call is mapped to the IAM action(s) AWS checks and the resource it
  names, and the policy must allow it;
* static: the source is scanned from the handlers in app.py down, so an AWS
  call that no flow here exercises is still caught.

A tiny policy evaluator (Allow statements, wildcards, StringEquals /
StringLike conditions) stands in for IAM.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from devstack.environment import DEMO_EMAIL
from devstack.testenv import TEST_ENV, sent_mail
from ops.policies import FUNCTIONS, function_name, policy_files, role_policies
from ops.provision import sender_address
from ops.stage import stage_environment

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".chalice" / "config.json"
DEPLOY_STAGE = "dev"

# Granted but never called by our code, with the reason.
NOT_CALLED_BY_CODE = {
    "logs:CreateLogGroup": "the Lambda runtime writes the function's logs",
    "logs:CreateLogStream": "the Lambda runtime writes the function's logs",
    "logs:PutLogEvents": "the Lambda runtime writes the function's logs",
    "kms:Decrypt": "SSM decrypts the SecureString; only needed for a customer managed key",
    "dynamodb:ListStreams": "Lambda's event source mapping, which reads the stream as this role",
}


# Method names the scan finds that are not calls of that service, with the reason.
NOT_AWS_CALLS = {
    ("kms", "Verify"): "argon2's PasswordHasher.verify; the service never verifies its own tokens",
}


# ---------------------------------------------------------------- the evaluator


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        if operator == "ForAnyValue:StringEquals":  # a multivalued key: any of its values listed
            if not all(set(context.get(key, "").split(",")) & set(_listed(w)) for key, w in tests.items()):
                return False
            continue
        if operator not in ("StringEquals", "StringLike"):
            return False  # unknown to this evaluator: treat as not holding
        for key, wanted in tests.items():
            actual = context.get(key)
            if actual is None:
                return False
            if operator == "StringEquals" and actual not in _listed(wanted):
                return False
            if operator == "StringLike" and not any(fnmatchcase(actual, w) for w in _listed(wanted)):
                return False
    return True


def allows(policy: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    for statement in policy["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, statement
        if statement["Effect"] != "Allow":
            continue
        if not any(fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"])):
            continue
        if not any(fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
            continue
        if _conditions_hold(statement.get("Condition", {}), context):
            return True
    return False


def granted_actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in _listed(s["Action"])}


# ---------------------------------------------------------------- calls -> IAM


@dataclass(frozen=True)
class Place:
    """Where the app runs: builds the ARNs IAM checks."""

    partition: str
    region: str
    account: str

    @classmethod
    def of(cls, stream_arn: str) -> Place:
        parts = stream_arn.split(":")
        return cls(parts[1], parts[3], parts[4])

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


@dataclass(frozen=True)
class Request:
    """One IAM authorization: what AWS checks for (a part of) one API call."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()


_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def iam_requests(
    place: Place, service: str, operation: str, params: dict[str, Any], iterators: dict[str, str]
) -> list[Request]:
    """The authorizations AWS makes for one call; unknown calls fail the test."""
    if service == "dynamodb":
        if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
            return [Request(f"dynamodb:{operation}", place.arn("dynamodb", f"table/{params['TableName']}"))]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [
                Request(f"dynamodb:{operation}", place.arn("dynamodb", f"table/{table}"))
                for table in params["RequestItems"]
            ]
        if operation == "TransactWriteItems":
            out = []
            for item in params["TransactItems"]:
                ((kind, body),) = item.items()
                table = place.arn("dynamodb", f"table/{body['TableName']}")
                out.append(Request(f"dynamodb:{_TRANSACT[kind]}", table))
            return out
    if service == "dynamodbstreams":
        if operation in ("DescribeStream", "GetShardIterator"):
            return [Request(f"dynamodb:{operation}", params["StreamArn"])]
        if operation == "GetRecords":
            return [Request("dynamodb:GetRecords", iterators[params["ShardIterator"]])]
        if operation == "ListStreams":
            table = params.get("TableName", "*")
            return [Request("dynamodb:ListStreams", place.arn("dynamodb", f"table/{table}/stream/*"))]
    if service == "ses" and operation in ("SendRawEmail", "SendEmail"):
        # SES authorizes the sending identity and, when the call names one, the configuration set
        address = sender_address(params["Source"])
        context = (("ses:FromAddress", address),)
        resources = [f"identity/{address}"]
        if params.get("ConfigurationSetName"):
            resources.append(f"configuration-set/{params['ConfigurationSetName']}")
        return [Request(f"ses:{operation}", place.arn("ses", resource), context) for resource in resources]
    if service == "kms" and operation in ("DescribeKey", "GetPublicKey", "Sign"):
        # IAM checks the key an alias names, with the key's aliases as kms:ResourceAliases
        key = params["KeyId"]
        if key.startswith("alias/"):
            arn, aliases = iterators.get(key, place.arn("kms", "key/unknown")), key
        else:
            arn, aliases = key, iterators.get(key, "")
        return [Request(f"kms:{operation}", arn, (("kms:ResourceAliases", aliases),))]
    if service == "ssm" and operation == "GetParameter":
        return [Request("ssm:GetParameter", place.arn("ssm", "parameter/" + params["Name"].lstrip("/")))]
    raise AssertionError(f"no IAM mapping for {service}.{operation}: add one to tests/test_iam_policy.py")


def denied(policy: dict[str, Any], requests: list[Request]) -> list[Request]:
    return [r for r in requests if not allows(policy, r.action, r.resource, dict(r.context))]


# ---------------------------------------------------------------- recording


@dataclass
class Recorder:
    """Every botocore call made in this process, tagged with the current role."""

    role: str = "setup"
    calls: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    iterators: dict[str, str] = field(default_factory=dict)

    def of(self, role: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [(service, op, params) for r, service, op, params in self.calls if r == role]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    from botocore.client import BaseClient

    record = Recorder()
    original = BaseClient._make_api_call

    def recording(client: Any, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        record.calls.append((record.role, service, operation, dict(params)))
        result = original(client, operation, params)
        if operation == "GetShardIterator":
            record.iterators[result["ShardIterator"]] = params["StreamArn"]
        if operation == "DescribeKey" and params["KeyId"].startswith("alias/"):
            arn = result["KeyMetadata"]["Arn"]  # the key behind the alias, and the alias of that key
            record.iterators[params["KeyId"]] = arn
            record.iterators[arn] = params["KeyId"]
        return result

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    yield record


def _as(recorder: Recorder, role: str) -> None:
    """From now on calls are made by ``role``; its container starts cold."""
    from chalicelib import keys, tokens

    recorder.role = role
    keys.forget()  # each function reads the code key in its own container
    tokens.forget()


def test_every_call_of_every_flow_is_granted_to_its_role(stack, recorder, clock, monkeypatch):
    _as(recorder, "api_handler")
    started = stack.sign_in()
    assert started.status_code == 200, started.body
    session = started.data["session_id"]
    assert stack.sign_in(DEMO_EMAIL, "wrong password").status_code == 401

    _as(recorder, "send_code")
    stack.pump()
    code = sent_mail()[-1].code

    _as(recorder, "api_handler")
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    assert stack.post("/otp/verify", {"session_id": session, "code": wrong}).status_code == 401
    clock.advance(60)
    resent = stack.post("/otp/resend", {"session_id": session})
    assert resent.status_code == 200, resent.body

    _as(recorder, "send_code")
    stack.pump()
    code = sent_mail()[-1].code

    _as(recorder, "api_handler")
    assert stack.post("/otp/verify", {"session_id": session, "code": code}).status_code == 200

    # sign-up and password reset
    monkeypatch.setattr(
        stack.app_module, "SETTINGS", dataclasses.replace(stack.app_module.SETTINGS, signup_enabled=True)
    )
    signup = stack.post("/signup", {"email": "joiner@example.com", "password": "a long new passphrase"})
    assert signup.status_code == 202, signup.body
    clock.advance(60)
    reset = stack.post("/password/reset", {"email": DEMO_EMAIL})
    assert reset.status_code == 202, reset.body
    _as(recorder, "send_code")
    stack.pump()
    codes_sent = {mail.to[0]: mail.code for mail in sent_mail()[-2:]}
    _as(recorder, "api_handler")
    joined = {"session_id": signup.data["session_id"], "code": codes_sent["joiner@example.com"]}
    assert stack.post("/signup/verify", joined).status_code == 201
    confirm = {"session_id": reset.data["session_id"], "code": codes_sent[DEMO_EMAIL]}
    confirm["new_password"] = "another long passphrase"
    assert stack.post("/password/reset/confirm", confirm).status_code == 200
    _as(recorder, "send_code")
    stack.pump()  # the "password changed" notice
    assert sent_mail()[-1].subject == "Your password was changed"

    # SES's events of that mail, through SNS: delivered, a permanent bounce, a complaint
    sends = [
        params for role, service, op, params in recorder.calls if (service, op) == ("ses", "SendRawEmail")
    ]
    assert sends and all(
        params.get("ConfigurationSetName") == TEST_ENV["OTP_SES_CONFIGURATION_SET"] for params in sends
    )
    coded = [params for params in sends if any(tag["Name"] == "session" for tag in params.get("Tags", []))]
    _as(recorder, "delivery_events")
    for kind, params in zip(("Delivery", "Bounce", "Complaint"), coded[-3:], strict=True):
        stack.client.lambda_.invoke(
            "delivery_events",
            stack.client.events.generate_sns_event(message=json.dumps(ses_event(kind, params))),
        )

    env = {**TEST_ENV, "OTP_STREAM_ARN": stack.stream_arn}
    policies = role_policies(env, "simple-otp", "test")
    place = Place.of(stack.stream_arn)
    used: dict[str, set[str]] = {}
    for role in FUNCTIONS:
        calls = recorder.of(role)
        operations = {(service, op) for service, op, _ in calls}
        expected = {
            "api_handler": {
                ("dynamodb", "GetItem"),
                ("dynamodb", "TransactWriteItems"),
                ("dynamodb", "UpdateItem"),
                ("dynamodb", "PutItem"),
                ("dynamodb", "BatchWriteItem"),
                ("ssm", "GetParameter"),
                ("kms", "DescribeKey"),
                ("kms", "GetPublicKey"),
                ("kms", "Sign"),
            },
            "send_code": {
                ("dynamodbstreams", "DescribeStream"),
                ("dynamodbstreams", "GetShardIterator"),
                ("dynamodbstreams", "GetRecords"),
                ("dynamodb", "TransactWriteItems"),
                ("dynamodb", "UpdateItem"),
                ("ses", "SendRawEmail"),
                ("ssm", "GetParameter"),
            },
            "delivery_events": {
                ("dynamodb", "UpdateItem"),
                ("dynamodb", "PutItem"),
            },
        }[role]
        assert expected <= operations, f"the flows did not exercise {expected - operations} as {role}"
        requests = [r for s, op, p in calls for r in iam_requests(place, s, op, p, recorder.iterators)]
        assert not denied(policies[role], requests), f"{role} policy denies calls the code makes"
        used[role] = {r.action for r in requests}

    for role, policy in policies.items():
        unused = granted_actions(policy) - used[role] - set(NOT_CALLED_BY_CODE)
        assert not unused, f"{role} is granted {unused}, which no call needs"


def ses_event(kind: str, send: dict[str, Any]) -> dict[str, Any]:
    """The event SES publishes for the mail of one recorded SendRawEmail call, shaped as
    AWS's "Examples of event data that Amazon SES publishes to Amazon SNS"."""
    at = "2026-12-01T14:36:02.123Z"
    (to,) = send["Destinations"]
    tags = {tag["Name"]: [tag["Value"]] for tag in send.get("Tags", [])}
    tags["ses:configuration-set"] = [send["ConfigurationSetName"]]
    event: dict[str, Any] = {
        "eventType": kind,
        "mail": {
            "timestamp": at,
            "source": send["Source"],
            "sendingAccountId": "123456789012",
            "messageId": f"0100018-{kind.lower()}",
            "destination": [to],
            "headersTruncated": False,
            "tags": tags,
        },
    }
    if kind == "Delivery":
        event["delivery"] = {"timestamp": at, "processingTimeMillis": 546, "recipients": [to]}
    elif kind == "Bounce":
        event["bounce"] = {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": to, "action": "failed", "status": "5.1.1"}],
            "timestamp": at,
            "feedbackId": "0100018-bounce-feedback",
        }
    else:
        event["complaint"] = {
            "complainedRecipients": [{"emailAddress": to}],
            "timestamp": at,
            "feedbackId": "0100018-complaint-feedback",
            "complaintFeedbackType": "abuse",
        }
    return event


def test_the_evaluator_denies_what_a_policy_lacks(stack):
    """The checks above can fail: drop one grant and the same calls are denied."""
    env = {**TEST_ENV, "OTP_STREAM_ARN": stack.stream_arn}
    policy = role_policies(env, "simple-otp", "test")["send_code"]
    place = Place.of(stack.stream_arn)
    send = iam_requests(place, "ses", "SendRawEmail", {"Source": TEST_ENV["OTP_SENDER"]}, {})
    assert not denied(policy, send)
    other_sender = iam_requests(place, "ses", "SendRawEmail", {"Source": "x@evil.example"}, {})
    assert denied(policy, other_sender)
    other_table = iam_requests(place, "dynamodb", "UpdateItem", {"TableName": "other"}, {})
    assert denied(policy, other_table)
    without_ses = {"Statement": [s for s in policy["Statement"] if s["Sid"] != "SendAsSender"]}
    assert denied(without_ses, send)
    configuration_set = TEST_ENV["OTP_SES_CONFIGURATION_SET"]
    tracked = {"Source": TEST_ENV["OTP_SENDER"], "ConfigurationSetName": configuration_set}
    assert not denied(policy, iam_requests(place, "ses", "SendRawEmail", tracked, {}))
    other_set = {**tracked, "ConfigurationSetName": "someone-elses"}
    assert denied(policy, iam_requests(place, "ses", "SendRawEmail", other_set, {}))
    untracked = {"Statement": [s for s in policy["Statement"] if s["Sid"] != "SendThroughConfigurationSet"]}
    assert denied(untracked, iam_requests(place, "ses", "SendRawEmail", tracked, {}))
    roles = role_policies(env, "simple-otp", "test")
    assert denied(roles["api_handler"], send), "the routes' role must not send email"
    events_role = roles["delivery_events"]
    assert denied(events_role, send), "the delivery events' role must not send email"
    key = iam_requests(place, "ssm", "GetParameter", {"Name": TEST_ENV["OTP_KEY_PARAMETER"]}, {})
    assert denied(events_role, key), "the delivery events' role must not read the code key"
    suppress = iam_requests(place, "dynamodb", "PutItem", {"TableName": TEST_ENV["OTP_TABLE_NAME"]}, {})
    assert not denied(events_role, suppress) and denied(roles["send_code"], suppress)


# ---------------------------------------------------------------- static scan


def _modules() -> dict[str, ast.Module]:
    files = {"app": ROOT / "app.py"} | {p.stem: p for p in sorted((ROOT / "chalicelib").glob("*.py"))}
    return {name: ast.parse(path.read_text(), str(path)) for name, path in files.items()}


def _operation_names(service: str) -> dict[str, str]:
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


@dataclass
class Scan:
    services: set[str] = field(default_factory=set)
    attribute_calls: set[str] = field(default_factory=set)
    transact_kinds: set[str] = field(default_factory=set)


def static_calls(entry_points: list[str]) -> Scan:
    """Services and method names reachable from ``module.function`` entry points."""
    modules = _modules()
    functions: dict[tuple[str, str], ast.AST] = {}
    imports: dict[str, dict[str, tuple[str, str | None]]] = {}
    for name, tree in modules.items():
        table: dict[str, tuple[str, str | None]] = {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                functions[(name, node.name)] = node
            elif isinstance(node, ast.ImportFrom) and node.module == "chalicelib":
                for alias in node.names:
                    table[alias.asname or alias.name] = (alias.name, None)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chalicelib."):
                for alias in node.names:
                    table[alias.asname or alias.name] = (node.module.split(".", 1)[1], alias.name)
        imports[name] = table

    scan = Scan()
    todo = [tuple(entry.split(".")) for entry in entry_points]
    seen: set[tuple[str, str]] = set()
    while todo:
        key = todo.pop()
        if key in seen or key not in functions:
            continue
        seen.add(key)
        module = key[0]
        for node in ast.walk(functions[key]):
            if isinstance(node, ast.Dict):
                scan.transact_kinds |= {
                    k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in _TRANSACT
                }
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name):
                target = imports[module].get(func.id)
                if target and target[1]:
                    todo.append((target[0], target[1]))
                else:
                    todo.append((module, func.id))
            elif isinstance(func, ast.Attribute):
                scan.attribute_calls.add(func.attr)
                owner = func.value
                if isinstance(owner, ast.Name) and owner.id in imports[module]:
                    todo.append((imports[module][owner.id][0], func.attr))
                if (
                    isinstance(owner, ast.Name)
                    and owner.id == "aws"
                    and func.attr == "client"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    scan.services.add(node.args[0].value)
    return scan


ROLE_ENTRY_POINTS = {
    "api_handler": ["app.start_sign_in", "app.verify_code", "app.resend_code"],
    "send_code": ["app.send_code"],
    "delivery_events": ["app.delivery_events"],
}


def _deploy_policies() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    env = stage_environment(DEPLOY_STAGE)
    files = policy_files(DEPLOY_STAGE)
    config = json.loads(CONFIG.read_text())["stages"][DEPLOY_STAGE]
    by_file = {path.name: json.loads(path.read_text()) for path in files}
    default = config["iam_policy_file"]
    roles = {
        function: by_file[
            config.get("lambda_functions", {}).get(function, {}).get("iam_policy_file", default)
        ]
        for function in FUNCTIONS
    }
    return env, roles


def test_static_scan_every_call_in_code_is_granted_in_the_deploy_stage():
    env, roles = _deploy_policies()
    place = Place.of(env["OTP_STREAM_ARN"])
    params = {
        "TableName": env["OTP_TABLE_NAME"],
        "Source": env["OTP_SENDER"],
        "Name": env["OTP_KEY_PARAMETER"],
        "StreamArn": env["OTP_STREAM_ARN"],
        "KeyId": env["OTP_TOKEN_KEY_ID"],
        "ConfigurationSetName": env["OTP_SES_CONFIGURATION_SET"],
    }
    for role, entry_points in ROLE_ENTRY_POINTS.items():
        scan = static_calls(entry_points)
        assert scan.services, f"the scan found no AWS client for {role}: is it still aws.client(...)?"
        found = []
        for service in scan.services:
            names = _operation_names(service)
            found += [(service, names[m]) for m in scan.attribute_calls if m in names]
        assert found, role
        requests = []
        found = [call for call in found if call not in NOT_AWS_CALLS]
        for service, operation in found:
            call = dict(params)
            if operation in ("BatchGetItem", "BatchWriteItem"):
                call["RequestItems"] = {params["TableName"]: {}}
            if operation == "TransactWriteItems":
                assert scan.transact_kinds, "a transaction with no Put/Update/Delete/ConditionCheck?"
                call["TransactItems"] = [
                    {kind: {"TableName": params["TableName"]}} for kind in scan.transact_kinds
                ]
            requests += iam_requests(place, service, operation, call, {})
        assert not denied(roles[role], requests), f"{role}: the code calls what the policy does not grant"


def test_static_scan_sees_the_calls_it_should():
    """Guard against a scan that silently finds nothing."""
    api = static_calls(ROLE_ENTRY_POINTS["api_handler"])
    mailer = static_calls(ROLE_ENTRY_POINTS["send_code"])
    assert {"dynamodb", "ssm"} <= api.services and "ses" not in api.services
    assert {"get_item", "transact_write_items", "update_item", "get_parameter"} <= api.attribute_calls
    assert {"dynamodb", "ses", "ssm"} <= mailer.services
    assert {
        "transact_write_items",
        "update_item",
        "send_raw_email",
        "get_parameter",
    } <= mailer.attribute_calls
    assert "ConditionCheck" in mailer.transact_kinds
    assert {"Put", "Update"} <= api.transact_kinds
    events = static_calls(ROLE_ENTRY_POINTS["delivery_events"])
    assert events.services == {"dynamodb"}, "the delivery events handler mails nothing and reads no key"
    assert {"update_item", "put_item"} <= events.attribute_calls


def test_clients_are_only_made_in_aws_py():
    """Every client comes from aws.client("..."), which the scan above follows."""
    for name, tree in _modules().items():
        if name == "aws":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in ("client", "resource", "Session"):
                    owner = node.func.value
                    assert isinstance(owner, ast.Name) and owner.id == "aws", (
                        f"{name}.py line {node.lineno} makes its own boto3 client"
                    )


# ---------------------------------------------------------------- the committed files


def test_committed_policies_match_the_config():
    """The files chalice deploys are what the generator makes from config.json."""
    files = policy_files(DEPLOY_STAGE)
    for path in files:
        document = json.loads(path.read_text())
        sender = sender_address(stage_environment(DEPLOY_STAGE)["OTP_SENDER"])
        identities = [
            r.rpartition(":identity/")[2]
            for s in document["Statement"]
            for r in _listed(s["Resource"])
            if ":ses:" in r and ":identity/" in r
        ]
        recipients = [i for i in identities if i not in (sender, sender.rpartition("@")[2])]
        expected = policy_files(DEPLOY_STAGE, sandbox_recipients=recipients)[path]
        assert document == expected, f"{path.name} is stale: simple-otp policy --stage dev"


def test_committed_policies_name_only_this_stages_resources():
    env, roles = _deploy_policies()
    table, parameter = env["OTP_TABLE_NAME"], env["OTP_KEY_PARAMETER"].lstrip("/")
    sender = sender_address(env["OTP_SENDER"])
    for role, policy in roles.items():
        function = function_name("simple-otp", DEPLOY_STAGE, role)
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            for action in _listed(statement["Action"]):
                assert "*" not in action, f"{role}: wildcard action {action}"
            for resource in _listed(statement["Resource"]):
                assert resource != "*", f"{role}: {statement['Sid']} on every resource"
                service = resource.split(":")[2]
                if service == "dynamodb":
                    assert resource.split(":", 5)[5].startswith(f"table/{table}"), resource
                    if "/stream/" in resource and statement["Action"] != "dynamodb:ListStreams":
                        assert resource == env["OTP_STREAM_ARN"]
                elif service == "ssm":
                    # the parameter, or its versions (NAME:VERSION), nothing else
                    assert resource.endswith((f":parameter/{parameter}", f":parameter/{parameter}:*")), (
                        resource
                    )
                elif service == "ses":
                    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": sender}}
                    configuration_set = env["OTP_SES_CONFIGURATION_SET"]
                    assert ":identity/" in resource or resource.endswith(
                        f":configuration-set/{configuration_set}"
                    ), resource
                elif service == "logs":
                    assert f":log-group:/aws/lambda/{function}" in resource, resource
                elif service == "kms" and statement["Sid"] == "SignTokens":
                    # only the stage's token keys, named by their aliases
                    alias = env["OTP_TOKEN_KEY_ID"]
                    assert statement["Condition"] == {
                        "ForAnyValue:StringEquals": {"kms:ResourceAliases": [alias, f"{alias}-previous"]}
                    }
                    assert set(_listed(statement["Action"])) == {
                        "kms:DescribeKey",
                        "kms:GetPublicKey",
                        "kms:Sign",
                    }
                elif service == "kms":
                    condition = statement["Condition"]["StringEquals"]
                    assert condition["kms:EncryptionContext:PARAMETER_ARN"].endswith(f"parameter/{parameter}")
                    assert condition["kms:ViaService"].startswith("ssm.")
                else:
                    raise AssertionError(f"{role}: unexpected service in {resource}")
