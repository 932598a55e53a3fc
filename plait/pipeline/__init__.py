"""Columnar pipelines over Arrow record batches: ``pipeline(source).decode(...).filter(...)``."""

from plait.pipeline.builder import Pipeline, RunStats, pipeline
from plait.pipeline.steps import RawBatch

__all__ = ["Pipeline", "RawBatch", "RunStats", "pipeline"]
