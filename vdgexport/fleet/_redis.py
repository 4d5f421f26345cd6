"""What publishers and subscribers share: key names, Lua scripts, tokens, Redis errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import coredis
import coredis.exceptions
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

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
    """``url`` without its password, query or fragment, for messages and logs.

    The query goes too: coredis takes any connection parameter from it, ``?password=`` as well.
    """
    parts = urlsplit(url)._replace(query="", fragment="")
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # not a number: shown as nothing rather than raising here
            port = ""
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}{port}")
    return urlunsplit(parts)


def connect(url: str) -> coredis.Redis[str]:
    """A coredis client of ``url`` (enter it with ``async with``), answers decoded."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"not a Redis URL (redis://, rediss:// or unix://): {safe_url(url)!r}")
    redis: coredis.Redis[str] = coredis.Redis.from_url(url, decode_responses=True)
    pool = redis.connection_pool
    pool.connection_class = _closing(pool.connection_class)
    return redis


def _closing(base: type[Any]) -> type[Any]:
    """``base``, a coredis connection class, closing its memory streams however it ends.

    coredis 6.9 makes them when a connection is made and closes them only once it was
    established: every failed attempt (Redis down) left six for the garbage collector to
    warn about (``ResourceWarning``, an error under ``-W error``).
    """

    if base in _CLOSING:
        return _CLOSING[base]

    class Closing(base):  # type: ignore[misc]
        async def run(self, *args: Any, **kwargs: Any) -> None:
            try:
                await super().run(*args, **kwargs)
            finally:
                for value in list(vars(self).values()):
                    if isinstance(value, (MemoryObjectSendStream, MemoryObjectReceiveStream)):
                        value.close()

    Closing.__name__ = Closing.__qualname__ = base.__name__
    _CLOSING[base] = Closing
    return Closing


_CLOSING: dict[type[Any], type[Any]] = {}


@contextmanager
def unreachable_as_transient() -> Iterator[None]:
    """Let a group of only Redis errors (coredis raises from task groups of its own: Redis
    unreachable, a refused password) out as its first error, easier to catch and to name."""
    try:
        yield
    except _Group as group:
        if not _only_redis(group):
            raise
        first: BaseException = group
        while isinstance(first, _Group):
            first = first.exceptions[0]
        raise first from None


def _only_redis(exc: BaseException) -> bool:
    if isinstance(exc, _Group):
        return all(_only_redis(e) for e in exc.exceptions)
    return isinstance(exc, (coredis.exceptions.RedisError, *TRANSIENT))


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
#: The largest number of a stream entry id ("ms-seq": both are unsigned 64-bit).
_ID_MAX = 2**64 - 1


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
        if not all(n.isascii() and n.isdigit() and len(n) <= 20 for n in numbers):
            raise bad
        if max(int(ms), int(seq)) > _ID_MAX:  # Redis would refuse it: no stream holds it
            raise bad
        index, count = (int(parts[3]), int(parts[4])) if len(parts) == 5 else (0, 0)
        if len(parts) == 5 and not index < count:
            raise bad
        return cls(parts[1], parts[2], index, count)

    @property
    def resumable_after_entry(self) -> bool:
        """A stream entry, or the last event of a current state: what follows is the stream."""
        return self.count == 0 or self.index == self.count - 1


def entry_order(identifier: str) -> tuple[int, int]:
    """A stream entry id ("ms-seq") as numbers, to compare."""
    ms, _, seq = identifier.partition("-")
    return int(ms), int(seq or 0)


# -- Lua ---------------------------------------------------------------------------------
# KEYS, always in this order: lease, epoch, stream, state, seq (seq: only cleared, for the
# data of earlier versions).

#: Whether stream entry id a comes before b (ids are "ms-seq"; both fit a double exactly).
_BEFORE = """
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
"""

#: Take the lease if nobody holds it or it still names our previous term (ARGV[3]: a renew
#: that reached Redis after we stepped down), under the new term's token ARGV[1].
TAKE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

#: Hand the lease back if it is still token ARGV[1]'s (a clean stop): 1 if it was, else 0.
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

#: Renew the lease of token ARGV[1] for ARGV[2] ms: 1, or 0 if it is not ours. Once the
#: lead has begun (ARGV[3], its epoch, given), 2 if Redis lost the epoch or entries the
#: leader wrote (ARGV[4] the last it knows): found within a third of a lease, writes or not.
RENEW = (
    _BEFORE
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' then
  if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 2 end
  local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
  if not top[1] or before(top[1][1], ARGV[4]) then return 2 end
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
)

#: The lead begins: {'old', epoch, last entry id, id, state, ...} of the stored epoch, or
#: {'new', epoch, its first entry id}: a new epoch holding the states ARGV[4..] (id, state).
INIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lost'} end
local epoch = redis.call('GET', KEYS[2])
local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if epoch and top[1] then
  local reply = {'old', epoch, top[1][1]}
  for _, v in ipairs(redis.call('HGETALL', KEYS[4])) do reply[#reply + 1] = v end
  return reply
end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
redis.call('SET', KEYS[2], ARGV[2])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]) end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'p', ARGV[2], 'k', 'epoch')
return {'new', ARGV[2], id}
"""

#: One event and the export's new state, fenced by the lease token and the epoch. ARGV:
#: token, epoch, retention, export id, new state, event, the last entry id the leader knows
#: was written. A stream whose last entry is older than that lost writes (Redis restored
#: from an older snapshot, a replica promoted late): 'epoch', the leader starts again from
#: what is stored. A new state already stored is a retry whose answer was lost: 'dup'.
WRITE = (
    _BEFORE
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lost' end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 'epoch' end
local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if not top[1] or before(top[1][1], ARGV[7]) then return 'epoch' end
if redis.call('HGET', KEYS[4], ARGV[4]) == ARGV[5] then return 'dup' end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*',
  'p', ARGV[2], 'x', ARGV[4], 'e', ARGV[6])
redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
return id
"""
)

