"""A clock that tests move by hand."""

from __future__ import annotations

__all__ = ["ManualClock"]


class ManualClock:
    """A clock the test moves by hand: simulator time never passes on its own.

    Pass it to :class:`~vdgexport.testing.SenseSimulator` as ``clock`` so exports advance
    only when the test says so, without sleeping::

        >>> clock = ManualClock()
        >>> clock()
        0.0
        >>> clock.advance(2.5)
        >>> clock()
        2.5
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        """Start the clock at ``start`` seconds."""
        self._now = float(start)

    def __call__(self) -> float:
        """Return the current time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (zero or more).

        Raises:
            ValueError: ``seconds`` is negative: time never runs backwards.
        """
        if seconds < 0:
            raise ValueError(f"a clock cannot go back in time (advance by {seconds!r})")
        self._now += seconds

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"
