"""Operator code stays out of the Lambda package, and is installed as ``simple-otp``.

* the zip ``chalice package`` builds (the one session build of
  tests/test_deploy.py) holds app.py and chalicelib/, and nothing of ops/,
  devstack/, tests/ or bench/;
* nothing in chalicelib/ imports app, ops, devstack, bench or tests, read
  from the source with ``ast`` (so no future import can pull them in);
* ``scripts/setup.sh`` installed the console script into the venv, and it
  answers as ``simple-otp`` from any folder.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.test_deploy import BESIDE_THE_APP, built_package, clean_env

ROOT = Path(__file__).resolve().parent.parent
SIMPLE_OTP = Path(sys.executable).parent / "simple-otp"
COMMANDS = ("add-user", "disable-user", "enable-user", "provision", "deprovision", "policy")
# What the Lambda code must never import (docs/decisions.md, "Operator code lives in ops/").
NOT_FOR_LAMBDA = frozenset({"app", "ops", "devstack", "bench", "tests"})


# ---------------------------------------------------------------- the Lambda package


@pytest.fixture(scope="session")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deployment.zip of tests/test_deploy.py's build (one build for both)."""
    return built_package(tmp_path_factory).zip_path


def test_lambda_package_holds_the_app_and_no_operator_code(lambda_zip):
    with zipfile.ZipFile(lambda_zip) as archive:
        names = archive.namelist()
    assert "app.py" in names
    packaged = {n for n in names if n.startswith("chalicelib/") and n.endswith(".py")}
    checkout = {p.relative_to(ROOT).as_posix() for p in (ROOT / "chalicelib").rglob("*.py")}
    assert packaged == checkout, "the zip's chalicelib/ is not the checkout's"
    assert "chalicelib/admin.py" not in names
    for folder in BESIDE_THE_APP:
        assert (ROOT / folder).is_dir(), folder  # the build's copy had it beside app.py
        # At the top, or under chalicelib/ (third-party packages may have a tests/ of their own).
        inside = [n for n in names if n.split("/")[0] == folder or f"chalicelib/{folder}/" in n]
        assert not inside, f"{folder}/ is in the Lambda package: {inside[:5]}"


# ---------------------------------------------------------------- import direction


def forbidden_imports(source: str, path: Path) -> list[str]:
    """``module: imported name`` for every import in ``source`` of NOT_FOR_LAMBDA.

    ``path`` is relative to the project root (it resolves relative imports).
    Static imports, and ``importlib.import_module`` / ``__import__`` with a
    literal name.
    """
    package = list(path.parent.parts)
    found: list[str] = []

    def check(dotted: str) -> None:
        if dotted.split(".")[0] in NOT_FOR_LAMBDA:
            found.append(f"{path}:{line}: {dotted}")

    for node in ast.walk(ast.parse(source, str(path))):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                check(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                base = package[: len(package) - up] if up <= len(package) else []
            else:
                base = []
            module = [*base, *(node.module.split(".") if node.module else [])]
            if module:
                check(".".join(module))
            else:  # "from .. import x" at the top: each x is a top-level module
                for alias in node.names:
                    check(alias.name)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0] if node.args else None
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                if isinstance(first.value, str):
                    check(first.value)
    return found


def test_chalicelib_imports_nothing_of_the_operator_side():
    modules = sorted((ROOT / "chalicelib").rglob("*.py"))
    assert len(modules) > 5, "no chalicelib modules found"
    found = [
        hit for module in modules for hit in forbidden_imports(module.read_text(), module.relative_to(ROOT))
    ]
    assert not found, "chalicelib imports code that is not in the Lambda package:\n" + "\n".join(found)


def test_the_import_check_sees_every_kind_of_import():
    """Guard against a check that silently finds nothing."""
    where = Path("chalicelib/example.py")
    cases = {
        "import ops": 1,
        "import devstack.run as run": 1,
        "from ops.cli import main": 1,
        "from tests import support": 1,
        "from .. import bench": 1,
        "from ..app import app": 1,
        "def f():\n    import importlib\n    return importlib.import_module('ops.users')": 1,
        "__import__('devstack')": 1,
        "from . import store\nfrom chalicelib import aws\nimport boto3": 0,
        "from .ops import x": 0,  # chalicelib.ops: still packaged, caught by the zip test instead
    }
    for source, expected in cases.items():
        assert len(forbidden_imports(source, where)) == expected, source


# ---------------------------------------------------------------- the console script


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_console_script_is_installed_and_lists_the_commands(tmp_path):
    assert SIMPLE_OTP.is_file(), f"{SIMPLE_OTP} is missing: run scripts/setup.sh"
    shown = _run(str(SIMPLE_OTP), "--help", cwd=tmp_path)  # not the project folder: the installed one
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: simple-otp "), shown.stdout
    for command in COMMANDS:
        assert command in shown.stdout, command
    assert "--stage" in shown.stdout
    alias = _run(sys.executable, "-m", "ops", "--help", cwd=ROOT)
    assert alias.returncode == 0 and alias.stdout == shown.stdout


def test_console_script_exit_code_and_one_line_error(tmp_path):
    """``sys.exit(main())``: the command's own exit code (2: the operator can fix it)."""
    stages = ", ".join(json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"])
    failed = _run(str(SIMPLE_OTP), "provision", "--stage", "no-such-stage", cwd=tmp_path)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert failed.stderr.splitlines() == [
        f"error: stage 'no-such-stage' is not in config.json; stages: {stages}"
    ], failed.stderr
    usage = _run(str(SIMPLE_OTP), "no-such-command", cwd=tmp_path)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
