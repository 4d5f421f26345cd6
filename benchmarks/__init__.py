"""Reproducible benchmarks of vdgexport, each measured beside a naive baseline in the same run.

Run them with ``python -m benchmarks`` (see ``benchmarks/README.md``). Nothing here asserts
a timing: the targets are reported as PASS or MISS for a reader, never enforced.
"""
