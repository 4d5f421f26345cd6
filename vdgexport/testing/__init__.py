"""A faithful, stateful VDG Sense SensePluginManager simulator for tests and demos.

:class:`SenseSimulator` is an ASGI 3 app: mount it with ``httpx.ASGITransport`` in tests
or serve it with uvicorn. It imports nothing from the client side of ``vdgexport``::

    from vdgexport.testing import Fault, ManualClock, SenseSimulator

    clock = ManualClock()
    sim = SenseSimulator(clock=clock)
    export_id = sim.add_export(devices=2, duration=60)
    sim.inject(Fault.STATUS, status=503, retry_after=1)
    transport = httpx.ASGITransport(app=sim)
"""

from ._clock import ManualClock
from ._faults import Fault
from ._requests import SimRequest
from ._simulator import SenseSimulator

__all__ = ["Fault", "ManualClock", "SenseSimulator", "SimRequest"]
