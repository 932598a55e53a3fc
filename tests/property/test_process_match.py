"""Hyperscan match against ``pattern in text`` per record (nulls, slices, unicode, case)."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.process.cpu.match import match_cpu
from plait.process.match import PatternSet

alphabet = st.sampled_from("abAB é😀")
texts = st.lists(st.none() | st.text(alphabet=alphabet, max_size=12), max_size=12)
patterns = st.lists(
    st.text(alphabet=alphabet, min_size=1, max_size=3), min_size=1, max_size=6
)


def fold(b: bytes) -> bytes:
    return bytes(c + 32 if 65 <= c <= 90 else c for c in b)  # ASCII only, as Hyperscan


@settings(max_examples=200, deadline=None)
@given(
    texts=texts,
    pats=patterns,
    caseless=st.booleans(),
    cut=st.integers(0, 3),
    binary=st.booleans(),
)
def test_match_equals_reference(
    texts: list[str | None], pats: list[str], caseless: bool, cut: int, binary: bool
) -> None:
    arr = pa.array(texts, type=pa.string())
    if binary:
        arr = arr.cast(pa.binary())
    arr = arr.slice(min(cut, len(texts)))  # non-zero array offset into shared buffers
    ps = PatternSet.of(pats, caseless=caseless)
    res = match_cpu(arr, ps)
    expected = []
    for t in texts[min(cut, len(texts)) :]:
        if t is None:
            expected.append([])
            continue
        hay = t.encode()
        hay = fold(hay) if caseless else hay
        expected.append(
            sorted(
                {
                    i
                    for i, p in enumerate(ps.patterns)
                    if (fold(p) if caseless else p) in hay
                }
            )
        )
    assert res.ids.to_pylist() == expected
    assert res.any.to_pylist() == [bool(e) for e in expected]
