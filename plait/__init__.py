"""plait: an ordered, durable, low-latency event-streaming platform for Python."""

from plait.errors import PlaitError

__all__ = ["PlaitError"]
__version__ = "0.1.0"
