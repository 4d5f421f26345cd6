"""HTTPS: what ``Client(verify=...)`` hands to httpx, and how a refused certificate looks."""

from __future__ import annotations

import os
import ssl
from typing import Union

__all__ = ["Verify", "certificate_refused", "ssl_verify"]

#: ``True`` (the system's CAs), ``False`` (no check), a CA bundle file or directory, or a
#: ready `ssl.SSLContext`.
Verify = Union[bool, str, "os.PathLike[str]", ssl.SSLContext]


def ssl_verify(verify: Verify) -> bool | ssl.SSLContext:
    """``verify`` as httpx takes it without a deprecation warning: a path becomes a context.

    Raises:
        ValueError: a path that is not a readable CA bundle (PEM file or directory).
        TypeError: a value of another type.
    """
    if isinstance(verify, (bool, ssl.SSLContext)):
        return verify
    if not isinstance(verify, (str, os.PathLike)):
        raise TypeError(
            "verify must be True, False, a CA bundle path or an ssl.SSLContext, "
            f"not {type(verify).__name__}"
        )
    path = os.fspath(verify)
    try:
        if os.path.isdir(path):
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:  # ssl.SSLError is an OSError; named for clarity
        raise ValueError(f"verify: cannot load the CA bundle {path!r}: {exc}") from None


def certificate_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is a refused server certificate.

    httpx wraps the `ssl.SSLCertVerificationError` in a ``ConnectError`` (on trio with a
    ``BrokenResourceError`` between them); the chain is followed through both.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
