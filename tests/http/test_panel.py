"""The front panel in headless Chromium (Debian's system ``chromium``, no browser download):
no console errors, the LCD shows the energy the registers show, the load LED toggles at
the rate the load implies, a fault button makes a Modbus client see the fault. Saves a
screenshot to tests/http/artifacts/panel.png."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.helpers import TwinProcess, find_free_port
from twin.modbus.client import ExceptionReply, MeterClient

T = TypeVar("T")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent / "artifacts"
LED_HALF_WH = 5
_POOL = concurrent.futures.ThreadPoolExecutor(1)  # playwright's sync API owns this thread's loop


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return _POOL.submit(asyncio.run, coro).result(timeout=10)


def _registers(port: int, address: int, count: int) -> list[int]:
    async def read() -> list[int]:
        async with MeterClient(port=port) as c:
            return await c.read_registers(address, count)

    return _run(read())


def _energy_wh(port: int) -> int:
    w = _registers(port, 0, 4)
    return (w[0] << 48) | (w[1] << 32) | (w[2] << 16) | w[3]


def _fault_code(port: int) -> int | None:
    async def read() -> int | None:
        async with MeterClient(port=port) as c:
            try:
                await c.read_registers(0, 2)
            except ExceptionReply as exc:
                return exc.code
            return None

    return _run(read())


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test)")
def test_front_panel_in_chromium(start_twin: Callable[..., TwinProcess]) -> None:
    from playwright.sync_api import sync_playwright

    http_port = find_free_port()
    # default profile: 430 W; at x200 the LED's 5 Wh take ~0.2 s of wall time
    tp = start_twin(
        "--speed", "200", "--allow-writes", "--http", str(http_port), "--http-interval", "0.1"
    )  # fmt: skip
    with sync_playwright() as pw:
        assert CHROMIUM is not None
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"http://127.0.0.1:{http_port}/")
        page.wait_for_selector("#lcd[data-screen='2']", timeout=10_000)

        # The LCD's total kWh is the register's 0.1 kWh count at the same moment.
        for _ in range(20):
            page.wait_for_selector("#lcd[data-screen='2']", timeout=10_000)
            before = _registers(tp.port, 16, 2)[1]
            shown = page.get_attribute("#lcd", "data-text")
            after = _registers(tp.port, 16, 2)[1]
            if page.get_attribute("#lcd", "data-screen") == "2" and shown:
                assert before <= round(float(shown) * 10) <= after
                break
        else:
            pytest.fail("the LCD never showed total kWh")

        # The LED toggles once per 5 Wh: count the page's toggles against the register.
        toggles0 = int(page.get_attribute("#led", "data-toggles") or 0)
        e0 = _energy_wh(tp.port)
        time.sleep(3.0)
        toggles1 = int(page.get_attribute("#led", "data-toggles") or 0)
        e1 = _energy_wh(tp.port)
        expected = e1 // LED_HALF_WH - e0 // LED_HALF_WH
        assert expected >= 8
        assert abs((toggles1 - toggles0) - expected) <= 2, (toggles1 - toggles0, expected)

        # A fault button: a Modbus client sees exception 04.
        assert _fault_code(tp.port) is None
        page.click("#btn-fault-exception")
        page.wait_for_selector("#result.ok", timeout=5_000)
        assert _fault_code(tp.port) == 4
        page.click("#btn-clear-faults")
        page.wait_for_selector("#faults li.muted", timeout=5_000)

        page.click("[data-inject='memory']")
        page.wait_for_selector("#error-code:text('1')", timeout=5_000)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "panel.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"front panel screenshot: {shot}")
        browser.close()
    assert problems == []
