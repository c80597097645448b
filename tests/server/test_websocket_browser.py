"""The chat page in a real browser: two headless Chromium users (selenium)
and one TCP client chat in one room and see each other's lines, joins and
leaves; then in two rooms, where each sees exactly its rooms' lines, with
unread counts on the rooms not shown.  Skipped, saying which package is missing, where Debian's
``chromium`` and ``chromium-driver`` or PyPI's ``selenium`` are not installed
(``.ci/run`` installs them)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server import protocol as p
from server.accounts import set_password
from server.app import ChatServer
from server.config import ServerConfig
from tests.conftest import READ_TIMEOUT, ChatTestClient, TlsFiles

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium is not installed"),
    pytest.mark.skipif(CHROMEDRIVER is None, reason="Debian package chromium-driver is not installed"),
    pytest.mark.timeout(90),
]

#: Where a screenshot of the page (two rooms) goes when CHATBENCH_SCREENSHOT
#: names a file (docs/websocket-chat.png was made this way).
SCREENSHOT_ENV = "CHATBENCH_SCREENSHOT"


@pytest.fixture
def browsers() -> Iterator[Callable[[], Any]]:
    opened: list[Any] = []

    def open_browser(*extra: str) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=820,560",
            *extra,
        ):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
        opened.append(driver)
        return driver

    yield open_browser
    for driver in opened:
        driver.quit()


# The page redraws its lists when the room shown changes: each helper reads a
# list in one script call, so it never holds an element that was replaced.


def lines(driver: Any) -> list[str]:
    return list(driver.execute_script("return [...document.querySelectorAll('#log li')].map(li => li.textContent)"))


def wait_for_line(driver: Any, text: str) -> None:
    WebDriverWait(driver, READ_TIMEOUT).until(lambda d: text in lines(d), f"no line {text!r} in {lines(driver)}")


def type_line(driver: Any, text: str, box_id: str = "input") -> None:
    box = driver.find_element(By.ID, box_id)
    if text:
        box.send_keys(text)
    box.send_keys(Keys.ENTER)


def sign_in(driver: Any, url: str, name: str) -> None:
    driver.get(url)
    wait_for_line(driver, p.NAME_PROMPT)
    type_line(driver, name)
    WebDriverWait(driver, READ_TIMEOUT).until(lambda d: any(line.startswith(f"Welcome, {name}!") for line in lines(d)))


def chat_lines(driver: Any) -> list[str]:
    """The shown room's messages (not its notices)."""
    script = "return [...document.querySelectorAll('#log li:not(.notice):not(.error)')].map(li => li.textContent)"
    return list(driver.execute_script(script))


def tabs(driver: Any) -> dict[str, int]:
    """Every room tab and its unread count."""
    script = """return [...document.querySelectorAll('#rooms .tab')].map(
        t => [t.dataset.room, Number(t.querySelector('.unread')?.textContent ?? 0)])"""
    return {room: count for room, count in driver.execute_script(script)}


def shown_room(driver: Any) -> str | None:
    room = driver.execute_script("return document.querySelector('#rooms .tab.shown')?.dataset.room ?? null")
    return None if room is None else str(room)


def members(driver: Any) -> list[str]:
    return list(driver.execute_script("return [...document.querySelectorAll('#online li')].map(li => li.textContent)"))


def wait(driver: Any, check: Callable[[Any], bool], what: str) -> None:
    WebDriverWait(driver, READ_TIMEOUT).until(check, what)


def test_two_browser_users_and_a_tcp_user_chat(browsers: Callable[[], Any]) -> None:
    with ChatServer(ServerConfig(port=0, ws_port=0)) as server:
        assert server.ws_address is not None
        url = "http://{}:{}/".format(*server.ws_address)
        ann, bea = browsers(), browsers()
        ann.get(url)
        wait_for_line(ann, p.NAME_PROMPT)
        type_line(ann, "ann")
        wait_for_line(ann, "Welcome, ann! Online (1): ann")
        bea.get(url)
        wait_for_line(bea, p.NAME_PROMPT)
        type_line(bea, "bea")
        wait_for_line(ann, "bea joined the chat")
        tom = ChatTestClient(server.address)
        try:
            assert tom.register("tom") == p.Welcome("tom", ("ann", "bea", "tom"))
            wait_for_line(ann, "tom joined the chat")
            wait_for_line(bea, "tom joined the chat")
            type_line(ann, "hello from the browser")
            assert tom.expect(p.Message) == p.Message("ann", "hello from the browser")
            wait_for_line(bea, "ann: hello from the browser")
            tom.say("hello from the terminal")
            wait_for_line(ann, "tom: hello from the terminal")
            wait_for_line(bea, "tom: hello from the terminal")
            assert members(ann) == ["ann", "bea", "tom"]
            bea.get("about:blank")  # closes her WebSocket
            assert tom.expect(p.Left) == p.Left("bea", "connection closed")
            wait_for_line(ann, "bea left the chat (connection closed)")
            png = ann.get_screenshot_as_png()
            assert png.startswith(b"\x89PNG") and len(png) > 1000
        finally:
            tom.close()


