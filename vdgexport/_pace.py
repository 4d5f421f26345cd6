"""When the poller sends its next status request (DESIGN §7), kept apart from what it sends.

Rules: the next tick is due ``interval`` after the last request went out; the interval
is ``poll_interval`` while something changes and stretches by a jittered factor up to
``max_poll_interval`` while nothing does. A new id is polled at once unless a request
went out less than ``poll_interval`` ago; then it joins the next tick, which is then due
``poll_interval`` after that request, even while the pace has stretched. After a failure
the next tick waits for the backoff (at least ``poll_interval``), and a new id does not
cut that wait short: the server asked for it (``Retry-After``) or is down.
"""

from __future__ import annotations

import random

__all__ = ["STRETCH", "Pace"]

#: The pace stretches by a random factor in this range after each tick without change.
STRETCH = (1.25, 1.75)


class Pace:
    """The poller's timetable, in the event loop's clock (seconds)."""

    __slots__ = ("_backing_off", "_joined", "_max", "_min", "due", "interval", "last")

    def __init__(self, poll_interval: float, max_poll_interval: float) -> None:
        self._min, self._max = poll_interval, max(poll_interval, max_poll_interval)
        self.interval = poll_interval
        #: When the last request went out (status or confirmation).
        self.last = float("-inf")
        #: When the next tick is due.
        self.due = float("-inf")
        self._joined = False  # a new id waits for the next tick
        self._backing_off = False

    def sent(self, now: float) -> None:
        """A request goes out now."""
        self.last = now

    def join(self, now: float) -> bool:
        """A new id is watched; ``True`` if the next tick moved earlier (wake the poller)."""
        self._joined = True
        if self._backing_off:
            return False
        due = max(now, self.last + self._min)
        if due < self.due:
            self.due = due
            return True
        return False

    def start(self) -> None:
        """A tick starts: it polls every id watched so far."""
        self._joined = False

    def succeeded(self, changed: bool) -> None:
        """The tick answered; ``changed``: something moved (or more is queued)."""
        self._backing_off = False
        if changed:
            self.interval = self._min
        else:
            self.interval = min(self._max, self.interval * random.uniform(*STRETCH))
        self.due = self.last + (self._min if self._joined else self.interval)

    def reset(self) -> None:
        """Nothing is watched any more: the next id starts afresh, with no backoff kept
        (still ``poll_interval`` after the last request)."""
        self._backing_off = False
        self.interval = self._min
        self.due = self.last + self._min

    def failed(self, now: float, delay: float) -> None:
        """The tick failed; wait ``delay`` (the backoff) from now, at least the interval."""
        self._backing_off = True
        self.interval = self._min
        self.due = max(self.last + self._min, now + delay)
