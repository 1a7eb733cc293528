"""The Lambda package: ``chalice package --stage dev``, its zip measured and searched.

It is built from a copy of the project's Chalice files (``app.py``,
``chalicelib/``, ``requirements.txt``, ``vendor/``, ``.chalice/*.json``) in
a temporary folder, so the build is always fresh and nothing is written
into the checkout. Chalice downloads Linux wheels through pip's configured
index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, Measure, Section, Table, verdict

TARGET_BYTES = 1_000_000  # "under 1 MB"
TARGET = f"< {TARGET_BYTES:,} bytes, no boto3"
TITLES = ("Lambda package",)
AWS_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3")


def _copy_project(into: Path) -> None:
    shutil.copy2(ROOT / "app.py", into / "app.py")
    shutil.copy2(ROOT / "requirements.txt", into / "requirements.txt")
    for folder in ("chalicelib", "vendor"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, into / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (into / ".chalice").mkdir()
    for path in (ROOT / ".chalice").glob("*.json"):
        shutil.copy2(path, into / ".chalice" / path.name)


def _chalice(project: Path, out: Path) -> subprocess.CompletedProcess[str]:
    from devstack.environment import AWS_VARIABLES, without

    env = without(os.environ, AWS_VARIABLES)
    env["AWS_DEFAULT_REGION"] = "us-east-1"  # packaging needs a region, never credentials
    chalice = Path(PYTHON).with_name("chalice")
    return subprocess.run(
        [str(chalice), "package", "--stage", "dev", str(out)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _without_autogen_policy(project: Path) -> None:
    """Turn off the policy generator for the dev stage in the copy (the policy is not in the zip)."""
    config_path = project / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    config["stages"]["dev"]["autogen_policy"] = False
    config["stages"]["dev"].setdefault("iam_policy_file", "policy-dev.json")
    config_path.write_text(json.dumps(config, indent=2))
    policy = project / ".chalice" / config["stages"]["dev"]["iam_policy_file"]
    if not policy.exists():
        policy.write_text('{"Version": "2012-10-17", "Statement": []}')


def inspect_zip(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    tops: dict[str, dict[str, int]] = {}
    sdk = []
    for info in infos:
        top = info.filename.split("/", 1)[0]
        entry = tops.setdefault(top, {"files": 0, "compressed": 0, "uncompressed": 0})
        entry["files"] += 1
        entry["compressed"] += info.compress_size
        entry["uncompressed"] += info.file_size
        name = top.split("-", 1)[0].removesuffix(".py")
        if name in AWS_SDK:
            sdk.append(info.filename)
    return {
        "bytes": path.stat().st_size,
        "files": len(infos),
        "uncompressed": sum(i.file_size for i in infos),
        "top_level": dict(sorted(tops.items(), key=lambda kv: -kv[1]["compressed"])),
        "aws_sdk_paths": sdk,
    }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="simple-otp-package-") as tmp:
        project, out = Path(tmp) / "project", Path(tmp) / "out"
        project.mkdir()
        _copy_project(project)
        note = ""
        done = _chalice(project, out)
        if done.returncode != 0 and "policy" in (done.stdout + done.stderr).lower():
            note = (
                "`chalice package` failed in Chalice's IAM policy generator "
                f"({(done.stdout + done.stderr).strip().splitlines()[-1][:160]}); packaged again "
                "with autogen_policy off in a copy of the config (the policy is not part of the zip)"
            )
            _without_autogen_policy(project)
            shutil.rmtree(out, ignore_errors=True)
            done = _chalice(project, out)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            return {"ok": False, "error": " / ".join(tail), "note": note}
        found = inspect_zip(out / "deployment.zip")
    found.update(
        {
            "ok": True,
            "note": note,
            "target_bytes": TARGET_BYTES,
            "met": found["bytes"] < TARGET_BYTES and not found["aws_sdk_paths"],
            "command": "chalice package --stage dev <tmpdir>",
        }
    )
    return found


def measure(size: dict[str, int]) -> dict[str, Any]:
    return run()


# ---------------------------------------------------------------- the report


def summary(pkg: dict[str, Any] | None) -> list[Measure]:
    row = Measure("Lambda package (`deployment.zip`)", TARGET)
    if pkg is not None:
        row.measured(f"{pkg['bytes']:,} bytes, {len(pkg['aws_sdk_paths'])} boto3/botocore files", pkg["met"])
    return [row]


def sections(pkg: dict[str, Any]) -> list[Section]:
    rows = [
        [name, entry["files"], f"{entry['compressed']:,}", f"{entry['uncompressed']:,}"]
        for name, entry in pkg["top_level"].items()
    ]
    blocks: list[Table | str] = [
        f"`deployment.zip`: **{pkg['bytes']:,} bytes** ({pkg['files']} files, "
        f"{pkg['uncompressed']:,} bytes unpacked); target < {TARGET_BYTES:,} bytes and no "
        f"boto3: {verdict(pkg['met'])}. AWS SDK files inside ({', '.join(AWS_SDK)}): "
        f"{len(pkg['aws_sdk_paths'])}.",
        Table(["top level", "files", "compressed bytes", "unpacked bytes"], rows),
        f"Built with `{pkg['command']}` from a copy of the project's Chalice files in a "
        "temporary folder (Linux wheels come from pip's configured index).",
    ]
    if pkg.get("note"):
        blocks.append(f"Note: {pkg['note']}.")
    return [Section(TITLES[0], blocks)]
