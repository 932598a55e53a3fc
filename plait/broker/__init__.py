"""``plait serve``: the embedded log behind the Kafka wire protocol.

Layers, bottom up: ``codec`` and ``fetch_wire`` (bytes only), ``handlers`` (one module
per API family), ``coordinator`` (consumer-group state machine), ``server`` (asyncio
connections and limits), ``app`` (wiring, signals, shutdown order).
"""

from plait.broker.app import BrokerApp, ServeOptions, run
from plait.broker.config import BrokerConfig
from plait.broker.errors import BrokerError, error_for_code

__all__ = ["BrokerApp", "BrokerConfig", "BrokerError", "ServeOptions", "error_for_code", "run"]
