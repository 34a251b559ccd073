"""Benchmarks: the runner, suites and reports (never timed asserts in tests)."""
