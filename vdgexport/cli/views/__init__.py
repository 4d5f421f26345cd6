"""What the command line shows: the board of watched exports, its views, and tables."""

from .board import Board, DeviceRow, ExportRow
from .devices import print_devices
from .format import fmt_bandwidth, fmt_eta, middle, outcome_of, state_of
from .live import LiveBoard
from .stream import JsonView, LiveView, PlainView, View, make_view
from .table import print_table

__all__ = [
    "Board",
    "DeviceRow",
    "ExportRow",
    "JsonView",
    "LiveBoard",
    "LiveView",
    "PlainView",
    "View",
    "fmt_bandwidth",
    "fmt_eta",
    "make_view",
    "middle",
    "outcome_of",
    "print_devices",
    "print_table",
    "state_of",
]