def test_two_rooms_each_user_sees_exactly_its_rooms_lines(browsers: Callable[[], Any]) -> None:
    """ann in #web, bea in #other, tom (TCP) in #web: each sees the lines of
    its rooms and nothing else; a line to the lobby, which all are in but
    none is looking at, shows as an unread count until its tab is clicked."""
    with ChatServer(ServerConfig(port=0, ws_port=0)) as server:
        assert server.ws_address is not None
        url = "http://{}:{}/".format(*server.ws_address)
        ann, bea = browsers(), browsers()
        sign_in(ann, url, "ann")
        sign_in(bea, url, "bea")
        type_line(ann, "#web", box_id="join")
        type_line(bea, "other", box_id="join")  # the page adds the '#'
        wait(ann, lambda d: shown_room(d) == "#web", "ann in #web")
        wait(bea, lambda d: shown_room(d) == "#other", "bea in #other")
        tom = ChatTestClient(server.address)
        try:
            tom.register("tom")
            tom.send_line("/join #web")
            assert tom.expect(p.Talking) == p.Talking("#web", ("ann", "tom"))
            wait_for_line(ann, "tom joined #web")
            assert members(ann) == ["ann", "tom"] and members(bea) == ["bea"]

            type_line(ann, "hello web")
            assert tom.expect(p.Message) == p.Message("ann", "hello web", "#web")
            tom.say("hi web")
            wait_for_line(ann, "tom: hi web")
            type_line(bea, "hello other")
            tom.send_line("/say #lobby to the lobby")
            wait(ann, lambda d: tabs(d) == {p.DEFAULT_ROOM: 1, "#web": 0}, f"ann's unread lobby line: {tabs(ann)}")
            wait(bea, lambda d: tabs(d) == {p.DEFAULT_ROOM: 1, "#other": 0}, "bea's unread lobby line")
            assert chat_lines(ann) == ["ann: hello web", "tom: hi web"]
            assert chat_lines(bea) == ["bea: hello other"]
            if os.environ.get(SCREENSHOT_ENV):
                ann.save_screenshot(str(Path(os.environ[SCREENSHOT_ENV])))

            for driver in (ann, bea):  # the lobby's tab: its line, and the count is gone
                driver.find_element(By.CSS_SELECTOR, f'#rooms .tab[data-room="{p.DEFAULT_ROOM}"]').click()
                wait_for_line(driver, "tom: to the lobby")
                assert chat_lines(driver) == ["tom: to the lobby"]
                assert tabs(driver)[p.DEFAULT_ROOM] == 0
            assert tom.drain() == []  # bea's line in #other reached nobody else

            ann.find_element(By.CSS_SELECTOR, '#rooms .tab[data-room="#web"] .part').click()
            assert tom.expect(p.Left) == p.Left("ann", "part", "#web")
            wait(ann, lambda d: tabs(d) == {p.DEFAULT_ROOM: 0}, "ann's #web tab gone")
            type_line(ann, "back in the lobby")  # the lobby was made current by its tab
            assert tom.expect(p.Message) == p.Message("ann", "back in the lobby")
        finally:
            tom.close()


def test_chat_over_https_and_wss_with_a_password(
    browsers: Callable[..., Any], tls_files: TlsFiles, tmp_path: Path
) -> None:
    """The page over https (Chromium told to accept the test certificate, for
    this test only), its WebSocket over wss, a login with a password in the
    page's password field, and a terminal user over TLS in the same room."""
    accounts = tmp_path / "accounts.txt"
    set_password(accounts, "ann", "ann's secret")
    config = ServerConfig(port=0, wss_port=0, accounts=str(accounts), **tls_files.server_options())
    with ChatServer(config) as server:
        assert server.wss_address is not None and server.tls_address is not None
        ann = browsers("--ignore-certificate-errors")
        ann.get("https://{}:{}/".format(*server.wss_address))
        wait_for_line(ann, p.NAME_PROMPT)
        type_line(ann, "ann")
        wait_for_line(ann, p.PASSWORD_PROMPT)
        box = ann.find_element(By.ID, "input")
        assert box.get_attribute("type") == "password"
        type_line(ann, "wrong")
        wait_for_line(ann, "Login failed: unknown name or wrong password")
        assert "wrong" not in lines(ann)
        type_line(ann, "ann")
        WebDriverWait(ann, READ_TIMEOUT).until(lambda d: lines(d).count(p.PASSWORD_PROMPT) == 2)
        type_line(ann, "ann's secret")
        wait_for_line(ann, "Welcome, ann! Online (1): ann")
        assert box.get_attribute("type") == "text"
        assert not any("secret" in line for line in lines(ann))
        assert ann.execute_script("return location.protocol") == "https:"
        tom = ChatTestClient(server.tls_address, tls=tls_files.client_context())
        try:
            tom.expect(p.Prompt)
            tom.send_line("tom")
            tom.expect(p.Prompt)
            tom.send_line("")  # a guest
            assert tom.expect(p.Welcome) == p.Welcome("tom", ("ann", "tom"))
            wait_for_line(ann, "tom joined the chat")
            type_line(ann, "hello over wss")
            assert tom.expect(p.Message) == p.Message("ann", "hello over wss")
            tom.say("hello over TLS")
            wait_for_line(ann, "tom: hello over TLS")
        finally:
            tom.close()
