"""The package type-checks: mypy runs on plait/ in CI, with no exemptions to hide behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_is_clean_on_the_package():
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "plait"], cwd=ROOT, check=False, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_imports_flow_one_way():
    """protocol and log sit at the bottom: they never import the layers above them."""
    upper = ("plait.client", "plait.broker", "plait.cli", "plait.fastlane", "plait.groups",
             "plait.process", "plait.pipeline", "plait.functions", "plait.bench", "plait.observe")
    for lower in ("protocol", "log", "meta"):
        for path in (ROOT / "plait" / lower).rglob("*.py"):
            text = path.read_text()
            for name in upper:
                assert f"import {name}" not in text and f"from {name}" not in text, (path, name)
