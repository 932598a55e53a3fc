"""``plait bench process``: decode -> filter -> enrich -> match on synthetic ~200-byte JSON
events, at several batch sizes, for (a) a plain-Python per-record loop (how per-record
stream frameworks process), (b) the CPU engine, (c) the GPU engine when present.

Per-operator rates are rows that operator received per second (filter passes ~20% of rows
on to enrich and match); end to end is input events per second, decode included. Each
figure is the median of timed runs after one untimed warm-up run (which loads compiled
kernels and touches memory): three runs, or as many as fit in ~0.3 s (at most 301) for
small batches; the loop and the engines are measured alike.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import click
import numpy as np
import pyarrow as pa

from plait.pipeline import RawBatch, pipeline
from plait.process.bench_data import (
    FILTER,
    PATTERNS,
    SCHEMA,
    make_events,
    users_dict,
    users_table,
)
from plait.process.cpu.expr_compile import compile_expr
from plait.process.engine import Engine, EngineSelector
from plait.process.enrich import ReferenceTable
from plait.process.errors import GpuUnavailableError
from plait.process.match import PatternSet

DEFAULT_BATCHES = (1_000, 65_536, 1_000_000)


MIN_RUNS, MAX_RUNS = 3, 301
TIMED_SECONDS = 0.3  # per figure: a 1k-event batch takes ~1 ms, so three runs were noise


def _best(fn: Callable[[], Any], n_rows: int) -> tuple[float, Any]:
    """Median rows/s of timed calls after one warm-up call: at least three, then more until
    ~0.3 s have passed (at most 301), so that small batches are timed often enough for a
    stable median. The count is not taken from the warm-up call's time: that call also
    pays one-time costs (kernels loaded from cache), and left a 1k batch timed ~6 times."""
    out = fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < MAX_RUNS and (
        len(times) < MIN_RUNS or time.perf_counter() - start < TIMED_SECONDS
    ):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    mid = statistics.median(times)
    return (n_rows / mid if mid > 0 else float("inf")), out


def bench_loop(events: list[bytes]) -> dict[str, float]:
    users = users_dict()
    pats = PATTERNS
    countries = ("DE", "FR")
    r_dec, docs = _best(lambda: [json.loads(e) for e in events], len(events))
    r_fil, kept = _best(
        lambda: [d for d in docs if d["amount"] > 100 and d["country"] in countries],
        len(docs),
    )

    def enrich() -> list[dict[str, Any]]:
        out = []
        for d in kept:
            u = users.get(d["user_id"])
            out.append(
                {
                    **d,
                    "segment": u["segment"] if u else None,
                    "risk": u["risk"] if u else None,
                }
            )
        return out

    r_enr, rich = _best(enrich, len(kept))
    r_mat, _ = _best(
        lambda: [any(p in d["note"] for p in pats) for d in rich], len(rich)
    )

    def end_to_end() -> int:
        n = 0
        for e in events:
            d = json.loads(e)
            if d["amount"] > 100 and d["country"] in countries:
                u = users.get(d["user_id"])
                d["segment"] = u["segment"] if u else None
                d["risk"] = u["risk"] if u else None
                d["match_any"] = any(p in d["note"] for p in pats)
                n += 1
        return n

    r_e2e, _ = _best(end_to_end, len(events))
    return {
        "decode": r_dec,
        "filter": r_fil,
        "enrich": r_enr,
        "match": r_mat,
        "end_to_end": r_e2e,
    }


def bench_engine(engine: Engine, events: list[bytes]) -> dict[str, float]:
    ref = ReferenceTable(users_table(), "user_id")
    ps = PatternSet.of(PATTERNS)
    r_dec, res = _best(lambda: engine.decode(events, SCHEMA, "json"), len(events))
    batch: pa.RecordBatch = res.batch
    expr = compile_expr(FILTER, batch.schema, want="bool")
    r_fil, kept = _best(
        lambda: batch.filter(engine.evaluate(expr, batch)), batch.num_rows
    )
    r_enr, rich = _best(lambda: ref.lookup(kept, "user_id"), kept.num_rows)
    r_mat, _ = _best(lambda: engine.match(rich.column("note"), ps), rich.num_rows)

    selector = EngineSelector(engine.name, gpu=engine if engine.name == "gpu" else None)
    offsets = np.arange(len(events), dtype=np.int64)

    # the product path: a pipeline, which runs the GPU engine as one device chain
    p = (pipeline(engine=selector).decode(SCHEMA).filter(FILTER)
         .enrich(ref, on="user_id").match(PATTERNS, field="note"))

    def end_to_end() -> int:
        return sum(b.num_rows for b in p.process(RawBatch(events, offsets)))

    r_e2e, _ = _best(end_to_end, len(events))
    out = {
        "decode": r_dec,
        "filter": r_fil,
        "enrich": r_enr,
        "match": r_mat,
        "end_to_end": r_e2e,
    }
    if engine.name == "gpu":
        r_fem, _ = _best(_device_filter_enrich_match(engine, batch, ref, ps), batch.num_rows)
        out["filter_enrich_match_on_device"] = r_fem
    return out


def _device_filter_enrich_match(engine: Any, batch: pa.RecordBatch, ref: ReferenceTable,
                                ps: PatternSet) -> Callable[[], int]:
    """Filter + enrich + match of decoded columns on the device, transfers included: the
    four columns used go up, the surviving rows' reference positions and match bits come
    back. The expression and the sorted keys are prepared once, outside the timing."""
    from plait.process.gpu.columns import column_kinds, upload_column
    from plait.process.gpu.enrich_device import DeviceEnricher
    from plait.process.gpu.expr_device import DeviceExpr
    from plait.process.gpu.match_kernel import match_device

    backend = engine.backend
    expr = DeviceExpr(FILTER, column_kinds(batch.schema), backend)
    enricher = DeviceEnricher(backend, ref)
    n = batch.num_rows

    def run() -> int:
        cols = {c: upload_column(backend, batch.column(c))
                for c in ("amount", "country", "user_id", "note")}
        live = expr.mask(cols, n)
        pos = enricher.positions(ref.snapshot(), cols["user_id"], "user_id")
        note = cols["note"]
        hits = match_device(backend, note.data.data, note.data.offsets,
                            live & note.data.valid, ps.patterns, ps.caseless)
        rows = backend.xp.nonzero(live)[0]
        backend.to_host(pos[rows])
        backend.to_host(hits[rows])
        return int(rows.shape[0])

    return run


def run_bench(engine: str, batches: tuple[int, ...]) -> dict[str, Any]:
    engines: dict[str, Engine | str] = {}
    if engine in ("auto", "cpu", "all"):
        engines["cpu"] = EngineSelector("cpu").pick("decode", 0)
    if engine in ("auto", "gpu", "all"):
        try:
            sel = EngineSelector("gpu")
            assert sel.gpu is not None
            engines["gpu"] = sel.gpu
        except GpuUnavailableError as exc:
            engines["gpu"] = f"unavailable: {exc.reason}"
    result: dict[str, Any] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "event_bytes": None,
        "results": [],
    }
    for n in batches:
        events = make_events(n)
        result["event_bytes"] = round(sum(map(len, events)) / max(n, 1), 1)
        row: dict[str, Any] = {"batch": n, "python_loop": bench_loop(events)}
        for name, eng in engines.items():
            row[name] = eng if isinstance(eng, str) else bench_engine(eng, events)
        cpu = row.get("cpu")
        if isinstance(cpu, dict):
            row["cpu_speedup_end_to_end"] = round(
                cpu["end_to_end"] / row["python_loop"]["end_to_end"], 2
            )
        gpu = row.get("gpu")
        if isinstance(cpu, dict) and isinstance(gpu, dict):
            row["gpu_speedup_over_cpu_end_to_end"] = round(
                gpu["end_to_end"] / cpu["end_to_end"], 2
            )
        result["results"].append(row)
    return result


@click.command("process")
@click.option(
    "--engine",
    type=click.Choice(["auto", "cpu", "gpu", "all"]),
    default="all",
    show_default=True,
)
@click.option(
    "--batch",
    "batches",
    type=int,
    multiple=True,
    help="Batch size; repeat for several (default 1k, 64k, 1M).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_process(engine: str, batches: tuple[int, ...], as_json: bool) -> None:
    """Events/s per operator and end to end: Python loop vs CPU engine vs GPU engine."""
    res = run_bench(engine, batches or DEFAULT_BATCHES)
    if as_json:
        click.echo(json.dumps(res))
        return
    click.echo(f"events of ~{res['event_bytes']} bytes on {res['machine']}")
    for row in res["results"]:
        click.echo(f"batch {row['batch']}:")
        for name in ("python_loop", "cpu", "gpu"):
            r = row.get(name)
            if r is None:
                continue
            if isinstance(r, str):
                click.echo(f"  {name:12s} {r}")
                continue
            cells = "  ".join(f"{k}={v / 1e6:7.2f}M/s" for k, v in r.items())
            click.echo(f"  {name:12s} {cells}")
        if "cpu_speedup_end_to_end" in row:
            click.echo(
                f"  cpu end-to-end speedup over loop: {row['cpu_speedup_end_to_end']}x"
            )
        if "gpu_speedup_over_cpu_end_to_end" in row:
            click.echo(
                f"  gpu end-to-end speedup over cpu: {row['gpu_speedup_over_cpu_end_to_end']}x"
            )


if __name__ == "__main__":
    bench_process()
