"""What publishers and subscribers share: key names, Lua scripts, tokens, Redis errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import coredis
import coredis.exceptions

if sys.version_info >= (3, 11):
    _Group = BaseExceptionGroup  # noqa: F821 - a builtin since 3.11
else:  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup as _Group

logger = logging.getLogger("vdgexport.fleet")

#: Errors after which talking to Redis again may work (down, restarting, loading, timeouts).
TRANSIENT = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.BusyLoadingError,
    coredis.exceptions.ReadOnlyError,
    coredis.exceptions.NoScriptError,  # a Redis that restarted between loading and running
    TimeoutError,
    OSError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or every error of a group) says Redis is unreachable for now."""
    if isinstance(exc, _Group):
        return all(is_transient(e) for e in exc.exceptions)
    return isinstance(exc, TRANSIENT)


def safe_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str) -> coredis.Redis[str]:
    """A coredis client of ``url`` (enter it with ``async with``), answers decoded."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"not a Redis URL (redis://, rediss:// or unix://): {safe_url(url)!r}")
    return coredis.Redis.from_url(url, decode_responses=True)


@contextmanager
def unreachable_as_transient() -> Iterator[None]:
    """Let a group of only transient Redis errors out as its first error (easier to catch)."""
    try:
        yield
    except _Group as group:
        if not is_transient(group):
            raise
        raise group.exceptions[0] from None


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one fleet; one hash tag, so that a Cluster keeps them together."""

    lease: str
    epoch: str
    stream: str
    state: str
    seq: str

    @classmethod
    def of(cls, name: str) -> Keys:
        if not name or any(c in name for c in "{}\r\n"):
            raise ValueError(f"a fleet name must be non-empty, without braces: {name!r}")
        base = f"vdgexport:{{{name}}}"
        return cls(
            f"{base}:lease", f"{base}:epoch", f"{base}:stream", f"{base}:state", f"{base}:seq"
        )

    def all(self) -> list[str]:
        return [self.lease, self.epoch, self.stream, self.state, self.seq]


# -- tokens ------------------------------------------------------------------------------

_TOKEN_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class Token:
    """Where a subscriber is: an epoch, a stream entry id, and for an event of a current
    state its place ``index`` among ``count`` (``count`` 0: a stream entry)."""

    epoch: str
    entry: str
    index: int = 0
    count: int = 0

    def __str__(self) -> str:
        tail = f":{self.index}:{self.count}" if self.count else ""
        return f"{_TOKEN_VERSION}:{self.epoch}:{self.entry}{tail}"

    @classmethod
    def parse(cls, text: str) -> Token:
        parts = text.split(":") if isinstance(text, str) else []
        bad = ValueError(f"not a fleet token: {text!r}")
        if len(parts) not in (3, 5) or parts[0] != _TOKEN_VERSION or not parts[1]:
            raise bad
        ms, _, seq = parts[2].partition("-")
        numbers = [ms, seq, *parts[3:]]
        if not all(n.isascii() and n.isdigit() for n in numbers):
            raise bad
        index, count = (int(parts[3]), int(parts[4])) if len(parts) == 5 else (0, 0)
        if len(parts) == 5 and not index < count:
            raise bad
        return cls(parts[1], parts[2], index, count)

    @property
    def resumable_after_entry(self) -> bool:
        """A stream entry, or the last event of a current state: what follows is the stream."""
        return self.count == 0 or self.index == self.count - 1


# -- Lua ---------------------------------------------------------------------------------
# KEYS, always in this order: lease, epoch, stream, state, seq.

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: The lead begins: the stored state of this epoch, or a new epoch holding ARGV[4..].
INIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lost'} end
local epoch = redis.call('GET', KEYS[2])
if epoch then
  local reply = {'old', epoch}
  for _, v in ipairs(redis.call('HGETALL', KEYS[4])) do reply[#reply + 1] = v end
  return reply
end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
redis.call('SET', KEYS[2], ARGV[2])
for i = 4, #ARGV, 3 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 2])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'p', ARGV[2], 'k', 'epoch')
return {'new', ARGV[2]}
"""

#: One event and the export's new state, fenced by the lease token and the epoch; a write
#: whose sequence number is already stored (a retry after a lost answer) is not repeated.
WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lost' end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 'epoch' end
local seq = tonumber(redis.call('HGET', KEYS[5], ARGV[4]) or '0')
if seq >= tonumber(ARGV[5]) then return 'dup' end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*',
  'p', ARGV[2], 'x', ARGV[4], 'e', ARGV[7])
if ARGV[6] == '' then
  redis.call('HDEL', KEYS[4], ARGV[4])
else
  redis.call('HSET', KEYS[4], ARGV[4], ARGV[6])
end
redis.call('HSET', KEYS[5], ARGV[4], ARGV[5])
return id
"""

#: Forget the state of exports the server no longer lists (fenced; their events stay).
PRUNE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 2, #ARGV do redis.call('HDEL', KEYS[4], ARGV[i]) end
return #ARGV - 1
"""

#: The current state and where the stream is: {epoch, last entry id, id, state, ...}.
SNAPSHOT = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then return {} end
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local reply = {epoch, last[1] and last[1][1] or '0-0'}
if ARGV[1] ~= '' then
  local v = redis.call('HGET', KEYS[4], ARGV[1])
  if v then reply[3] = ARGV[1]; reply[4] = v end
  return reply
end
for _, v in ipairs(redis.call('HGETALL', KEYS[4])) do reply[#reply + 1] = v end
return reply
"""

#: 1 if the stream of epoch ARGV[1] still holds entry ARGV[2] (nothing after it trimmed).
RESUMABLE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
return #redis.call('XRANGE', KEYS[3], ARGV[2], ARGV[2])
"""
