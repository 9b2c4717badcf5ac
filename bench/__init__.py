"""Benchmarks (run as scripts; not timed tests)."""
