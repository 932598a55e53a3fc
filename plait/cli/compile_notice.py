"""A one-line notice on a terminal when numba compiles plait's kernels.

Why: the CPU engine's kernels are compiled on first use and cached on disk, so the first
``plait process`` or ``plait run`` after an install stalls for 10-20 s with no output;
a user at a terminal should know it is a one-time cost, not a hang. Later runs load the
kernels from numba's cache and fire no compile event, so they print nothing.
"""

from __future__ import annotations

from typing import Any, TextIO

from numba.core import event

NOTICE = (
    "plait: compiling the CPU engine's kernels, once per install "
    "(10-20 s; later runs load them from numba's cache)"
)


class _CompileNotice(event.Listener):
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def on_start(self, ev: Any) -> None:
        if not self.shown:
            self.shown = True
            print(NOTICE, file=self.stream, flush=True)

    def on_end(self, ev: Any) -> None:
        pass


def announce_kernel_compiles(stream: TextIO) -> _CompileNotice | None:
    """Print :data:`NOTICE` to ``stream`` at the first kernel compile, if ``stream`` is a
    terminal (piped output stays clean). Returns the listener, for :func:`stop`."""
    if not stream.isatty():
        return None
    listener = _CompileNotice(stream)
    event.register("numba:compile", listener)
    return listener


def stop(listener: _CompileNotice | None) -> None:
    if listener is not None:
        event.unregister("numba:compile", listener)
