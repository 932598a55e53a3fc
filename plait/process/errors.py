"""Errors of the processing subsystem (operators, engines, expressions).

Every class derives from :class:`plait.errors.PlaitError`. Messages say what was expected,
what arrived and where (expression column, record position, file).
"""

from __future__ import annotations

from plait.errors import ConfigError, PlaitError


class ProcessError(PlaitError):
    """Base class of errors raised while building or running a processing pipeline."""


class ExpressionError(ProcessError, ValueError):
    """An expression was rejected; carries the source text and the 0-based column.

    ``str(err)`` ends with the expression and a caret line under the offending column, so the
    CLI can print it as is.
    """

    def __init__(self, message: str, text: str, column: int) -> None:
        self.text = text
        self.column = column
        self.reason = message
        caret = " " * column + "^"
        super().__init__(f"{message} at column {column + 1}\n  {text}\n  {caret}")


class ExpressionSyntaxError(ExpressionError):
    """The expression does not parse (unexpected token, unclosed string or parenthesis)."""


class ExpressionTypeError(ExpressionError):
    """The expression parses but its types do not fit (unknown column, 'a' + 1, ...)."""


class EvaluationError(ProcessError):
    """An expression failed on data (integer overflow)."""


class SchemaError(ProcessError, ConfigError):
    """A declared schema, or a batch's schema, is not what an operator needs."""


class EnrichError(ProcessError):
    """The reference table of an enrich step could not be loaded or is not usable."""


class UnknownReferenceTopicError(EnrichError):
    """An enrich step's reference table names a topic that does not exist; ``topic`` is it."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"reference table: expected an existing topic, {topic!r} does not exist")


class KeyRingError(ProcessError, ConfigError):
    """A key ring is malformed (bad key length, bad encoding)."""


class SinkError(ProcessError):
    """A sink could not write a batch (missing offset column, bad partition column)."""


class GpuUnavailableError(ProcessError):
    """The GPU engine was asked for but cannot run here; ``reason`` says why.

    ``engine="auto"`` never raises this: it silently uses the CPU engine.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"GPU engine unavailable: {reason}")
