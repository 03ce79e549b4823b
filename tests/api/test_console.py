"""The admin console in a real headless Chromium, driven by Selenium: an admin signs in,
finds a bot in the flagged queue, bans it, and a live page in a second window drops it.

Was: admin work was API-only."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scoreboard.core.settings import Settings
from tests.auth_helpers import bearer, create_admin, issue_token, new_player, submit
from tests.commands import scoreboard_command
from tests.conftest import RunningServer, page_wait, server_env, serving

PASSWORD = "correct horse battery"


@pytest.fixture
def console_server(
    settings: Settings, own_database: str, tmp_path: Path
) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    # the test persists scores (a board rebuilt from this database would have them)
    env = server_env(dataclasses.replace(settings, database_url=own_database))
    with serving(env, tmp_path) as (server,):
        yield server, env


def _sync(env: dict[str, str], cwd: Path) -> None:
    done = scoreboard_command(["sync", "--burst"], env, cwd)
    assert done.returncode == 0, done.stderr


def _signed_in(browser: Any, url: str, admin: str) -> Any:
    """The console, signed in as `admin`; the page's waiter."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    wait = page_wait(browser)
    browser.get(f"{url}/console")
    browser.find_element(By.NAME, "username").send_keys(admin)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "who"), admin))
    return wait


async def _cheat(http: httpx.AsyncClient, player: dict[str, Any], rounds: int) -> None:
    """The most points, claiming a second and a half of play each time: flagged."""
    for _ in range(rounds):
        token = await issue_token(http, player["access_token"])
        answer = await http.post(
            "/v1/scores/update",
            json={"score_increase": 100, "action_data": {"level": 1, "time_taken": 1.5}},
            headers={**bearer(player["access_token"]), "X-Action-Token": token},
        )
        assert answer.status_code == 200, answer.text


async def test_an_admin_bans_a_flagged_bot_from_the_console(
    console_server: tuple[RunningServer, dict[str, str]], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    server, env = console_server
    admin = create_admin(env, tmp_path)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        honest = await new_player(http)
        assert (await submit(http, honest, 7)).status_code == 200
        bot = await new_player(http)
        await _cheat(http, bot, 2)
        # a user agent that is markup: the console must show it as text
        await http.post(
            "/v1/auth/login",
            json={"username": honest["username"], "password": "wrong password 1"},
            headers={"user-agent": '<img src=x id="pwned">'},
        )
        page = await http.get("/console")
        assert "script-src 'self' 'sha256-" in page.headers["content-security-policy"]
        assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    _sync(env, tmp_path)

    wait = page_wait(browser)
    bot_row = f'#board tr[data-user-id="{bot["user_id"]}"]'
    browser.get(f"{server.url}/")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, bot_row)))
    live_window = browser.current_window_handle

    browser.switch_to.new_window("window")
    browser.get(f"{server.url}/console")
    browser.find_element(By.NAME, "username").send_keys(admin)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "who"), f"signed in as {admin}"))
    wait.until(ec.text_to_be_present_in_element((By.ID, "status-boards"), "global"))
    stored = browser.execute_script("return localStorage.length + sessionStorage.length")
    assert stored == 0, "tokens must stay in the page's memory"
    assert "token" not in browser.current_url

    browser.find_element(By.CSS_SELECTOR, 'nav button[data-tab="flagged"]').click()
    flagged_row = f'#flagged tr[data-user-id="{bot["user_id"]}"]'
    row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, flagged_row)))
    assert bot["username"] in row.text and "points_per_second" in row.text
    assert not browser.find_elements(
        By.CSS_SELECTOR, f'#flagged tr[data-user-id="{honest["user_id"]}"]'
    )
    if os.environ.get("CONSOLE_SCREENSHOTS"):
        browser.save_screenshot(str(Path(os.environ["CONSOLE_SCREENSHOTS"]) / "console.png"))

    row.find_element(By.XPATH, ".//button[text()='Ban']").click()
    browser.find_element(By.CSS_SELECTOR, '#player-panel input[name="reason"]').send_keys("aimbot")
    browser.find_element(By.CSS_SELECTOR, "#player-panel button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "done"))

    browser.switch_to.window(live_window)
    wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, bot_row)))
    honest_row = f'#board tr[data-user-id="{honest["user_id"]}"]'
    assert browser.find_elements(By.CSS_SELECTOR, honest_row)

    # the audit trail shows the ban, and markup a client sent as plain text
    _sync(env, tmp_path)
    browser.switch_to.window(browser.window_handles[-1])
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-tab="audit"]').click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "audit"), "admin_ban"))
    assert not browser.find_elements(By.ID, "pwned")
    from selenium.webdriver.support.select import Select

    Select(browser.find_element(By.NAME, "event_type")).select_by_value("admin_ban")
    browser.find_element(By.CSS_SELECTOR, "#audit-form button").click()
    # read in the page at once: the rows are replaced when the filtered page arrives
    rows = "return [...document.querySelectorAll('#audit tr')].map(row => row.textContent)"
    wait.until(
        lambda driver: (
            (texts := driver.execute_script(rows)) and all("admin_ban" in text for text in texts)
        )
    )
    assert '"reason":"aimbot"' in browser.find_element(By.ID, "audit").text


