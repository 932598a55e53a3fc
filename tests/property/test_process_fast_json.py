"""Property: the numba JSON fast path plus its per-record fallback gives exactly the table
and dead letters of the per-record msgspec reference, for random records with every edge
case the kernels must either decode exactly or hand over (escapes, unicode, invalid UTF-8,
-0, exponents, huge ints, duplicate keys, nesting, malformed text, random whitespace)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from plait.process.cpu import fast_json
from plait.process.cpu.decode import DecodeResult, _per_record, decode_records
from plait.process.schema import Schema

SCHEMA = Schema.of(
    {"i": "int", "f": "float", "s": "string", "b": "bool", "long_name_x": "int"}
)
KEYS = ["i", "f", "s", "b", "long_name_x", "long_name_y", "x", "é", "ii", ""]
WS = st.text(alphabet=" \t\r\n", max_size=2)

digits = st.text(alphabet="0123456789", min_size=1, max_size=22)
int_text = st.one_of(
    st.integers(-(2**64), 2**64).map(str),
    st.sampled_from(["-0", "0", "9223372036854775807", "-9223372036854775808"]),
    st.sampled_from(["9223372036854775808", "-9223372036854775809", "01", "-", "1-"]),
)
number_text = st.builds(
    lambda sign, whole, frac, exp: sign + whole + frac + exp,
    st.sampled_from(["", "-"]),
    st.one_of(
        st.just("0"), digits.filter(lambda d: d[0] != "0"), digits
    ),  # "01" is bad
    st.one_of(st.just(""), digits.map(lambda d: "." + d), st.just(".")),
    st.one_of(
        st.just(""),
        st.builds(
            lambda e, s, d: e + s + d,
            st.sampled_from(["e", "E"]),
            st.sampled_from(["", "+", "-"]),
            st.one_of(digits.map(lambda d: d[:3]), st.just("")),
        ),
    ),
)
float_text = st.one_of(
    number_text,
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        ["1e5", "1E+2", "-0.0", "-0e5", "1e400", "1e-400", "4.9e-324", ".5", "NaN"]
    ),
)
string_text = st.one_of(
    st.tuples(st.text(max_size=8), st.booleans()).map(
        lambda t: json.dumps(t[0], ensure_ascii=t[1])
    ),
    st.lists(
        st.sampled_from(
            [
                "a",
                "é",
                "€",
                "😀",
                "\\n",
                '\\"',
                "\\\\",
                "\\/",
                "\\u00e9",
                "\\ud83d\\ude00",
                "\\ud800",
                "\\udc00",
                "\\x",
                "\\u12",
                "\x01",
                "\x7f",
                "\t",
            ]
        ),
        max_size=5,
    ).map(lambda parts: '"' + "".join(parts) + '"'),
)
scalar = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=4)
nested = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=6,
).map(json.dumps)
value_text = st.one_of(
    int_text,
    float_text,
    string_text,
    st.sampled_from(
        ["true", "false", "null", "tru", "nul", "[]", "{}", "[1,]", '{"a":1,}']
    ),
    nested,
    st.just("[" * 70 + "]" * 70),
)


@st.composite
def record(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(st.sampled_from(KEYS), value_text), max_size=6))
    parts = []
    for key, val in pairs:
        k = draw(
            st.sampled_from([json.dumps(key), json.dumps(key, ensure_ascii=False)])
        )
        if key == "i" and draw(st.integers(0, 9)) == 0:
            k = '"\\u0069"'  # escaped key
        parts.append(draw(WS) + k + draw(WS) + ":" + draw(WS) + val + draw(WS))
    text = draw(WS) + "{" + ",".join(parts) + draw(WS) + "}" + draw(WS)
    raw = text.encode("utf-8", "surrogatepass")
    damage = draw(st.integers(0, 9))
    if damage == 0 and raw:  # truncate
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif damage == 1:  # splice in a byte that may be invalid UTF-8 or structure
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at:]
    elif damage == 2:
        raw = raw + draw(st.sampled_from([b"x", b"{}", b",", b"\x00"]))
    return raw


values = st.one_of(
    record(), st.binary(max_size=12), st.none(), st.sampled_from([b"[]", b"1", b"null"])
)


def exact(res: DecodeResult) -> list[dict[str, Any]]:
    return [
        {
            k: (v, math.copysign(1.0, v)) if isinstance(v, float) else v
            for k, v in r.items()
        }
        for r in res.batch.to_pylist()
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=12))
def test_fast_path_equals_reference(batch: list[bytes | None]) -> None:
    fast = decode_records(batch, SCHEMA, "json")  # type: ignore[arg-type]
    ref = _per_record(batch, SCHEMA, "json")  # type: ignore[arg-type]
    assert fast.good.tolist() == ref.good.tolist()
    assert fast.errors == ref.errors
    assert fast.batch.schema == ref.batch.schema
    assert exact(fast) == exact(ref)


clean_value = {
    "i": st.integers(-(2**63), 2**63 - 1),
    "long_name_x": st.integers(-(2**63), 2**63 - 1),
    "f": st.one_of(
        st.integers(-(2**53), 2**53),
        st.builds(
            lambda m, e: m * 10.0**e, st.integers(-(10**15), 10**15), st.integers(-7, 7)
        ),
        st.floats(-1e6, 1e6).map(lambda v: round(v, 3)),
    ),
    "s": st.text(),
    "b": st.booleans(),
}


@st.composite
def clean_record(draw: st.DrawFn) -> bytes:
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=8))
    doc = {}
    for k in keys:
        v = (
            draw(clean_value[k])
            if k in clean_value
            else draw(st.none() | st.text(max_size=3))
        )
        doc[k] = draw(st.none()) if draw(st.integers(0, 5)) == 0 else v
    return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()


@settings(max_examples=150, deadline=None)
@given(st.lists(clean_record(), min_size=1, max_size=10))
def test_clean_records_never_leave_the_fast_path(batch: list[bytes]) -> None:
    # Floats repr'd by json.dumps with <= 15 significant digits and small exponents, ints
    # in range, any unicode (escaped or raw): all must be decoded by the kernels.
    flagged = fast_json.flagged_positions(batch, SCHEMA)
    hard = [k for k, raw in enumerate(batch) if _hard_float(raw)]
    assert flagged is not None and set(flagged) <= set(hard)
    fast = decode_records(batch, SCHEMA, "json")
    ref = _per_record(batch, SCHEMA, "json")
    assert fast.good.tolist() == ref.good.tolist() == list(range(len(batch)))
    assert exact(fast) == exact(ref)


def _hard_float(raw: bytes) -> bool:
    """Whether the record's float needs more than Clinger's fast path (the reference's job)."""
    f = json.loads(raw).get("f")
    if not isinstance(f, float) or f == 0.0:
        return False
    text = repr(f)
    mant, _, exp = text.partition("e")
    sig = mant.replace("-", "").replace(".", "").lstrip("0")
    frac = len(mant.partition(".")[2]) if "." in mant else 0
    e10 = (int(exp) if exp else 0) - frac
    return len(sig) > 15 or not -22 <= e10 <= 22
