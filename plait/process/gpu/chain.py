"""decode -> filter / enrich / match with the batch on the device in between.

Why a chain: called one operator at a time, the GPU engine would upload its input and
download its result at every step, and the copies would cost more than the work. Here the
raw records cross to the device once, the filters only narrow a ``live`` row mask, match
skips dead rows, enrich finds reference rows by binary search, and only the surviving rows
of the decoded columns come back, gathered on the device.

The raw records go up in chunks, each chunk decoded while the next one crosses
(:func:`plait.process.gpu.json_decode.upload_and_scan`).

The output is exactly what the steps give one by one on the CPU engine (the pipeline's
contract): records the decode kernel flags (null, malformed, not provably exact) are
decoded by the per-record reference and run through the same steps on the CPU, and the two
parts are merged back into input order by their ``_offset``. Dead letters of the decode
are reported as the Decode step reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from plait.process.cpu.expr_compile import compile_expr, lang_type
from plait.process.errors import ExpressionError
from plait.process.gpu.columns import download_value
from plait.process.gpu.device import DeviceStrings
from plait.process.gpu.enrich_device import DeviceEnricher, positions_array
from plait.process.gpu.expr_device import DeviceExpr, DeviceUnsupported, DVal
from plait.process.gpu.match_kernel import hit_pairs, match_device
from plait.process.gpu.take import take_value
from plait.process.match import build_result

if TYPE_CHECKING:
    from plait.pipeline.steps import Context, RawBatch, Step
    from plait.process.gpu.engine import GpuEngine

OFFSET = "_offset"


@dataclass
class _Planned:
    step: Step
    expr: DeviceExpr | None = None
    enricher: DeviceEnricher | None = None


class Chain:
    """The device plan of ``steps`` (a JSON Decode, then the Filter / Enrich / Match steps
    that can follow it on the device); :attr:`length` is how many steps it covers (0: the
    chain cannot start here)."""

    def __init__(self, engine: GpuEngine, steps: Sequence[Step]) -> None:
        from plait.pipeline.steps import Decode
        from plait.process.gpu.json_decode import supported

        self.engine = engine
        self.planned: list[_Planned] = []
        self.length = 0
        if not steps or not isinstance(steps[0], Decode) or steps[0].format != "json":
            return
        decode = steps[0]
        if not supported(decode.schema):
            return
        self.decode = decode
        self.arrow = decode.schema.arrow()
        # Only the decoded columns (and the offsets) live on the device: a filter on a
        # column enrich or match adds ends the chain there.
        self.schema = self.arrow.append(pa.field(OFFSET, pa.int64()))
        on_device = {f.name: lang_type(f.type) for f in self.schema}
        for step in steps[1:]:
            planned = self._plan(step, on_device)
            if planned is None:
                break
            self.planned.append(planned)
        self.length = 1 + len(self.planned)

    def _plan(self, step: Step, on_device: dict[str, str | None]) -> _Planned | None:
        from plait.pipeline.steps import Enrich, Filter, Match

        if isinstance(step, Filter):
            try:
                # type-checked as the CPU does; one it rejects (or that names a column not
                # on the device) runs as a CPU step, which raises its own error there
                compile_expr(step.text, self.schema, want="bool")
                kinds = {k: v for k, v in on_device.items() if v is not None}
                return _Planned(step, expr=DeviceExpr(step.text, kinds, self.engine.backend))
            except (ExpressionError, DeviceUnsupported):
                return None
        if isinstance(step, Enrich):
            if on_device.get(step.on) != "int":
                return None
            return _Planned(step, enricher=DeviceEnricher(self.engine.backend, step.table))
        if isinstance(step, Match) and on_device.get(step.field) == "string":
            return _Planned(step)
        return None

    # -- running --------------------------------------------------------------------

    def run(self, raw: RawBatch, ctx: Context) -> pa.RecordBatch | None:
        """The batch the covered steps would output (None when no row is left)."""
        from plait.process.gpu.json_decode import upload_and_scan

        backend = self.engine.backend
        xp = backend.xp
        # From a list of bytes, ~40 ms per 1M 200-byte records on one core here (an in-place
        # gather with numba threads measured no faster); an Arrow array is used as it is.
        try:
            values = (raw.values if isinstance(raw.values, pa.Array)
                      else pa.array(raw.values, type=pa.binary()))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # records that are not all bytes: the CPU reference decides each one (a dead
            # letter with its reason), exactly as the step-by-step run would
            return self._flagged(raw, np.ones(len(raw.values), dtype=bool), ctx)
        n = len(values)
        offsets = np.asarray(raw.offsets, dtype=np.int64)
        cells = upload_and_scan(backend, values, self.decode.schema)
        flags = backend.to_host(cells.flags).astype(bool)
        live = cells.flags == 0
        cols = self._columns(cells, live)
        cols[OFFSET] = DVal("int", backend.to_device(offsets), None)
        results: list[Any] = []
        for p in self.planned:
            results.append(self._apply(p, cols, live, n))
            if isinstance(results[-1], _Filtered):
                live = results[-1].live
        rows = xp.nonzero(live)[0].astype(np.int64)
        fast = self._assemble(cols, rows, results)
        slow = self._flagged(raw, flags, ctx)
        return _merge(fast, slow)

    def _columns(self, cells: Any, live: Any) -> dict[str, DVal]:
        from plait.process.gpu.json_decode import plan_for

        plan = plan_for(self.decode.schema)
        cols: dict[str, DVal] = {}
        k = 0
        for j, field in enumerate(self.arrow):
            kind = lang_type(field.type)
            slot = int(plan.slots[j])
            valid = (cells.valid[j] != 0) & live
            if kind == "string":
                data: Any = DeviceStrings(cells.str_data, cells.str_offs[k], valid)
                k += 1
            elif kind == "int":
                data = cells.ivals[slot]
            elif kind == "float":
                data = cells.fvals[slot]
            else:
                data = cells.bvals[slot] != 0
            cols[field.name] = DVal(str(kind), data, valid)
        return cols

    def _apply(self, p: _Planned, cols: dict[str, DVal], live: Any, n: int) -> Any:
        from plait.pipeline.steps import Enrich, Filter, Match

        step = p.step
        if isinstance(step, Filter):
            assert p.expr is not None
            return _Filtered(live & p.expr.mask(cols, n, live=live))
        if isinstance(step, Enrich):
            assert p.enricher is not None
            step.table.maybe_reload()
            snap = step.table.snapshot()
            return _Enriched(snap, p.enricher.positions(snap, cols[step.on], step.on))
        assert isinstance(step, Match)
        s = cols[step.field].data
        hits = match_device(self.engine.backend, s.data, s.offsets, live & s.valid,
                            step.patterns.patterns, step.patterns.caseless)
        return _Matched(hits)

    def _assemble(self, cols: dict[str, DVal], rows: Any, results: list[Any]) -> pa.RecordBatch:
        """The surviving rows, gathered on the device, as the CPU steps would give them."""
        backend = self.engine.backend
        arrays = [
            download_value(backend, take_value(backend, cols[f.name], rows), f.type)
            for f in self.arrow
        ]
        arrays.append(pa.array(backend.to_host(cols[OFFSET].data[rows]), type=pa.int64()))
        batch = pa.RecordBatch.from_arrays(
            arrays, schema=self.arrow.append(pa.field(OFFSET, pa.int64()))
        )
        m = int(rows.shape[0])
        for p, res in zip(self.planned, results):
            if isinstance(res, _Enriched):
                pos = backend.to_host(res.positions[rows])
                batch = p.step.table.attach(batch, res.snap, positions_array(pos))  # type: ignore[attr-defined]
            elif isinstance(res, _Matched):
                n_pats = len(p.step.patterns.patterns)  # type: ignore[attr-defined]
                rec, pid = hit_pairs(backend.to_host(res.hits[rows]), n_pats)
                batch = p.step.attach(batch, build_result(m, rec, pid, n_pats))  # type: ignore[attr-defined]
        return batch

    def _flagged(self, raw: RawBatch, flags: np.ndarray, ctx: Context) -> pa.RecordBatch | None:
        """The flagged records through the reference decode and the same steps, on the CPU
        (their dead letters reported with their positions in ``raw``)."""
        from plait.pipeline.steps import RawBatch as Raw
        from plait.process.engine import CPU

        where = np.flatnonzero(flags)
        if not len(where):
            return None
        sub = Raw([raw.values[int(i)] for i in where], np.asarray(raw.offsets)[where])
        res = CPU.decode(sub.values, self.decode.schema, self.decode.format)
        if res.errors:
            ctx.reject(self.decode.name, raw, [(int(where[p]), r) for p, r in res.errors])
        batch: pa.RecordBatch | None = res.batch.append_column(
            OFFSET, pa.array(sub.offsets[res.good], type=pa.int64())
        )
        for p in self.planned:
            if batch is None or not batch.num_rows:
                return None
            batch = p.step.apply(batch, ctx)
        return batch


@dataclass
class _Filtered:
    live: Any


@dataclass
class _Enriched:
    snap: Any
    positions: Any


@dataclass
class _Matched:
    hits: Any


def _merge(fast: pa.RecordBatch, slow: pa.RecordBatch | None) -> pa.RecordBatch | None:
    """Both parts in input order (by ``_offset``, increasing with input position)."""
    if slow is None or not slow.num_rows:
        return fast if fast.num_rows else None
    both = pa.concat_batches([fast, slow])
    order = np.argsort(both.column(OFFSET).to_numpy(), kind="stable")
    return both.take(pa.array(order))
