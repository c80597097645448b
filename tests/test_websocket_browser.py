"""The chat page in a real browser: two headless Chromium users (selenium)
and one TCP client chat in one room and see each other's lines, joins and
leaves.  Skipped, saying which package is missing, where Debian's
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

#: Where a screenshot of the page goes when CHATBENCH_SCREENSHOT names a file
#: (docs/websocket-chat.png was made this way).
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


def lines(driver: Any) -> list[str]:
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#log li")]


def wait_for_line(driver: Any, text: str) -> None:
    WebDriverWait(driver, READ_TIMEOUT).until(lambda d: text in lines(d), f"no line {text!r} in {lines(driver)}")


def type_line(driver: Any, text: str) -> None:
    box = driver.find_element(By.ID, "input")
    if text:
        box.send_keys(text)
    box.send_keys(Keys.ENTER)


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
            online = [li.text for li in ann.find_elements(By.CSS_SELECTOR, "#online li")]
            assert online == ["ann", "bea", "tom"]
            if os.environ.get(SCREENSHOT_ENV):
                ann.save_screenshot(str(Path(os.environ[SCREENSHOT_ENV])))
            bea.get("about:blank")  # closes her WebSocket
            assert tom.expect(p.Left) == p.Left("bea", "connection closed")
            wait_for_line(ann, "bea left the chat (connection closed)")
            png = ann.get_screenshot_as_png()
            assert png.startswith(b"\x89PNG") and len(png) > 1000
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
