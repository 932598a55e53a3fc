"""Benchmarks behind ``plait bench``: measurements, never pass/fail tests."""