async def test_an_admin_enrols_one_time_passwords_and_signs_in_with_a_code(
    settings: Settings, own_database: str, browser: Any, tmp_path: Path
) -> None:
    """With SCOREBOARD_ADMIN_MFA=required: the console has an admin without one-time
    passwords enrol (the secret and recovery codes shown, a code to turn it on), and
    asks for a code at the next sign-in."""
    import pyotp
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    env = server_env(
        dataclasses.replace(settings, database_url=own_database), SCOREBOARD_ADMIN_MFA="required"
    )
    with serving(env, tmp_path) as (server,):
        admin = create_admin(env, tmp_path)
        wait = page_wait(browser)
        browser.get(f"{server.url}/console")

        def sign_in(otp: str | None = None) -> None:
            form = browser.find_element(By.ID, "signin-form")
            form.find_element(By.NAME, "username").clear()
            form.find_element(By.NAME, "username").send_keys(admin)
            form.find_element(By.NAME, "password").clear()
            form.find_element(By.NAME, "password").send_keys(PASSWORD)
            if otp is not None:
                form.find_element(By.NAME, "otp").send_keys(otp)
            form.find_element(By.CSS_SELECTOR, "button").click()

        sign_in()
        secret = wait.until(ec.visibility_of_element_located((By.ID, "enrol-secret"))).text
        codes = browser.find_element(By.ID, "enrol-codes").text.split()
        assert len(codes) == 10
        totp = pyotp.TOTP(secret)
        browser.find_element(By.CSS_SELECTOR, '#enrol-form input[name="code"]').send_keys(
            totp.now()
        )
        browser.find_element(By.CSS_SELECTOR, "#enrol-form button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "who"), f"signed in as {admin}"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "status-boards"), "global"))

        browser.find_element(By.ID, "signout").click()
        sign_in()
        wait.until(ec.visibility_of_element_located((By.ID, "otp-field")))
        assert "one-time code" in browser.find_element(By.ID, "signin-message").text
        sign_in(codes[0])  # a recovery code
        wait.until(ec.text_to_be_present_in_element((By.ID, "who"), f"signed in as {admin}"))


async def test_a_player_cannot_use_the_console(
    console_server: tuple[RunningServer, dict[str, str]], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    server, _env = console_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        player = await new_player(http)
    browser.get(f"{server.url}/console")
    browser.find_element(By.NAME, "username").send_keys(player["username"])
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    page_wait(browser).until(
        ec.text_to_be_present_in_element((By.ID, "signin-message"), "This account is not an admin.")
    )
    assert browser.find_element(By.ID, "app").is_displayed() is False


async def test_an_admin_manages_boards_and_scores_from_the_console(
    console_server: tuple[RunningServer, dict[str, str]], browser: Any, tmp_path: Path
) -> None:
    """Create a board, change its periods, reset its season (confirmed by its name);
    adjust a player's score and remove it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    server, env = console_server
    admin = create_admin(env, tmp_path)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        bot = await new_player(http)
        await _cheat(http, bot, 1)
    _sync(env, tmp_path)
    name = f"cup{uuid.uuid4().hex[:8]}"
    wait = _signed_in(browser, server.url, admin)

    browser.find_element(By.CSS_SELECTOR, 'nav button[data-tab="boards"]').click()
    form = browser.find_element(By.ID, "board-form")
    form.find_element(By.NAME, "name").send_keys(name)
    actions = form.find_element(By.NAME, "action_types")
    actions.clear()
    actions.send_keys("round=50, bonus=10")
    form.find_element(By.CSS_SELECTOR, 'input[value="daily"]').click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    row = f'#boards tr[data-board="{name}"]'
    found = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, row)))
    assert "bonus=10, round=50" in found.text and "daily" in found.text

    found.find_element(By.XPATH, ".//button[text()='Edit']").click()
    browser.find_element(By.CSS_SELECTOR, '#board-panel input[value="weekly"]').click()
    browser.find_element(By.CSS_SELECTOR, "#board-panel button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, row), "daily, weekly"))

    browser.find_element(By.CSS_SELECTOR, row).find_element(
        By.XPATH, ".//button[text()='Reset season']"
    ).click()
    panel = browser.find_element(By.ID, "board-panel")
    panel.find_element(By.NAME, "confirm").send_keys("not-the-name")
    panel.find_element(By.NAME, "reason").send_keys("new season")
    panel.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "nothing was reset"))
    confirm = panel.find_element(By.NAME, "confirm")
    confirm.clear()
    confirm.send_keys(name)
    panel.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "season 2 begins"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        boards = {board["name"]: board for board in (await http.get("/v1/boards")).json()["data"]}
    assert boards[name]["season"] == 2
    assert [period["kind"] for period in boards[name]["periods"]] == ["daily", "weekly"]

    browser.find_element(By.CSS_SELECTOR, 'nav button[data-tab="flagged"]').click()
    flagged = f'#flagged tr[data-user-id="{bot["user_id"]}"]'
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, flagged)))
    browser.find_element(By.CSS_SELECTOR, flagged).find_element(
        By.XPATH, ".//button[text()='Adjust']"
    ).click()
    browser.find_element(By.CSS_SELECTOR, '#player-panel input[name="delta"]').send_keys("-60")
    browser.find_element(By.CSS_SELECTOR, '#player-panel input[name="reason"]').send_keys("refund")
    browser.find_element(By.CSS_SELECTOR, "#player-panel button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "done"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        standing = (await http.get(f"/v1/scores/user/{bot['user_id']}")).json()["data"]
    assert standing["current_score"] == 40

    browser.find_element(By.CSS_SELECTOR, flagged).find_element(
        By.XPATH, ".//button[text()='Remove score']"
    ).click()
    browser.find_element(By.CSS_SELECTOR, '#player-panel input[name="reason"]').send_keys("cheat")
    browser.find_element(By.CSS_SELECTOR, "#player-panel button[type=submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "Remove the score of"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        standing = (await http.get(f"/v1/scores/user/{bot['user_id']}")).json()["data"]
    assert standing["current_score"] == 0


async def test_an_admin_blocks_a_farm_device_from_the_console(
    settings: Settings, own_database: str, browser: Any, tmp_path: Path
) -> None:
    """Ten accounts sign in from one device (its id is markup, shown as text): the
    Devices tab lists it as flagged with its accounts; blocking it from there ends its
    sessions and refuses its logins."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    env = server_env(dataclasses.replace(settings, database_url=own_database))
    device = {"id": '<img/src=x/id="pwned">'}
    with serving(env, tmp_path) as (server,):
        admin = create_admin(env, tmp_path)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            farm = []
            for _ in range(10):
                player = await new_player(http)
                logged_in = await http.post(
                    "/v1/auth/login",
                    json={"username": player["username"], "password": PASSWORD, "device": device},
                )
                assert logged_in.status_code == 200, logged_in.text
                farm.append({**player, **logged_in.json()["data"]})

        wait = _signed_in(browser, server.url, admin)
        browser.find_element(By.CSS_SELECTOR, 'nav button[data-tab="devices"]').click()
        found = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#devices tr[data-device-id]"))
        )
        assert device["id"] in found.text and "10" in found.text
        assert not browser.find_elements(By.ID, "pwned")

        found.find_element(By.XPATH, ".//button[text()='Accounts']").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "device-panel"), farm[0]["username"]))
        panel = browser.find_element(By.ID, "device-panel").text
        assert all(player["username"] in panel for player in farm)

        found.find_element(By.XPATH, ".//button[text()='Block']").click()
        browser.find_element(By.CSS_SELECTOR, '#device-panel input[name="reason"]').send_keys(
            "account farm"
        )
        browser.find_element(By.CSS_SELECTOR, "#device-panel button[type=submit]").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "devices"), "account farm"))

        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            revoked = await http.post(
                "/v1/auth/action-token",
                json={"action_type": "game_completion", "session_id": "s1"},
                headers=bearer(farm[0]["access_token"]),
            )
            assert revoked.status_code == 401
            refused = await http.post(
                "/v1/auth/login",
                json={"username": farm[0]["username"], "password": PASSWORD, "device": device},
            )
            assert refused.status_code == 403
            assert refused.json()["error"]["details"]["reason"] == "device_blocked"
