"""Benchmarks: pacsbrowser's client and server against DCMTK on the same data, in one run.

Run with `make bench` (python -m benchmarks); see benchmarks/__main__.py and benchmarks/RESULTS.md.
Never part of the test suite.
"""
