"""vdgexport: watch video exports on VDG Sense servers, async (asyncio and trio).

Example:
    ```python
    import vdgexport

    async with vdgexport.Client("http://vdg.example", auth=("user", "secret")) as client:
        async for event in client.watch(42):
            print(event)
    ```
"""

from ._auth import SessionAuth
from ._client import DEFAULT_MAX_RESPONSE_BYTES, Client
from ._codec import event_from_dict, event_to_dict, export_from_dict, export_to_dict
from ._events import (
    ConnectionLost,
    ConnectionRestored,
    DeviceProgress,
    ExportCompleted,
    ExportRecovered,
    ExportRemoved,
    ExportStalled,
    ExportStatusChanged,
    ExportVanished,
    TerminalEvent,
    VanishReason,
    WatchEvent,
)
from ._exceptions import (
    ApiError,
    AuthenticationError,
    ClientClosedError,
    ExportFailedError,
    ExportNotFoundError,
    ExportRemovedError,
    ExportVanishedError,
    HTTPStatusError,
    ProtocolError,
    TransportError,
    VdgError,
)
from ._listwatch import ListWatch
from ._models import (
    ClientStats,
    DeviceExport,
    DeviceSpan,
    Export,
    ExportId,
    ExportList,
    ExportStatus,
    ServerInfo,
)
from ._sync import SyncClient, SyncWatch
from ._watch import Watch

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "ApiError",
    "AuthenticationError",
    "Client",
    "ClientClosedError",
    "ClientStats",
    "ConnectionLost",
    "ConnectionRestored",
    "DeviceExport",
    "DeviceProgress",
    "DeviceSpan",
    "Export",
    "ExportCompleted",
    "ExportFailedError",
    "ExportId",
    "ExportList",
    "ExportNotFoundError",
    "ExportRecovered",
    "ExportRemoved",
    "ExportRemovedError",
    "ExportStalled",
    "ExportStatus",
    "ExportStatusChanged",
    "ExportVanished",
    "ExportVanishedError",
    "HTTPStatusError",
    "ListWatch",
    "ProtocolError",
    "ServerInfo",
    "SessionAuth",
    "SyncClient",
    "SyncWatch",
    "TerminalEvent",
    "TransportError",
    "VanishReason",
    "VdgError",
    "Watch",
    "WatchEvent",
    "__version__",
    "event_from_dict",
    "event_to_dict",
    "export_from_dict",
    "export_to_dict",
]
