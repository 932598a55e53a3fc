"""The functions strand: pipeline steps that read a topic, transform, write a topic."""

from plait.functions.errors import (
    ForeignOutputError,
    OutputTooLargeError,
    StepConfigError,
    StepError,
)
from plait.functions.step import Step

__all__ = ["ForeignOutputError", "OutputTooLargeError", "Step", "StepConfigError", "StepError"]
