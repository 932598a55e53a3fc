"""Decode JSON and filter in one pass over the cells: only the rows that pass become Arrow
columns.

The result is what decoding every row and then filtering with Arrow gives (same rows,
order, values), because it is only taken when that is certain: every record scanned clean
(no record for the per-record path, so no dead letter) and the filter compiled to a cell
program (:mod:`plait.process.cpu.cell_filter`) that could decide every row (see
``_cell_filter_numba.UNDECIDED``). Otherwise every row of the batch is decoded from the
same scan and the caller filters with Arrow.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from plait.process.cpu import _cell_filter_numba as V
from plait.process.cpu import fast_json as F
from plait.process.cpu.cell_filter import CellFilter, compile_cell_filter
from plait.process.schema import Schema

if TYPE_CHECKING:
    from plait.process.cpu.decode import DecodeResult


@functools.lru_cache(maxsize=256)
def cell_filter_for(schema: Schema, text: str) -> CellFilter | None:
    """The cell program of filter ``text`` on ``schema``'s cells, cached (None: Arrow only)."""
    if not F.supported(schema) or F.bytes_layout() is None:
        return None
    return compile_cell_filter(text, F.plan_for(schema))


def decode_json_where(
    values: Sequence[bytes],
    schema: Schema,
    where: CellFilter,
    per_record: Callable[[Sequence[bytes], Schema, str], DecodeResult],
) -> tuple[F.Decoded, bool] | None:
    """Decode ``values`` and keep the rows where ``where`` (a program for ``schema``, from
    :func:`cell_filter_for`) is true: ((batch, input indices of its rows, dead letters),
    True); or every row, ((...), False), when the filter could not be applied to the
    cells; None when the fast decoder cannot take the batch at all."""
    layout = F.bytes_layout()
    if not values or layout is None:
        return None
    plan = where.plan
    sc = F.scan_cells(values, plan, layout, numbers_to_arrow=False)
    objs = id(sc.records) + layout.tuple_items
    if not sc.n_flagged:
        n = len(values)
        keep = np.empty(n, dtype=np.int64)
        m = V.run_program(
            objs, layout.payload, n, where.code, where.ints, where.floats,
            where.string_bytes, where.string_offsets, where.depth, plan.kinds, plan.slots,
            sc.ivals, sc.fvals, sc.bvals, sc.valid, sc.s_start, sc.s_len, keep,
        )  # fmt: skip
        batch = None
        if m != V.UNDECIDED:
            keep = keep[:m]
            batch = _gathered(plan, sc, objs, layout.payload, keep)
        if batch is not None:
            return (batch, keep, []), True
    full = F.finish(values, schema, plan, layout, sc, per_record)
    return None if full is None else (full, False)


def _gathered(
    plan: F.Plan, sc: F.Cells, objs: int, payload: int, keep: np.ndarray
) -> pa.RecordBatch | None:
    """The rows ``keep`` of the scanned cells as an Arrow batch (None past 2 GiB of
    strings in a column).

    Why through the C data interface: the kernel lays out every buffer and the ArrowArray
    structs in one arena, and Arrow takes the whole batch in one call; wrapping each
    buffer from Python cost ~30 µs of a 1k-event batch's ~330 µs here. The arena stays in
    ``_LIVE`` until Arrow releases the batch (the last column or buffer dropped)."""
    token = next(_tokens)
    arena, at = V.gather(
        objs, payload, keep, plan.kinds, plan.slots, sc.ivals, sc.fvals, sc.bvals,
        sc.valid, sc.s_start, sc.s_len, _RELEASE_BATCH_AT, _RELEASE_CHILD_AT, token,
    )  # fmt: skip
    if at < 0:
        return None  # a string column past 2 GiB: the caller builds the batch otherwise
    _LIVE[token] = arena
    return pa.RecordBatch._import_from_c(arena.ctypes.data + at, plan.arrow)


# struct ArrowArray: ``release`` at byte 64, ``private_data`` at byte 72
_RELEASE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_LIVE: dict[int, np.ndarray] = {}
_tokens = itertools.count(1)


@_RELEASE
def _release_batch(array: int) -> None:
    """Arrow is done with a gathered batch: its arena may go (ctypes holds the GIL here).
    A batch outliving the interpreter's teardown of this module only marks itself."""
    with contextlib.suppress(Exception):  # at exit, module globals may be gone already
        _LIVE.pop(ctypes.c_int64.from_address(array + 72).value, None)
    ctypes.c_void_p.from_address(array + 64).value = None  # marks it released


@_RELEASE
def _release_child(array: int) -> None:
    """A column's struct: its memory is the batch's arena, freed with the batch."""
    ctypes.c_void_p.from_address(array + 64).value = None


_RELEASE_BATCH_AT: int = ctypes.cast(_release_batch, ctypes.c_void_p).value or 0
_RELEASE_CHILD_AT: int = ctypes.cast(_release_child, ctypes.c_void_p).value or 0
