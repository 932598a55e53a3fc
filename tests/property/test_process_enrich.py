"""Enrich against a dict lookup per record: order kept, misses and null keys give nulls."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.process.enrich import ReferenceTable


@settings(max_examples=150, deadline=None)
@given(
    ref=st.dictionaries(
        st.integers(-20, 20), st.none() | st.text(max_size=3), max_size=15
    ),
    keys=st.lists(st.none() | st.integers(-25, 25), max_size=20),
    as_string=st.booleans(),
    probe_int32=st.booleans(),
    big=st.booleans(),
)
def test_enrich_equals_dict_lookup(
    ref: dict[int, str | None], keys: list[int | None], as_string: bool, probe_int32: bool,
    big: bool,
) -> None:
    if big:  # past the size where integer keys switch from binary search to a hash
        keys = keys * 200
    conv = (lambda k: None if k is None else f"k{k}") if as_string else (lambda k: k)
    table = pa.table(
        {
            "id": pa.array(
                [conv(k) for k in ref], pa.string() if as_string else pa.int64()
            ),
            "label": pa.array(list(ref.values()), pa.string()),
        }
    )
    rt = ReferenceTable(table, "id")
    batch = pa.record_batch(
        {
            "user": pa.array(
                [conv(k) for k in keys],
                pa.string() if as_string else pa.int32() if probe_int32 else pa.int64(),
            ),
            "n": pa.array(range(len(keys)), pa.int64()),
        }
    )
    out = rt.lookup(batch, "user").to_pylist()
    assert out == [
        {"user": conv(k), "n": i, "label": ref.get(k) if k is not None else None}
        for i, k in enumerate(keys)
    ]
    # a second batch reuses the snapshot's sorted keys (integers) and must agree too
    assert rt.lookup(batch.slice(1), "user").to_pylist() == out[1:]
