"""Faults the simulator can serve instead of (or before) a real answer."""

from __future__ import annotations

import enum
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

from ._asgi import HTML_TYPE, TEXT_TYPE, XML_TYPE, Response

__all__ = ["DEFAULT_RANDOM_FAULTS", "Fault", "FaultPlan", "FaultSpec", "fault_response"]


class Fault(enum.Enum):
    """A failure the simulator serves to a ``/command`` request.

    Queue them with :meth:`SenseSimulator.inject` (for the next requests) or
    :meth:`SenseSimulator.inject_random` (at a rate)::

        sim.inject(Fault.STATUS, status=503, retry_after=2)
        sim.inject(Fault.LATENCY, seconds=0.5, times=3)
    """

    #: Delay the answer by ``seconds`` (real time, ``anyio.sleep``), then answer normally.
    LATENCY = "latency"
    #: Answer HTTP ``status`` (default 503) with a short text body, and a ``Retry-After``
    #: header when ``retry_after`` is set.
    STATUS = "status"
    #: A reverse proxy's HTML error page: HTTP 502, ``text/html``, nginx style.
    HTML = "html"
    #: Start the real answer (status, headers, first half of the body), then raise
    #: :class:`ConnectionResetError` from the app: ``httpx.ASGITransport`` re-raises it,
    #: a real server (uvicorn) aborts the connection.
    RESET = "reset"
    #: HTTP 200 with only the first half of the real body (``Content-Length`` matches it).
    TRUNCATED = "truncated"
    #: HTTP 200 ``text/xml`` with a body that is not well-formed XML.
    MALFORMED = "malformed"
    #: Never answer until :meth:`SenseSimulator.release_hung` is called, then answer normally.
    HANG = "hang"


DEFAULT_RANDOM_FAULTS: tuple[Fault, ...] = (
    Fault.STATUS,
    Fault.HTML,
    Fault.TRUNCATED,
    Fault.MALFORMED,
    Fault.RESET,
)

HTML_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>nginx</center></body></html>"
)
MALFORMED_BODY = (
    b'<result errorcode="0"><exports count="1"><export><exportid>1</exportid></exports>'
)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One queued fault and its parameters.

    Attributes:
        fault: the kind of fault.
        status: the HTTP status of a :attr:`Fault.STATUS` answer.
        retry_after: seconds for a ``Retry-After`` header of a :attr:`Fault.STATUS` answer.
        seconds: the delay of a :attr:`Fault.LATENCY` answer.
    """

    fault: Fault
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, not {self.status!r}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"retry_after must not be negative, not {self.retry_after!r}")
        if self.seconds < 0:
            raise ValueError(f"seconds must not be negative, not {self.seconds!r}")


def fault_response(spec: FaultSpec) -> Response:
    """The whole answer of a fault that replaces the real one (STATUS, HTML, MALFORMED)."""
    if spec.fault is Fault.HTML:
        return Response(502, HTML_TYPE, HTML_PAGE)
    if spec.fault is Fault.MALFORMED:
        return Response(200, XML_TYPE, MALFORMED_BODY)
    try:
        phrase = HTTPStatus(spec.status).phrase
    except ValueError:
        phrase = "Error"
    headers: tuple[tuple[str, str], ...] = ()
    if spec.retry_after is not None:
        headers = (("retry-after", str(math.ceil(spec.retry_after))),)
    body = f"{spec.status} {phrase} (simulated by vdgexport.testing)\n".encode()
    return Response(spec.status, TEXT_TYPE, body, headers)


class FaultPlan:
    """Which fault, if any, the next ``/command`` request gets.

    Queued faults come first, in order; when none is queued, a seeded random draw decides.
    """

    __slots__ = ("_choices", "_queue", "_rate", "_rng")

    def __init__(self) -> None:
        self._queue: deque[FaultSpec] = deque()
        self._rate = 0.0
        self._rng = random.Random(0)
        self._choices: tuple[Fault, ...] = DEFAULT_RANDOM_FAULTS

    def inject(self, spec: FaultSpec, times: int) -> None:
        """Queue ``spec`` for the next ``times`` requests."""
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times!r}")
        self._queue.extend([spec] * times)

    def set_random(self, rate: float, seed: int, faults: Sequence[Fault]) -> None:
        """Fail each later request with probability ``rate`` (0 turns it off)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {rate!r}")
        choices = tuple(faults)
        if rate > 0 and not choices:
            raise ValueError("faults must name at least one Fault")
        self._rate = rate
        self._rng = random.Random(seed)
        self._choices = choices

    def draw(self) -> FaultSpec | None:
        """The fault for the request being served, or ``None`` to answer normally."""
        if self._queue:
            return self._queue.popleft()
        if self._rate > 0 and self._rng.random() < self._rate:
            return FaultSpec(self._rng.choice(self._choices))
        return None
