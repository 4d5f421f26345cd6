"""The simulator's stock answers: the XML envelope, error codes, plain HTTP refusals."""

from __future__ import annotations

from xml.sax.saxutils import escape

from ._asgi import TEXT_TYPE, XML_TYPE, Response

__all__ = ["DECLARATION", "ERRORS", "NOT_FOUND", "UNAUTHORIZED", "error", "ok", "xml"]

DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
ERRORS = {
    -1: "Not implemented",
    -4: "Invalid timestamp",
    -10: "Not enough parameters",
    -57: "Invalid exportid",
}
NOT_FOUND = Response(404, TEXT_TYPE, b"404 Not Found\n")
#: What a command without a valid session gets, and a refused login (the real shape of
#: either is not documented publicly; HTTP 401 is the simulator's choice).
UNAUTHORIZED = Response(401, TEXT_TYPE, b"401 Unauthorized: log in at /webservice\n")


def xml(body: bytes) -> Response:
    """HTTP 200 ``text/xml`` with the XML declaration before ``body``."""
    return Response(200, XML_TYPE, DECLARATION + body)


def error(code: int, description: str | None = None) -> Response:
    """``<result errorcode="code"><description>...</description></result>``."""
    description = escape(description or ERRORS.get(code, "General error"))
    return xml(
        f'<result errorcode="{code}"><description>{description}</description></result>'.encode()
    )


def ok(inner: str = "") -> Response:
    """``<result errorcode="0">inner</result>``."""
    return xml(f'<result errorcode="0">{inner}</result>'.encode())
