"""The fleet: many processes and machines, one poller, through Redis Streams (``fleet`` extra).

Any number of `publish` calls run for one VDG server (on any machines); one leads at a time
and writes every export's events to a Redis stream, the others stand by. Any number of
`subscribe` calls read them: the current state first, then live events, each with a token
to resume from. Redis is the broker (6.2 or newer, or Valkey); the client is coredis.

Example:
    ```python
    # the publishers (run two or three, on different machines)
    async with vdgexport.Client("http://vdg.example") as client:
        await vdgexport.fleet.publish(client, "redis://redis.example", name="site-a")

    # any number of subscribers
    async with vdgexport.fleet.subscribe("redis://redis.example", name="site-a") as events:
        async for item in events:
            print(item.token, item.event)
    ```
"""

from ._publish import Publisher, publish
from ._snapshot import FleetSnapshot, snapshot
from ._subscribe import FleetEvent, Subscription, subscribe

__all__ = [
    "FleetEvent",
    "FleetSnapshot",
    "Publisher",
    "Subscription",
    "publish",
    "snapshot",
    "subscribe",
]
