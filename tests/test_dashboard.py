"""The dashboard in a real browser (Debian's chromium, driven by Playwright), mid-demo.

The relay serves the demo's simulator (as ``vdgexport serve --demo`` does, fast); the test
waits until bars move and outcomes show, and keeps screenshots at desktop and phone width
in ``benchmarks/results/`` (ignored by git) as artifacts.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from vdgexport.cli.demo import Stage
from vdgexport.cli.views import Board, View
from vdgexport.testing import ManualClock, SenseSimulator
from vdgexport.web import create_app

from ._relay import fleet_of, fleet_relay
from ._servers import serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install chromium)"
)


class Quiet(View):
    def on_event(self, event: Any) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@pytest.fixture
def demo() -> Iterator[tuple[str, threading.Event]]:
    """The relay of a demo at 10x under ``/vdg``; its script plays once the event is set."""
    stage = Stage(10.0)
    client = stage.client(max_poll=0.1)
    go = threading.Event()

    async def play() -> None:
        await anyio.to_thread.run_sync(go.wait)
        await stage.play(client, lambda ids: Quiet(None, Board(ids)))  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with client, anyio.create_task_group() as tasks:
            tasks.start_soon(play)
            yield
            go.set()
            tasks.cancel_scope.cancel()

    app = Starlette(lifespan=lifespan, routes=[Mount("/vdg", app=create_app(client))])
    with serve(app, lifespan="on") as base:
        yield base + "/vdg/", go


def _launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def test_dashboard_shows_moving_bars_outcomes_and_the_outage_banner(
    demo: tuple[str, threading.Event],
) -> None:
    demo_url, go = demo
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(demo_url)
            page.wait_for_selector("#link.live")  # the stream is open: start the script
            go.set()
            page.wait_for_function("document.querySelectorAll('.export').length === 6")
            first = page.locator(".export .meter .pct").all_inner_texts()
            # Bars move: some export's percentage changes while the page is open.
            page.wait_for_function(
                "(before) => [...document.querySelectorAll('.export .meter .pct')]"
                ".some((e, i) => e.textContent !== before[i])",
                arg=first,
            )
            page.wait_for_selector(".export.completed", timeout=30_000)
            page.wait_for_selector(".export.removed", timeout=30_000)
            page.wait_for_selector("#unreachable:not([hidden])", timeout=30_000)
            banner = page.inner_text("#unreachable")
            page.screenshot(path=ARTIFACTS / "dashboard-desktop.png", full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=ARTIFACTS / "dashboard-phone.png", full_page=True)
            phone_width = page.evaluate("document.documentElement.scrollWidth")
            page.wait_for_selector(".export.vanished", timeout=60_000)
            outcome = page.inner_text(".export.vanished .outcome")
            page.set_viewport_size({"width": 1280, "height": 860})
            page.screenshot(path=ARTIFACTS / "dashboard-outcomes.png", full_page=True)
            completed = page.locator(".export.completed .badge").all_inner_texts()
        finally:
            browser.close()
    assert "VDG server unreachable" in banner
    assert phone_width <= 390  # nothing wider than a phone: no sideways scrolling
    assert "Vanished" in outcome
    assert set(completed) == {"COMPLETED"}
    assert len(completed) == 4  # lobby, parking, loading dock, warehouse


def test_dashboard_served_from_redis_shows_the_fleets_exports_and_their_outcome(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    ids = [sim.add_export(duration=[10, 20]), sim.add_export(duration=600)]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with fleet_of(sim) as fleet:
        anyio.run(fleet.publish)
        for export_id in ids:
            anyio.run(fleet.knows, export_id)
        with fleet_relay(fleet.redis.url) as url, sync_api.sync_playwright() as playwright:
            browser = _launch(playwright)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.goto(url + "/")
                page.wait_for_function("document.querySelectorAll('.export').length === 2")
                clock.advance(30)  # the first one completes, the other moves on
                page.wait_for_selector(".export.completed", timeout=30_000)
                page.screenshot(path=ARTIFACTS / "dashboard-redis.png", full_page=True)
                completed = page.locator(".export.completed").count()
                percents = page.locator(".export .meter .pct").all_inner_texts()
            finally:
                browser.close()
    assert completed == 1
    assert "100%" in percents
    assert "5.0%" in percents  # 30 s of 600
