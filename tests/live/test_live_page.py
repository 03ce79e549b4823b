"""The live page in a real headless Chromium, driven over the DevTools protocol."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.auth_helpers import new_player, submit
from tests.conftest import RunningServer
from tests.live.test_live import live_server  # noqa: F401  (fixture)
from tests.services_under_test import IN_CI, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[int]:
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("chromium is required in CI (.ci/run installs it)", pytrace=False)
        pytest.skip("chromium is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


class Page:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if reply.get("id") == call_id:
                result: dict[str, Any] = reply.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")

    async def wait_for(self, expression: str, within: float = 5.0) -> Any:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"never true in the page: {expression}")


@pytest.fixture
async def page(chromium: int) -> AsyncIterator[Page]:
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(100):
            try:
                targets = (await http.get(f"http://127.0.0.1:{chromium}/json/list")).json()
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    target = next(t for t in targets if t["type"] == "page")
    async with connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
        yield Page(ws)


ROWS = (
    "[...document.querySelectorAll('#board tr[data-user-id]')].map(r => r.innerText.split('\\t'))"
)


async def test_the_page_follows_the_board(
    page: Page,
    live_server: RunningServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        first, second = await new_player(http), await new_player(http)
        await submit(http, first, 30)
        await page.call("Page.navigate", url=f"{live_server.url}/")
        await page.wait_for("document.getElementById('status').className === 'live'")
        rows = await page.wait_for(f"{ROWS}.length === 1 && {ROWS}")
        assert rows[0][:3] == ["1", first["username"], "30"]

        await submit(http, second, 50)
        rows = await page.wait_for(f"{ROWS}.length === 2 && {ROWS}")
        assert [row[1] for row in rows] == [second["username"], first["username"]]
        assert await page.evaluate("document.querySelector('#board tr').className") == "changed"
        shot = await page.call("Page.captureScreenshot", format="png")
    (tmp_path / "live-page.png").write_bytes(__import__("base64").b64decode(shot["data"]))


async def test_a_signed_in_player_follows_over_websocket_without_a_password_form(
    page: Page,
    live_server: RunningServer,  # noqa: F811
) -> None:
    """Was: switching to the WebSocket asked for a username and password on the page.
    Now a page of the same origin (or a listed one) hands the player's token over."""
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        player = await new_player(http)
        await page.call("Page.navigate", url=f"{live_server.url}/")
        await page.wait_for("document.getElementById('status').className === 'live'")
        assert await page.evaluate("document.querySelector('input[type=password]') === null")
        await page.evaluate(
            "window.postMessage({type: 'scoreboard:token', access_token:"
            f" {json.dumps(player['access_token'])}}}, location.origin); true"
        )
        await page.wait_for("document.getElementById('status').textContent.includes('signed in')")
        await submit(http, player, 12)
        rows = await page.wait_for(f"{ROWS}.length === 1 && {ROWS}")
        assert await page.evaluate("document.querySelector('#board tr').classList.contains('me')")
    assert rows[0][:3] == ["1", player["username"], "12"]


async def test_the_pages_run_under_their_content_security_policy(
    page: Page,
    live_server: RunningServer,  # noqa: F811
) -> None:
    """The pages' strict policies block nothing they need: every violation is
    recorded from the first script on, and Swagger UI renders the document."""
    await page.call("Page.enable")
    await page.call(
        "Page.addScriptToEvaluateOnNewDocument",
        source="window.__violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));",
    )
    await page.call("Page.navigate", url=f"{live_server.url}/docs")
    title = await page.wait_for(
        "document.querySelector('.swagger-ui .info .title')?.textContent", within=15
    )
    assert "scoreboard" in title.lower()
    assert await page.evaluate("window.__violations") == []
    for path in ("/", "/embed?theme=dark"):
        await page.call("Page.navigate", url=f"{live_server.url}{path}")
        await page.wait_for("document.getElementById('status').className === 'live'")
        assert await page.evaluate("window.__violations") == []
    await page.call("Page.navigate", url=f"{live_server.url}/console")
    await page.wait_for("document.getElementById('signin-form') !== null")
    assert await page.evaluate("window.__violations") == []
    # an injected inline script does not run
    blocked = await page.evaluate(
        "const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
        " document.body.append(s); window.__ran === undefined"
    )
    assert blocked is True
