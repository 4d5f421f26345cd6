"""Wait until woken: what an idle `Watch` consumer sleeps on, on asyncio and trio alike.

An idle watch costs memory for as long as its consumer waits, and a client may have
thousands of them. `anyio.Event` on asyncio wraps an `asyncio.Event` (a deque, a dict and
a future: about 1.5 KiB while a task waits); here a waiting task costs one future (asyncio)
or nothing but its place in a list (trio). The list is the watch's own, made when a task
starts to wait and dropped when it is woken.

Both are cancellation points, as `anyio.Event.wait` is: a cancelled waiter leaves the
list, and the cancellation propagates.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["wait", "wake"]


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
