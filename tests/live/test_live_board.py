"""The live board as players and studios see it, in a real headless Chromium (Selenium).

Was: a bare table ("1 players"); board and period only through the query string; a
password form on the page for the WebSocket; nothing to embed."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from scoreboard.core.settings import Settings
from tests.auth_helpers import bearer, create_admin, login, new_player, submit
from tests.conftest import free_port, page_wait, server_env, serving


@pytest.fixture
def parent_site(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A studio's site on an origin of its own: a folder served over HTTP."""
    site = tmp_path / "site"
    site.mkdir()
    port = free_port()
    handler = partial(SimpleHTTPRequestHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port, site
    finally:
        server.shutdown()
        server.server_close()


async def _play_on(
    http: httpx.AsyncClient, player: dict[str, Any], board: str, points: int
) -> None:
    issued = await http.post(
        "/v1/auth/action-token",
        json={"action_type": "game_completion", "session_id": "s1", "board": board},
        headers=bearer(player["access_token"]),
    )
    assert issued.status_code == 200, issued.text
    answer = await http.post(
        "/v1/scores/update",
        json={"score_increase": points},
        headers={
            **bearer(player["access_token"]),
            "X-Action-Token": issued.json()["data"]["action_token"],
        },
    )
    assert answer.status_code == 200, answer.text


async def test_the_board_and_ranking_are_picked_on_the_page_with_a_countdown(
    settings: Settings, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.select import Select

    env = server_env(settings)
    name = f"speed{uuid.uuid4().hex[:8]}"
    with serving(env, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            admin = await login(http, create_admin(env, tmp_path))
            created = await http.post(
                "/v1/admin/boards",
                json={"name": name, "action_types": {"game_completion": 100}, "periods": ["daily"]},
                headers=bearer(admin["access_token"]),
            )
            assert created.status_code == 201, created.text
            player = await new_player(http)
            await _play_on(http, player, name, 42)

        wait = page_wait(browser)
        browser.get(f"{server.url}/")
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "live"))
        wait.until(
            ec.presence_of_element_located(
                (By.CSS_SELECTOR, f'#board-picker option[value="{name}"]')
            )
        )
        Select(browser.find_element(By.ID, "board-picker")).select_by_value(name)
        wait.until(
            ec.presence_of_element_located(
                (By.CSS_SELECTOR, '#period-picker option[value="daily"]')
            )
        )
        Select(browser.find_element(By.ID, "period-picker")).select_by_value("daily")
        row = f'#board tr[data-user-id="{player["user_id"]}"]'
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, row)))
        assert f"board={name}" in browser.current_url and "period=daily" in browser.current_url
        assert browser.find_element(By.ID, "title").text == f"{name} · daily"
        assert "42" in browser.find_element(By.CSS_SELECTOR, row).text
        wait.until(ec.text_to_be_present_in_element((By.ID, "countdown"), "resets in"))
        assert re.fullmatch(
            r"resets in (\d+d )?\d\d:\d\d:\d\d", browser.find_element(By.ID, "countdown").text
        )
        assert browser.find_element(By.ID, "total").text == "1 player"

        server.stop()  # the server goes away: the page says so at once
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "reconnecting"))
        assert "stale" in browser.find_element(By.ID, "page").get_attribute("class")


async def test_a_studio_embeds_the_board_and_hands_it_a_signed_in_player(
    settings: Settings, tmp_path: Path, browser: Any, parent_site: tuple[int, Path]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    port, site = parent_site
    studio = f"http://127.0.0.1:{port}"
    env = server_env(settings, SCOREBOARD_EMBED_ORIGINS=studio)
    with serving(env, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            players = [await new_player(http) for _ in range(3)]
            for points, player in zip((90, 60, 30), players, strict=True):
                assert (await submit(http, player, points)).status_code == 200
            me = players[2]
            embed = await http.get("/embed")
            assert f"frame-ancestors 'self' {studio};" in embed.headers["content-security-policy"]
            assert "x-frame-options" not in embed.headers
            assert f'content="{studio}"' in embed.text
            home = await http.get("/")
            assert home.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in home.headers["content-security-policy"]

        # the studio's page, signed in as the player, hands the board its token
        (site / "index.html").write_text(
            "<!doctype html><title>studio</title>"
            f'<iframe id="board" src="{server.url}/embed?theme=dark" width="600" height="700">'
            "</iframe>"
            "<script>addEventListener('message', e => {"
            "if (e.data && e.data.type === 'scoreboard:ready') e.source.postMessage("
            f"{{type: 'scoreboard:token', access_token: '{me['access_token']}'}}, '{server.url}');"
            "});</script>"
        )
        wait = page_wait(browser)
        browser.get(f"{studio}/index.html")
        browser.switch_to.frame(browser.find_element(By.ID, "board"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "signed in"))
        mine = f'tr.me[data-user-id="{me["user_id"]}"]'
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#board {mine}")))
        wait.until(ec.visibility_of_element_located((By.ID, "mine")))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#around {mine}")))
        assert browser.find_element(By.ID, "mine-title").text == "Around you (#3)"
        assert browser.execute_script("return document.documentElement.dataset.theme") == "dark"
        assert not browser.find_element(By.CSS_SELECTOR, ".pickers").is_displayed()

        # a live update reaches the signed-in page over the WebSocket
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await submit(http, me, 100)).status_code == 200
        wait.until(
            lambda driver: (
                driver.find_element(By.CSS_SELECTOR, "#board tr").get_attribute("data-user-id")
                == me["user_id"]
            )
        )

        # a site that is not listed cannot frame it
        browser.switch_to.default_content()
        browser.get(f"http://localhost:{port}/index.html")
        browser.switch_to.frame(browser.find_element(By.ID, "board"))
        assert browser.find_elements(By.ID, "status") == []
