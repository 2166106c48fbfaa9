"""Benchmarks (run as scripts); importable as `bench.<name>` so tests reuse their builders."""
