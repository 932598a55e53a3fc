"""Deterministic synthetic events for the benchmark and for engine calibration.

An event is a JSON object of 8 fields, about 200 bytes, like a payment service's (its free-text
``note`` contains one of PATTERNS in about 2% of events):
``{"event_id", "user_id", "amount", "country", "ts", "kind", "ok", "note"}``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from plait.process.decrypt import KeyRing, encrypt_value
from plait.process.match import PatternSet
from plait.process.schema import Schema

SCHEMA = Schema.of(
    {
        "event_id": "int",
        "user_id": "int",
        "amount": "float",
        "country": "string",
        "ts": "int",
        "kind": "string",
        "ok": "bool",
        "note": "string",
    }
)
FILTER = "amount > 100 and country in ('DE', 'FR')"
PATTERNS = [
    "fraud",
    "chargeback",
    "stolen",
    "phishing",
    "refund abuse",
    "account takeover",
    "card testing",
    "velocity",
    "money mule",
    "spoofed",
]
N_USERS = 10_000
_COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL"]
_WORDS = [
    "order",
    "shipped",
    "payment",
    "card",
    "refund",
    "customer",
    "support",
    "delivery",
    "invoice",
    "account",
    "login",
    "basket",
    "checkout",
    "coupon",
    "review",
    "return",
    "warehouse",
    "parcel",
    "gift",
    "address",
]
HIT_RATE = 0.02  # share of notes that contain a pattern: suspicious events are rare


def make_events(n: int, seed: int = 42) -> list[bytes]:
    """``n`` events, the same for the same (n, seed)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        out.append(
            json.dumps(
                {
                    "event_id": i,
                    "user_id": rnd.randrange(N_USERS),
                    "amount": round(rnd.uniform(0, 500), 2),
                    "country": rnd.choice(_COUNTRIES),
                    "ts": 1_700_000_000_000 + i * 13,
                    "kind": rnd.choice(["purchase", "view", "refund", "login"]),
                    "ok": rnd.random() < 0.95,
                    "note": _note(rnd),
                },
                separators=(", ", ": "),
            ).encode()
        )
    return out


def _note(rnd: random.Random) -> str:
    words = [rnd.choice(_WORDS) for _ in range(9)]
    if rnd.random() < HIT_RATE:
        words[rnd.randrange(9)] = rnd.choice(PATTERNS)
    return " ".join(words)


def users_table() -> pa.Table:
    """The enrich reference table: user_id -> segment, risk score."""
    ids = list(range(N_USERS))
    return pa.table(
        {
            "user_id": pa.array(ids, pa.int64()),
            "segment": [("gold", "silver", "bronze")[i % 3] for i in ids],
            "risk": [float((i * 37) % 100) / 100 for i in ids],
        }
    )


def users_dict() -> dict[int, dict[str, Any]]:
    t = users_table().to_pylist()
    return {r["user_id"]: r for r in t}


def op_tasks(
    op: str, n: int, cpu: Any, gpu: Any
) -> tuple[Callable[[], object], Callable[[], object]]:
    """Two thunks running ``op`` on the same ``n``-record input, on each engine."""
    events = make_events(n, seed=7)
    if op == "decode":
        return (
            lambda: cpu.decode(events, SCHEMA, "json"),
            lambda: gpu.decode(events, SCHEMA, "json"),
        )
    if op == "filter":
        from plait.process.cpu.expr_compile import compile_expr

        batch = cpu.decode(events, SCHEMA, "json").batch
        expr = compile_expr(FILTER, batch.schema, want="bool")
        return (lambda: cpu.evaluate(expr, batch), lambda: gpu.evaluate(expr, batch))
    if op == "match":
        notes = cpu.decode(events, SCHEMA, "json").batch.column("note")
        ps = PatternSet.of(PATTERNS)
        return (lambda: cpu.match(notes, ps), lambda: gpu.match(notes, ps))
    if op == "decrypt":
        key = bytes(range(32))
        ring = KeyRing({"k": key})
        vals = pa.array(
            [
                encrypt_value(key, e, nonce=i.to_bytes(12, "big"))
                for i, e in enumerate(events)
            ]
        )
        kids = pa.array(["k"] * n)
        return (
            lambda: cpu.decrypt(vals, kids, ring, None),
            lambda: gpu.decrypt(vals, kids, ring, None),
        )
    raise ValueError(f"op_tasks: expected decode, filter, match or decrypt, got {op!r}")
