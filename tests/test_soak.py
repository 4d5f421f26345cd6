"""A small soak in CI: the same code as ``python -m benchmarks.soak``, at a tenth of the size.

100 watches over 20 exports, 10 % of answers faulted, two restarts (one with id reuse),
5 simulated minutes: every watch ends as the simulator's ground truth says, every event is
checked, nothing is left running, memory comes back down.
"""

from __future__ import annotations

import pytest

from benchmarks.soak import Settings, run


@pytest.mark.parametrize("seed", [6, 7])
async def test_soak_small(seed: int) -> None:
    settings = Settings(watches=100, exports=20, minutes=5, seed=seed, step_timeout=10)
    report = await run(settings)
    assert report.problems == [], report.summary()
    assert report.matched == report.watches == 100
    assert report.restarts == 2
    assert report.faults > 0
    assert report.events > report.watches * 5
    # Every kind of ending happened, so each was checked against the ground truth.
    assert set(report.outcomes) == {"COMPLETED", "REMOVED", "NOT_FOUND", "REPLACED"}
