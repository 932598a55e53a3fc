"""The embedded partitioned log: Kafka RecordBatch v2 segments on local disk.

No networking here; the broker, the fast lane and in-process clients build on this API.
"""

from plait.log.config import AppendResult, FsyncPolicy, LogConfig, TopicInfo
from plait.log.log import Log
from plait.log.partition import Partition

__all__ = ["AppendResult", "FsyncPolicy", "Log", "LogConfig", "Partition", "TopicInfo"]