#: Forget the state of exports the server no longer lists (fenced; their events stay).
PRUNE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 2, #ARGV do
  redis.call('HDEL', KEYS[4], ARGV[i])
  redis.call('HDEL', KEYS[5], ARGV[i])
end
return #ARGV - 1
"""

#: The current state and where the stream is: {epoch, last entry id, id, state, ...};
#: {} while there is no epoch with a stream (no publisher has led, or Redis lost it).
SNAPSHOT = """
local epoch = redis.call('GET', KEYS[2])
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if not epoch or not last[1] then return {} end
local reply = {epoch, last[1][1]}
if ARGV[1] ~= '' then
  local v = redis.call('HGET', KEYS[4], ARGV[1])
  if v then reply[3] = ARGV[1]; reply[4] = v end
  return reply
end
for _, v in ipairs(redis.call('HGETALL', KEYS[4])) do reply[#reply + 1] = v end
return reply
"""

#: What follows entry ARGV[2] of epoch ARGV[1], at most ARGV[3] entries, checked in the same
#: step: {'lost'} if the epoch changed or that entry is no longer in the stream (trimmed, or
#: Redis lost it), else {'ok', entries, state} where state is export ARGV[4]'s stored state
#: when nothing follows (ARGV[4] given), else ''.
READ = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {'lost'} end
if #redis.call('XRANGE', KEYS[3], ARGV[2], ARGV[2]) == 0 then return {'lost'} end
local entries = redis.call('XRANGE', KEYS[3], '(' .. ARGV[2], '+', 'COUNT', ARGV[3])
local state = ''
if ARGV[4] ~= '' and #entries == 0 then state = redis.call('HGET', KEYS[4], ARGV[4]) or '' end
return {'ok', entries, state}
"""


async def release(url: str, keys: Keys, token: str) -> None:
    """Hand the lease back if it is still ``token``'s (a clean stop), so that a standby leads
    at once rather than when the lease runs out: at most a second, on a connection of its own;
    Redis unreachable: the lease runs out by itself."""
    with anyio.move_on_after(1.0, shield=True):
        try:
            with unreachable_as_transient():
                async with connect(url) as redis:
                    await redis.register_script(RELEASE)(keys=[keys.lease], args=[token])
        except Exception as exc:
            if not is_transient(exc):
                raise
