"""Every error `vdgexport` raises, under one root.

```
VdgError
├── TransportError          network failure after retries (the httpx error is __cause__)
├── HTTPStatusError         non-2xx after retries; .status_code
│   └── AuthenticationError 401 / 403
├── ProtocolError           not the documented XML: malformed, unsafe (DTD, entities),
│                           larger than max_response_bytes, wrong root, not XML at all
├── ApiError                errorcode < 0; .code, .description
│   └── ExportNotFoundError -57
├── ExportFailedError       wait_for_completion ended without COMPLETED; .event
│   ├── ExportRemovedError
│   └── ExportVanishedError
└── ClientClosedError       a call on a closed client, or a watch that aclose() ended
                            (also a RuntimeError)
```

Messages never contain a password, a session key or a full URL with credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._events import ExportRemoved, ExportVanished

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ClientClosedError",
    "ExportFailedError",
    "ExportNotFoundError",
    "ExportRemovedError",
    "ExportVanishedError",
    "HTTPStatusError",
    "ProtocolError",
    "TransportError",
    "VdgError",
]

#: Known SensePluginManager error codes and their documented meaning.
ERROR_CODES: dict[int, str] = {
    -1: "not implemented",
    -2: "no device",
    -4: "invalid timestamp",
    -10: "not enough parameters",
    -17: "no server",
    -18: "general error (see server logs)",
    -21: "device not active",
    -53: "device connection lost",
    -57: "invalid exportid",
}


class VdgError(Exception):
    """Base class of every error raised by `vdgexport`.

    Example:
        ```python
        try:
            export = await client.get_export(42)
        except vdgexport.VdgError as exc:
            log.warning("VDG Sense said no: %s", exc)
        ```
    """


class TransportError(VdgError):
    """The server could not be reached, or the connection failed, after retries.

    The underlying `httpx` exception (or `TimeoutError`) is chained as `__cause__`.

    Attributes:
        certificate_refused: ``True`` when the server's TLS certificate was refused (see
            ``Client(verify=...)``): raised at once, never retried, and it ends a watch.
    """

    def __init__(self, message: str, *, certificate_refused: bool = False) -> None:
        super().__init__(message)
        self.certificate_refused = certificate_refused


class HTTPStatusError(VdgError):
    """The server answered with a non-2xx HTTP status, after retries.

    Attributes:
        status_code: the HTTP status of the last answer.
    """

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class AuthenticationError(HTTPStatusError):
    """The server refused the credentials (HTTP 401 or 403). Never retried."""


class ProtocolError(VdgError):
    """The answer is not the documented XML.

    Raised for malformed or truncated XML, HTML error pages, a wrong root element, a body
    larger than ``max_response_bytes``, and unsafe XML (a DTD or entity declarations).

    Attributes:
        unsafe: ``True`` when the body was refused as an attack (DTD, entities), which is
            never retried; ``False`` for a broken or foreign body, which may heal.
    """

    def __init__(self, message: str, *, unsafe: bool = False) -> None:
        super().__init__(message)
        self.unsafe = unsafe


class ApiError(VdgError):
    """The server answered ``<result errorcode="N">`` with ``N < 0``.

    Attributes:
        code: the (negative) error code.
        description: the server's ``<description>`` text, or the documented meaning of the
            code when the server sent none (``""`` for an unknown code without one).
    """

    def __init__(self, code: int, description: str = "") -> None:
        self.code = code
        self.description = description or ERROR_CODES.get(code, "")
        text = f"VDG Sense error {code}"
        super().__init__(f"{text}: {self.description}" if self.description else text)


class ExportNotFoundError(ApiError):
    """Error -57: the export id is unknown (never made, or forgotten by a restart)."""


class ExportFailedError(VdgError):
    """`wait_for_completion` ended on a terminal event other than completion.

    Attributes:
        event: the terminal event that ended the wait.
    """

    event: ExportRemoved | ExportVanished

    def __init__(self, message: str, event: ExportRemoved | ExportVanished) -> None:
        super().__init__(message)
        self.event = event


class ExportRemovedError(ExportFailedError):
    """The export was removed before it completed; `.event` is the `ExportRemoved`."""


class ExportVanishedError(ExportFailedError):
    """The export id vanished (-57 or reused); `.event` is the `ExportVanished`."""


class ClientClosedError(VdgError, RuntimeError):
    """The client is closed: a call on it, or a watch that `Client.aclose` ended.

    Also a `RuntimeError`, as a closed client's error was before it had a type of its own.
    A watch ended this way got no terminal event: its export's outcome is unknown.

    Example:
        ```python
        try:
            async for event in watch:
                handle(event)
        except vdgexport.ClientClosedError:
            pass  # we are shutting down
        ```
    """


def api_error(code: int, description: str = "") -> ApiError:
    """Return the most specific `ApiError` for ``code``."""
    cls = ExportNotFoundError if code == -57 else ApiError
    return cls(code, description)
