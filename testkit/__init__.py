"""Helpers that tests, benchmarks and the smoke test share: one copy of each, for development only.

This package never ships: it is not in chalicelib/, in any Lambda layer or in the function
zip (deploy/layers.py zips app.py, chalicelib/ and Chalice's runtime only, and `chalice
package` copies app.py, chalicelib/ and vendor/; tests/test_package.py checks both).
Kept import-free: `python -m bench.child` imports testkit.events in a process whose
imports are being measured.
"""
