"""The login page's production build: gzipped JS + CSS.

``npm run build`` in ``frontend/`` (``scripts/setup.sh`` has run ``npm ci``)
writes ``frontend/dist`` and ``frontend/dist/size.json``. The bench reads
that figure and also gzips every ``.js`` and ``.css`` file of ``dist``
itself (level 9, one file at a time, as a server sends them), so the
figure does not rest on one tool.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.common import ROOT, Measure, Section, Table, verdict

FRONTEND = ROOT / "frontend"
TARGET_BYTES = 60_000  # "under 60 KB", read strictly
TITLES = ("Frontend bundle",)


def measure_dist(dist: Path) -> dict[str, Any]:
    files = {}
    for path in sorted(dist.rglob("*")):
        if path.suffix in (".js", ".css") and path.is_file():
            raw = path.read_bytes()
            files[str(path.relative_to(dist))] = {
                "bytes": len(raw),
                "gzip": len(gzip.compress(raw, compresslevel=9, mtime=0)),
            }
    return {
        "files": files,
        "raw_bytes": sum(f["bytes"] for f in files.values()),
        "gzip_bytes": sum(f["gzip"] for f in files.values()),
    }


def run(build: bool = True) -> dict[str, Any]:
    if not (FRONTEND / "package.json").is_file():
        return {"ok": False, "error": "not measured: frontend/package.json does not exist"}
    if build:
        npm = shutil.which("npm")
        if npm is None:
            return {"ok": False, "error": "not measured: npm is not installed"}
        if not (FRONTEND / "node_modules").is_dir():
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=FRONTEND,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                return {"ok": False, "error": f"not measured: npm ci failed: {done.stderr.strip()[-300:]}"}
        done = subprocess.run(
            [npm, "run", "build"], cwd=FRONTEND, capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip()[-400:]
            return {"ok": False, "error": f"not measured: npm run build failed: {tail}"}
    dist = FRONTEND / "dist"
    if not dist.is_dir():
        return {"ok": False, "error": "not measured: frontend/dist does not exist"}
    own = measure_dist(dist)
    size_json = dist / "size.json"
    reported = json.loads(size_json.read_text()) if size_json.is_file() else None
    return {
        "ok": True,
        "measured": own,
        "size_json": reported,
        "target_bytes": TARGET_BYTES,
        "met": max(own["gzip_bytes"], (reported or {}).get("total_gzip_bytes", 0)) < TARGET_BYTES,
        "command": "npm run build",
    }


def measure(size: dict[str, int]) -> dict[str, Any]:
    return run(build=True)


# ---------------------------------------------------------------- the report


def _kib(n: float) -> str:
    return f"{n / 1024:.1f} KiB"


def summary(front: dict[str, Any] | None) -> list[Measure]:
    row = Measure("Frontend: gzipped JS + CSS", f"< {TARGET_BYTES:,} bytes")
    if front is not None:
        total = front["measured"]["gzip_bytes"]
        row.measured(f"{total:,} bytes ({_kib(total)})", front["met"])
    return [row]


def sections(front: dict[str, Any]) -> list[Section]:
    measured = front["measured"]
    rows = [[name, f"{f['bytes']:,}", f"{f['gzip']:,}"] for name, f in measured["files"].items()]
    rows.append(["**total**", f"{measured['raw_bytes']:,}", f"**{measured['gzip_bytes']:,}**"])
    blocks: list[Table | str] = [
        Table(["file (frontend/dist)", "bytes", "gzip -9 bytes"], rows),
        f"Total gzipped: **{measured['gzip_bytes']:,} bytes** ({_kib(measured['gzip_bytes'])}; "
        f"target < {TARGET_BYTES:,} bytes: "
        f"{verdict(front['met'])}). Built with `{front['command']}` in `frontend/`; each file "
        "gzipped on its own.",
    ]
    own = front.get("size_json")
    if isinstance(own, dict) and "total_gzip_bytes" in own:
        blocks.append(
            f"The build's own count (`dist/size.json`, from `frontend/scripts/size.mjs`, Node's zlib "
            f"at level {own.get('gzip_level', '?')}): JS {own.get('js_gzip_bytes', 0):,} + CSS "
            f"{own.get('css_gzip_bytes', 0):,} = **{own['total_gzip_bytes']:,} bytes** "
            f"({_kib(own['total_gzip_bytes'])}); the table above is Python's zlib at level 9."
        )
    elif own is not None:
        blocks.append(f"The build's own `dist/size.json`: `{own}`")
    return [Section(TITLES[0], blocks)]
