"""Wait until woken: what an idle `Watch` consumer sleeps on, on asyncio and trio alike.

An idle watch costs memory for as long as its consumer waits, and a client may have
thousands of them. `anyio.Event` on asyncio wraps an `asyncio.Event` (a deque, a dict and
a future: about 1.5 KiB while a task waits); here a waiting task costs one future (asyncio)
or nothing but its place in a list (trio). The list is the watch's own, made when a task
starts to wait and dropped when it is woken.

Both are cancellation points, as `anyio.Event.wait` is: a cancelled waiter leaves the
list, and the cancellation propagates.

`bind` ties an object to the asyncio task that reads it, so that it hears when that task
is cancelled or fails: a consumer cancelled while busy in its own loop body is not in
`wait`, and the traceback of its cancellation keeps its frame, so its watch, alive until the
collector runs. trio needs none of it: there the frame of a cancelled task goes with it.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Protocol

__all__ = ["Bound", "bind", "unbind", "wait", "wake"]


async def wait(waiters: list[Any]) -> None:
    """Sleep until `wake` is called on ``waiters``; cancellation leaves the list."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no asyncio loop: anyio runs on trio
        await _wait_trio(waiters)
        return
    future = loop.create_future()
    waiters.append(future)
    try:
        await future
    finally:
        if future in waiters:  # cancelled before it was woken
            waiters.remove(future)


async def _wait_trio(waiters: list[Any]) -> None:
    import trio  # only reached on trio, where it is installed

    task = trio.lowlevel.current_task()
    waiters.append(task)

    def abort(_: object) -> trio.lowlevel.Abort:
        waiters.remove(task)
        return trio.lowlevel.Abort.SUCCEEDED

    await trio.lowlevel.wait_task_rescheduled(abort)


def wake(waiters: list[Any]) -> None:
    """Wake every task waiting on ``waiters`` (from the event loop's own thread)."""
    for waiter in waiters:
        if isinstance(waiter, asyncio.Future):
            if not waiter.done():  # a cancelled one leaves the list when its task resumes
                waiter.set_result(None)
        else:
            import trio

            trio.lowlevel.reschedule(waiter)
    waiters.clear()


class Bound(Protocol):
    """What `bind` ties to a task: told once, soon after that task is cancelled or fails."""

    def _task_ended(self) -> None: ...  # pragma: no cover - a protocol


def bind(owner: Bound, binding: object) -> object:
    """On asyncio, call ``owner._task_ended()`` soon after the current task ends by a
    cancellation or an error, unless `unbind` comes first. ``binding`` is what the previous
    call returned (``None`` at first): kept if it is to this task already, else undone.
    Returns what to hand to the next `bind` or `unbind` (on trio: ``None``, nothing to do).

    Neither the task nor ``owner`` is kept alive by it, and a freed ``owner`` leaves the
    task by itself (no garbage collector).
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no asyncio loop: anyio runs on trio
        return None
    if isinstance(binding, _TaskEnd):
        if binding.task() is task:
            return binding
        unbind(binding)
    if task is None:  # pragma: no cover - always in a task under anyio
        return None
    new = _TaskEnd(owner, _TaskEnd.freed)
    new.task = weakref.ref(task)  # one shared weak reference per task, no callback
    task.add_done_callback(new)
    return new


def unbind(binding: object) -> None:
    """Undo `bind`: its owner is not told when that task ends."""
    if isinstance(binding, _TaskEnd):
        binding.freed(binding)


class _TaskEnd(weakref.ref[Bound]):
    """A weak reference to the owner that is also the done-callback of its asyncio task."""

    __slots__ = ("task",)
    task: weakref.ref[asyncio.Task[Any]]

    def __call__(self, task: asyncio.Task[Any]) -> None:  # type: ignore[override]
        owner = weakref.ref.__call__(self)
        if owner is not None and (task.cancelled() or task.exception() is not None):
            owner._task_ended()  # a task that returned left its watches to others

    @staticmethod
    def freed(binding: weakref.ref[Bound]) -> None:
        assert isinstance(binding, _TaskEnd)
        task = binding.task()
        if task is not None:
            task.remove_done_callback(binding)
