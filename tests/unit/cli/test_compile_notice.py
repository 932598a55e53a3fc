"""The first-compile notice: shown once on a terminal, never on a pipe, and a real
``plait process`` on a pseudo-terminal with a cold kernel cache shows it while a warm
one does not."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from numba import njit

from plait.cli.compile_notice import NOTICE, announce_kernel_compiles, stop

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "process"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_notice_once_on_a_terminal_and_never_on_a_pipe() -> None:
    term, pipe = Terminal(), io.StringIO()
    listeners = [announce_kernel_compiles(term), announce_kernel_compiles(pipe)]
    assert listeners[1] is None
    try:
        njit(lambda x: x + 1)(1)  # a fresh function: a real compile
        njit(lambda x: x * 2)(2)
    finally:
        for listener in listeners:
            stop(listener)
    assert term.getvalue() == NOTICE + "\n"
    assert pipe.getvalue() == ""


def run_on_pty(cache: Path) -> str:
    """``plait process`` with stderr on a pseudo-terminal; returns what it printed there."""
    leader, follower = pty.openpty()
    with open(EXAMPLES / "events.jsonl", "rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "plait.cli.main", "process", "spec.yaml", "--engine", "cpu"],
            cwd=EXAMPLES, stdin=stdin, stdout=subprocess.DEVNULL, stderr=follower,
            env={**os.environ, "NUMBA_CACHE_DIR": str(cache)},
        )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the other end closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=300) == 0
    return b"".join(chunks).decode()


def test_plait_process_says_it_compiles_only_when_it_does(tmp_path: Path) -> None:
    cache = tmp_path / "numba-cache"
    cold = run_on_pty(cache)
    assert NOTICE in cold
    assert "record does not fit the schema" in cold  # dead letters still go there too
    warm = run_on_pty(cache)
    assert NOTICE not in warm
    assert "record does not fit the schema" in warm
