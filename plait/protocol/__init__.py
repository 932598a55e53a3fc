"""Kafka wire formats as bytes in, values out: no sockets, no files (sans-IO)."""
