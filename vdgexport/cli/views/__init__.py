"""What the command line shows: the board of watched exports, its views, and tables."""

from .board import Board, DeviceRow, ExportRow
from .format import fmt_bandwidth, fmt_eta, outcome_of
from .stream import JsonView, LiveView, PlainView, View, make_view
from .table import print_table

__all__ = [
    "Board",
    "DeviceRow",
    "ExportRow",
    "JsonView",
    "LiveView",
    "PlainView",
    "View",
    "fmt_bandwidth",
    "fmt_eta",
    "make_view",
    "outcome_of",
    "print_table",
]
