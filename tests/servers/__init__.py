"""Helpers that start real servers (etcd, ...) on free loopback ports for tests."""
