"""Tests of the metadata strand: one conformance suite, run against every backend."""
