"""The relay: one poller for any number of HTTP consumers (the ``web`` extra).

`create_app` turns a `vdgexport.Client` into an ASGI app (Starlette) that serves the
exports as JSON, their events as server-sent events, and a live dashboard page. Mount it
in Starlette or FastAPI, or run it with ``vdgexport serve``. It has no login of its own:
serve it on loopback, or behind something that authenticates.

Example:
    ```python
    import uvicorn
    import vdgexport
    from vdgexport.web import create_app

    client = vdgexport.Client("http://vdg.example")
    # enter the client for as long as the app serves (e.g. in a lifespan), then:
    app = create_app(client)
    ```

With a `FleetSource` instead of a client, the same app serves from a fleet's Redis stream
(`vdgexport.fleet`) and polls nothing; `RelayStats` counts its streams for ``/metrics``.
"""

from ._app import create_app
from ._fleet import FleetSource
from ._sse import RelayStats

__all__ = ["FleetSource", "RelayStats", "create_app"]
