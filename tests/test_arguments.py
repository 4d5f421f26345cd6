"""Arguments are checked where they are given: `ValueError` (or `TypeError` for a wrong
type) naming the argument, before anything reaches the server."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import vdgexport
from vdgexport.testing import ManualClock, SenseSimulator

from ._servers import serve

BAD_NUMBERS = [math.nan, math.inf, -math.inf, 0, -1.0]
SECONDS = ["timeout", "poll_interval", "max_poll_interval"]
OPTIONAL_SECONDS = ["outage_timeout", "stall_after", "lost_after"]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SenseSimulator, str]]:
    sim = SenseSimulator(clock=ManualClock())
    sim.add_export()
    with serve(sim) as base:
        yield sim, base


@pytest.fixture
def url(served: tuple[SenseSimulator, str]) -> str:
    return served[1]


@pytest.mark.parametrize("name", SECONDS + OPTIONAL_SECONDS)
@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
def test_a_number_that_is_not_finite_and_positive_is_refused(
    url: str, name: str, value: float
) -> None:
    with pytest.raises(ValueError, match=name):
        vdgexport.Client(url, **{name: value})


@pytest.mark.parametrize("name", SECONDS + OPTIONAL_SECONDS + ["max_response_bytes"])
@pytest.mark.parametrize("value", ["1", True, [1]], ids=repr)
def test_a_number_of_the_wrong_type_is_a_type_error(url: str, name: str, value: object) -> None:
    with pytest.raises(TypeError, match=name):
        vdgexport.Client(url, **{name: value})


@pytest.mark.parametrize("name", OPTIONAL_SECONDS)
def test_none_means_no_limit_where_it_is_allowed(url: str, name: str) -> None:
    vdgexport.Client(url, **{name: None})
    with pytest.raises(TypeError, match="poll_interval"):
        vdgexport.Client(url, poll_interval=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -1, 1.5])
def test_max_response_bytes_is_a_positive_int(url: str, value: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="max_response_bytes"):
        vdgexport.Client(url, max_response_bytes=value)


@pytest.mark.parametrize(
    "base_url",
    [
        "not a url",
        "ftp://vdg.example",
        "",
        "http://",
        "/relative/path",
        "http://vdg:70000",
        "http://vdg:0",
    ],
)
def test_a_base_url_that_is_not_http_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        vdgexport.Client(base_url)


def test_a_base_url_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="base_url"):
        vdgexport.Client(b"http://vdg.example")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="auth"):
        vdgexport.Client("http://vdg.example", auth="user:pw")  # type: ignore[arg-type]


def test_a_refused_url_with_credentials_does_not_show_them() -> None:
    with pytest.raises(ValueError, match="base_url") as caught:
        vdgexport.Client("ftp://admin:hunter2@vdg.example")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("export_id", "error"),
    [
        (None, TypeError),
        (b"1", TypeError),
        (1.5, TypeError),
        (True, TypeError),
        ("", ValueError),
        ("a\ud800", ValueError),
    ],
    ids=repr,
)
async def test_a_bad_id_is_refused_before_any_request(
    served: tuple[SenseSimulator, str], clock: ManualClock, export_id: Any, error: type[Exception]
) -> None:
    """``None``, ``b"1"`` and ``1.5`` used to become ``"None"``, ``"b'1'"`` and ``"1.5"``."""
    sim, url = served
    sim.requests.clear()
    async with vdgexport.Client(url, poll_interval=0.001, clock=clock) as client:
        with pytest.raises(error, match="export id"):
            client.watch(export_id)
        for call in (client.get_export, client.remove_export, client.wait_for_completion):
            with anyio.fail_after(5), pytest.raises(error, match="export id"):
                await call(export_id)
        assert sim.request_count == 0
        assert (await client.get_export(1)).export_id == "1"  # an int is an id
    assert sim.request_count == 1
