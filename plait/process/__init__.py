"""Columnar event processing: the operators and engines under plait.pipeline.

Layers: ``expr`` (parser, no Arrow), ``cpu`` (reference engine), ``gpu`` (CuPy twin,
imported lazily), engine-neutral operators (match layout, enrich, window, decrypt layout,
sinks), and ``engine`` (Protocols and per-batch choice). Nothing here imports
plait.pipeline or plait.cli.
"""

from plait.process.deadletter import DeadLetter
from plait.process.decrypt import KeyRing, encrypt_value
from plait.process.engine import CPU, CpuEngine, EngineSelector, calibrate
from plait.process.enrich import ReferenceTable
from plait.process.enrich_topic import TopicReferenceTable
from plait.process.errors import (
    EnrichError,
    EvaluationError,
    ExpressionError,
    ExpressionSyntaxError,
    ExpressionTypeError,
    GpuUnavailableError,
    KeyRingError,
    ProcessError,
    SchemaError,
    SinkError,
    UnknownReferenceTopicError,
)
from plait.process.match import MatchResult, PatternSet
from plait.process.schema import Schema
from plait.process.session import SessionSpec, SessionWindowOperator
from plait.process.sinks import (
    BatchProducer,
    CallbackSink,
    ParquetSink,
    Sink,
    TopicSink,
)
from plait.process.sketch import LogSketch
from plait.process.window import WindowOperator, WindowSpec

__all__ = [
    "CPU",
    "BatchProducer",
    "CallbackSink",
    "CpuEngine",
    "DeadLetter",
    "EngineSelector",
    "EnrichError",
    "EvaluationError",
    "ExpressionError",
    "ExpressionSyntaxError",
    "ExpressionTypeError",
    "GpuUnavailableError",
    "KeyRing",
    "KeyRingError",
    "LogSketch",
    "MatchResult",
    "ParquetSink",
    "PatternSet",
    "ProcessError",
    "ReferenceTable",
    "Schema",
    "SchemaError",
    "SessionSpec",
    "SessionWindowOperator",
    "Sink",
    "SinkError",
    "TopicReferenceTable",
    "TopicSink",
    "UnknownReferenceTopicError",
    "WindowOperator",
    "WindowSpec",
    "calibrate",
    "encrypt_value",
]
