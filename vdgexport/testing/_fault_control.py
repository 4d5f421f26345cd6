"""Fault injection of the simulator: what `SenseSimulator.inject` queues, and serving it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import anyio
import anyio.from_thread
import anyio.lowlevel

from ._asgi import Response, Send
from ._faults import DEFAULT_RANDOM_FAULTS, Fault, FaultPlan, FaultSpec, fault_response
from ._requests import Hung

__all__ = ["FaultControl"]


class FaultControl:
    """The fault half of `SenseSimulator`: queued and random faults, hung requests."""

    _faults: FaultPlan
    _hung: list[Hung]

    # -- faults ----------------------------------------------------------------------------

    def inject(
        self,
        fault: Fault,
        *,
        times: int = 1,
        status: int = 503,
        retry_after: float | None = None,
        seconds: float = 0.0,
    ) -> None:
        """Serve ``fault`` to the next ``times`` requests to ``/command`` (first in, first out).

        ``status`` and ``retry_after`` shape a :attr:`Fault.STATUS` answer, ``seconds`` the
        delay of :attr:`Fault.LATENCY`. Example::

            sim.inject(Fault.STATUS, status=503, retry_after=2, times=2)
        """
        spec = FaultSpec(fault, status=status, retry_after=retry_after, seconds=seconds)
        self._faults.inject(spec, times)

    def inject_random(
        self, rate: float, *, seed: int = 0, faults: Sequence[Fault] = DEFAULT_RANDOM_FAULTS
    ) -> None:
        """From now on fail each ``/command`` request with probability ``rate``.

        The fault is a random one of ``faults``; the draws come from ``random.Random(seed)``,
        so a run is reproducible. Queued :meth:`inject` faults go first. ``rate=0`` turns it off.
        """
        self._faults.set_random(rate, seed, faults)

    def release_hung(self) -> None:
        """Let every request held by :attr:`Fault.HANG` answer now (callable from any thread)."""
        hung, self._hung = self._hung, []
        for held in hung:
            if held.thread == threading.get_ident():
                held.event.set()
            else:
                anyio.from_thread.run_sync(held.event.set, token=held.token)

    @property
    def hung_count(self) -> int:
        """How many requests :attr:`Fault.HANG` holds right now."""
        return len(self._hung)

    async def _serve_fault(
        self, spec: FaultSpec, answer: Callable[[], Response], send: Send
    ) -> None:
        if spec.fault is Fault.LATENCY:
            await anyio.sleep(spec.seconds)
        elif spec.fault is Fault.HANG:
            await self._hang()
        elif spec.fault is Fault.RESET:
            await answer().send_then_reset(send)
            return
        elif spec.fault is Fault.TRUNCATED:
            await answer().send_truncated(send)
            return
        else:
            await fault_response(spec).send(send)
            return
        await answer().send(send)

    async def _hang(self) -> None:
        held = Hung(anyio.Event(), anyio.lowlevel.current_token())
        self._hung.append(held)
        try:
            await held.event.wait()
        finally:
            if held in self._hung:
                self._hung.remove(held)
