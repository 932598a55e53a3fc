"""GpuEngine: the device twin of CpuEngine (same Protocols, identical results).

On the device: JSON decode (:mod:`.json_decode`), filter expressions
(:mod:`.expr_device`), literal match (:mod:`.match_kernel`) and AES-GCM decrypt
(:mod:`.aes_gcm`). Each operator called on its own uploads its inputs and downloads its
result; :mod:`.chain` runs decode -> filter -> enrich -> match with the batch staying on
the device in between, which is where a GPU pays. What has no device form (msgpack,
binary schema fields, string ordering in an expression) runs on the CPU reference, so
results are identical either way: the final assembly of every result is the
engine-neutral code the CPU engine uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from plait.process.cpu.decode import DecodeResult, _per_record, decode_records
from plait.process.cpu.decrypt import DecryptResult
from plait.process.cpu.expr_compile import CompiledExpr
from plait.process.decrypt import KeyRing
from plait.process.gpu.columns import column_kinds, download_bool, upload_column
from plait.process.gpu.device import Backend, upload_strings
from plait.process.gpu.expr_device import DeviceExpr, DeviceUnsupported
from plait.process.gpu.match_kernel import hit_pairs, match_device
from plait.process.match import MatchResult, PatternSet, build_result
from plait.process.schema import Schema

if TYPE_CHECKING:
    from plait.pipeline.steps import Step
    from plait.process.gpu.chain import Chain


class GpuEngine:
    name = "gpu"

    def __init__(self, backend: Backend, device_name: str) -> None:
        self.backend = backend
        self.device_name = device_name
        self._exprs: dict[tuple[str, tuple[tuple[str, str], ...]], DeviceExpr | None] = {}

    def chain_for(self, steps: Sequence[Step]) -> Chain:
        """The device chain of a pipeline's steps (the pipeline keeps it while its steps
        stay the same)."""
        from plait.process.gpu.chain import Chain

        return Chain(self, list(steps))

    # -- decode ---------------------------------------------------------------------

    def decode(self, values: Sequence[bytes], schema: Schema, fmt: str) -> DecodeResult:
        if fmt != "json" or not values:
            return decode_records(values, schema, fmt)
        from plait.process.gpu.json_decode import decode_device

        try:
            arr = values if isinstance(values, pa.Array) else pa.array(values, pa.binary())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return decode_records(values, schema, fmt)  # not all bytes: the reference says why
        res = decode_device(self.backend, arr, schema, _per_record)
        return res if res is not None else decode_records(values, schema, fmt)

    # -- filter ---------------------------------------------------------------------

    def device_expr(self, text: str, schema: pa.Schema) -> DeviceExpr | None:
        """The expression compiled for the device, or None when part of it has no device
        form (cached either way)."""
        kinds = column_kinds(schema)
        key = (text, tuple(sorted(kinds.items())))
        if key not in self._exprs:
            try:
                self._exprs[key] = DeviceExpr(text, kinds, self.backend)
            except DeviceUnsupported:
                self._exprs[key] = None
        return self._exprs[key]

    def evaluate(self, expr: CompiledExpr, batch: pa.RecordBatch) -> pa.Array:
        dexpr = self.device_expr(expr.text, batch.schema)
        if dexpr is None:
            return expr(batch)
        cols = {name: upload_column(self.backend, batch.column(name)) for name in dexpr.columns}
        try:
            out = dexpr(cols, batch.num_rows)
        except DeviceUnsupported:
            return expr(batch)
        if out.kind != "bool":
            return expr(batch)  # projections keep the CPU path: their output type varies
        return download_bool(self.backend, out)

    # -- match ----------------------------------------------------------------------

    def match(self, values: pa.Array, patterns: PatternSet) -> MatchResult:
        n = len(values)
        n_pats = len(patterns.patterns)
        if n == 0:
            return build_result(0, np.zeros(0, np.int64), np.zeros(0, np.int32), n_pats)
        s = upload_strings(self.backend, values)
        hits = match_device(self.backend, s.data, s.offsets, s.valid, patterns.patterns,
                            patterns.caseless)
        rec, pid = hit_pairs(self.backend.to_host(hits), n_pats)
        return build_result(n, rec, pid, n_pats)

    # -- decrypt --------------------------------------------------------------------

    def decrypt(
        self, values: pa.Array, key_ids: pa.Array, ring: KeyRing, aad: pa.Array | None
    ) -> DecryptResult:
        from plait.process.gpu.aes_gcm import decrypt_device

        return decrypt_device(self.backend, values, key_ids, ring, aad)
