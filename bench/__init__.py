"""Benchmarks of the house-prices service: `python -m bench [--quick] [--out FILE]`.

Scripts, never timed tests: they print a table and write JSON, and nothing here asserts a
time. Kept import-free, because `python -m bench.child` imports this package in a process
that must not load pandas before it has blocked it.
"""
