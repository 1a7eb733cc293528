"""A stage's settings, read from (and written back to) ``.chalice/config.json``.

``--stage NAME`` takes that stage's environment variables from the config
(global ones first, the stage's over them); variables already set in the
environment win.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from chalicelib import aws, settings
from ops import OpsError

PROJECT = Path(__file__).resolve().parent.parent
CONFIG = PROJECT / ".chalice" / "config.json"


def config_file(config_path: Path | None = None) -> Path:
    """``config_path``, or the project's config (looked up at call time, so tests can move it)."""
    return config_path or CONFIG


def read_config(config_path: Path | None = None) -> dict[str, Any]:
    path = config_file(config_path)
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise OpsError(f"{path} not found: run from the project folder") from None


def stage_environment(stage: str, config_path: Path | None = None) -> dict[str, str]:
    """The stage's environment variables from config.json (global ones first)."""
    path = config_file(config_path)
    config = read_config(path)
    stages = config.get("stages", {})
    if stage not in stages:
        raise OpsError(f"stage {stage!r} is not in {path.name}; stages: {', '.join(stages)}")
    env = dict(config.get("environment_variables", {}))
    env.update(stages[stage].get("environment_variables", {}))
    return {k: str(v) for k, v in env.items()}


def apply_stage(stage: str, environ: dict[str, str] | None = None) -> None:
    """Fill ``environ`` (os.environ) with the stage's variables it does not set."""
    target = os.environ if environ is None else environ
    for name, value in stage_environment(stage).items():
        target.setdefault(name, value)
    aws.reset()


def load_settings() -> settings.Settings:
    """The app's settings from the environment, a bad one as :class:`OpsError`."""
    try:
        return settings.load()
    except settings.ConfigError as error:
        raise OpsError(str(error)) from None


def set_stream_arn(stage: str, stream_arn: str, config_path: Path | None = None) -> bool:
    """Put ``stream_arn`` in the stage's config; True when it changed."""
    path = config_file(config_path)
    config = read_config(path)
    stage_config = config.get("stages", {}).get(stage)
    if stage_config is None:
        raise OpsError(f"stage {stage!r} is not in {path.name}")
    variables = stage_config.setdefault("environment_variables", {})
    if variables.get("OTP_STREAM_ARN") == stream_arn:
        return False
    variables["OTP_STREAM_ARN"] = stream_arn
    path.write_text(json.dumps(config, indent=2) + "\n")
    return True
