"""The one-pass decode's gather refuses a string column past Arrow's 2 GiB (int32 offsets)
before it reads a record or allocates, so the caller can build the batch another way."""

from __future__ import annotations

import numpy as np

from plait.process.cpu import _cell_filter_numba as V


def _cells(lengths: list[int]) -> dict[str, np.ndarray]:
    n = len(lengths)
    return {
        "kinds": np.array([V.K_STRING], dtype=np.int64),
        "slots": np.zeros(1, dtype=np.int64),
        "ivals": np.zeros((0, n), dtype=np.int64),
        "fvals": np.zeros((0, n), dtype=np.float64),
        "bvals": np.zeros((0, n), dtype=np.uint8),
        "valid": np.ones((1, n), dtype=np.uint8),
        "s_start": np.zeros((1, n), dtype=np.int32),
        "s_len": np.array([lengths], dtype=np.int32),
    }


def _gather(cells: dict[str, np.ndarray], keep: list[int]) -> tuple[np.ndarray, int]:
    c = cells
    return V.gather(0, 0, np.array(keep, dtype=np.int64), c["kinds"], c["slots"], c["ivals"],
                    c["fvals"], c["bvals"], c["valid"], c["s_start"], c["s_len"], 1, 1, 7)  # fmt: skip


def test_gather_refuses_a_string_column_past_2_gib() -> None:
    arena, at = _gather(_cells([2**30, 2**30]), [0, 1])  # 2**31 bytes: one past int32
    assert at == -1 and arena.size == 0


def test_gather_of_no_rows_is_an_empty_batch() -> None:
    arena, at = _gather(_cells([2**30, 2**30]), [])
    assert at > 0 and arena.size > at  # the structs follow the (empty) buffers
