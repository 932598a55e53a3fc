"""Errors of pipeline steps (the functions strand)."""

from __future__ import annotations

from plait.errors import ConfigError, PlaitError


class StepError(PlaitError):
    """Base class for pipeline-step failures."""


class StepConfigError(StepError, ConfigError):
    """A step was set up with topics or functions that cannot give exactly-once output."""


class ForeignOutputError(StepError):
    """The sink partition ends with a record this step did not write, so the step cannot
    tell which inputs are already reflected in it (exactly-once needs the sink to itself)."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(
            f"sink {topic}[{partition}] offset {offset}: expected a record with a "
            "'plait.src' header naming its input offset, found none"
        )


class OutputTooLargeError(StepError):
    """One input event's outputs do not fit one record batch of the sink's log."""

    def __init__(self, topic: str, partition: int, input_offset: int, size: int, limit: int) -> None:
        self.input_offset = input_offset
        super().__init__(
            f"outputs of input {topic}[{partition}]@{input_offset} need {size} bytes, "
            f"expected at most {limit} (the log's max_batch_bytes)"
        )
