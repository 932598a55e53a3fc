"""GpuEngine: the CUDA twin of CpuEngine (same Protocols, identical results).

What runs on the device today: match (raw CUDA kernel, kernels.MATCH_LITERALS). Filter
stays on the CPU by design (DESIGN.md: numpy filters at memory speed; a host->device copy
costs more than the work). Decode and decrypt are delegated to the CPU reference for now
(their GPU kernels are not written yet): calibration then measures no crossover for them,
so ``auto`` keeps them on the CPU. Results are identical either way because the final
assembly of every result is the engine-neutral code the CPU uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from plait.process.cpu.decode import DecodeResult, decode_records
from plait.process.cpu.decrypt import DecryptResult, decrypt_cpu
from plait.process.cpu.expr_compile import CompiledExpr
from plait.process.decrypt import KeyRing
from plait.process.gpu.kernels import MATCH_LITERALS
from plait.process.match import MatchResult, PatternSet, build_result, string_buffers
from plait.process.schema import Schema

_THREADS = 256


class GpuEngine:
    name = "gpu"

    def __init__(self, cupy: Any) -> None:
        self.cp = cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        raw_name = props.get("name", b"gpu")
        self.device_name = (
            raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        )
        self._match = cupy.RawKernel(MATCH_LITERALS, "match_literals")

    def decode(self, values: Sequence[bytes], schema: Schema, fmt: str) -> DecodeResult:
        return decode_records(values, schema, fmt)

    def evaluate(self, expr: CompiledExpr, batch: pa.RecordBatch) -> pa.Array:
        return expr(batch)

    def decrypt(
        self, values: pa.Array, key_ids: pa.Array, ring: KeyRing, aad: pa.Array | None
    ) -> DecryptResult:
        return decrypt_cpu(values, key_ids, ring, aad)

    def match(self, values: pa.Array, patterns: PatternSet) -> MatchResult:
        cp = self.cp
        n = len(values)
        n_pats = len(patterns.patterns)
        offsets, data, valid = string_buffers(values)
        if n == 0:
            return build_result(0, np.zeros(0, np.int64), np.zeros(0, np.int32), n_pats)
        base = int(offsets[0])
        host_data = np.frombuffer(data, dtype=np.uint8)[base : int(offsets[-1])]
        if host_data.size == 0:
            host_data = np.zeros(
                1, dtype=np.uint8
            )  # CuPy cannot upload an empty buffer portably
        pat_bytes = np.frombuffer(b"".join(patterns.patterns), dtype=np.uint8)
        pat_off = np.zeros(n_pats + 1, dtype=np.int32)
        np.cumsum([len(p) for p in patterns.patterns], out=pat_off[1:])
        words = (n_pats + 31) // 32
        d_hits = cp.zeros(n * words, dtype=cp.uint32)
        self._match(
            ((n + _THREADS - 1) // _THREADS,),
            (_THREADS,),
            (
                cp.asarray(host_data),
                cp.asarray(offsets - base),
                cp.asarray(valid.astype(np.uint8)),
                np.int32(n),
                cp.asarray(pat_bytes),
                cp.asarray(pat_off),
                np.int32(n_pats),
                np.int32(1 if patterns.caseless else 0),
                d_hits,
                np.int32(words),
            ),
        )
        hits = cp.asnumpy(d_hits).reshape(n, words)
        bits = np.unpackbits(
            hits.view(np.uint8).reshape(n, words * 4), axis=1, bitorder="little"
        )[:, :n_pats]
        rec, pid = np.nonzero(bits)
        return build_result(n, rec.astype(np.int64), pid.astype(np.int32), n_pats)
