"""`Leaving`: what `Watch` and `ListWatch` share: waiting for the poller, and leaving.

A subclass says how it subscribes (``_start``), unsubscribes keeping what was read
(``_suspend``) and leaves for good (``aclose``).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypeVar

from . import _wakeup

__all__ = ["Leaving"]

_L = TypeVar("_L", bound="Leaving")


class Leaving:
    """Subscribes when entered or iterated, leaves when exited, when its waiter is
    cancelled or when the task that reads it is cancelled; the poller side wakes it."""

    __slots__ = ("_binding", "_error", "_ready")

    def __init__(self) -> None:
        self._ready: list[Any] | None = None  # the tasks waiting for it
        self._error: BaseException | None = None  # what ends it, raised once
        self._binding: object = None  # to the task that reads it (`_wakeup.bind`)

    def _start(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def _suspend(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    async def aclose(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def __aiter__(self: _L) -> _L:
        return self

    async def __aenter__(self: _L) -> _L:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _raise_error(self) -> None:
        """Raise the error that ended it, once."""
        if self._error is not None:
            error, self._error = self._error, None
            # One error may end many: each raise starts a fresh traceback.
            raise error.with_traceback(None)

    async def _sleep(self) -> None:
        """Wait until woken. Cancelled (or interrupted), the consumer may be gone for good,
        and the traceback keeps this frame, so this object, alive: unsubscribe now."""
        if self._ready is None:
            self._ready = []
        try:
            await _wakeup.wait(self._ready)
        except BaseException:
            self._suspend()
            raise

    def _bind(self) -> None:
        """Bind it to the task it yields to now: its consumer (see `_task_ended`). A
        waiting consumer needs none (`_sleep` hears of its cancellation), so an idle
        watch with its own consumer task costs nothing more."""
        self._binding = _wakeup.bind(self, self._binding)

    def _unbind(self) -> None:
        binding, self._binding = self._binding, None
        if binding is not None:
            _wakeup.unbind(binding)

    def _task_ended(self) -> None:
        """The task that last read it was cancelled or failed, maybe while busy in its own
        loop body, where no `_sleep` hears of it (on asyncio the traceback then keeps a
        local ``watch = client.watch(id)`` alive): its consumer is gone, unsubscribe."""
        self._binding = None
        self._suspend()

    def _wake(self) -> None:
        ready, self._ready = self._ready, None
        if ready:
            _wakeup.wake(ready)
