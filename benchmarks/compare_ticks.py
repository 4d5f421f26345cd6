"""Warm and all-changed ticks of `ListParser.parse`, for before/after comparisons.

Runs against whatever ``vdgexport`` and ``benchmarks._common`` come first on the path, so
that an older checkout can be measured with the same code (it needs only
``ListParser.parse`` and ``simulator_body``)::

    python benchmarks/compare_ticks.py                               # this checkout
    cd OLD_CHECKOUT && PYTHONPATH=. python NEW/benchmarks/compare_ticks.py   # before
"""

from __future__ import annotations

import gc
import re
import statistics
import time

from benchmarks._common import simulator_body
from vdgexport._incremental import ListParser

_BANDWIDTH = re.compile(rb"</bandwidth>")


def _changed(body: bytes, tag: bytes, every: int) -> bytes:
    counter = iter(range(10**9))
    return _BANDWIDTH.sub(
        lambda m: tag + m.group(0) if next(counter) % every == 0 else m.group(0), body
    )


def main(exports: int = 10_000, rounds: int = 15) -> None:
    """Print best and median ms of a tick with 1% and with every export changed."""
    base = simulator_body(exports)
    for name, every in (("warm: 1% changed", 100), ("every export changed", 1)):
        bodies = [_changed(base, b"1", every), _changed(base, b"2", every)]
        parser = ListParser()
        parser.parse(bodies[1])
        times = []
        for n in range(rounds):
            gc.collect()
            start = time.perf_counter()
            parser.parse(bodies[n % 2])
            times.append(time.perf_counter() - start)
        print(
            f"{name}: best {min(times) * 1e3:.1f} ms, median {statistics.median(times) * 1e3:.1f}"
        )


if __name__ == "__main__":
    main()
