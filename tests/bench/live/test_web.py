"""The live page in a real browser: headless Chromium (selenium) watches a run
and sees its charts grow, interval by interval, and the run finish.  Skipped,
saying which package is missing, where Debian's ``chromium`` and
``chromium-driver`` or PyPI's ``selenium`` are not installed."""

from __future__ import annotations

import os
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from bench.live.web import WebOutput
from bench.swarm import Outputs, SwarmConfig, run_swarm

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium is not installed"),
    pytest.mark.skipif(CHROMEDRIVER is None, reason="Debian package chromium-driver is not installed"),
    pytest.mark.timeout(120),
    pytest.mark.slow,
]

#: Seconds the page gets to show what the run did.
WAIT_S = 30
#: CHATBENCH_LIVE_SCREENSHOT=FILE saves a picture of the page mid-run.
SCREENSHOT_ENV = "CHATBENCH_LIVE_SCREENSHOT"


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def _interval(driver: Any) -> int:
    return int(driver.find_element(By.ID, "current").get_attribute("data-interval"))


def _points(driver: Any, chart: str, name: str) -> int:
    line = driver.find_element(By.CSS_SELECTOR, f"#{chart} polyline[data-name='{name}']")
    return int(line.get_attribute("data-points"))


def test_the_live_page_shows_the_current_interval_in_its_charts(browser: Any) -> None:
    web = WebOutput(0)
    try:
        with urllib.request.urlopen(web.url + "nothing", timeout=5) as reply:
            pytest.fail(f"expected 404, got {reply.status}")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    config = SwarmConfig(clients=10, senders=2, rate=100, duration_s=5.0, warmup_s=1.0, interval_s=0.5, progress=False)
    got: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: got.update(doc=run_swarm(config, Outputs([web]))), daemon=True)
    try:
        runner.start()
        browser.get(web.url)
        wait = WebDriverWait(browser, WAIT_S)
        wait.until(lambda d: _interval(d) >= 4, "the page never showed interval 4")
        assert runner.is_alive(), "the run ended before the page showed it going"
        # The attribute and the text in one script: the page may move on between two reads.
        shown, text = browser.execute_script(
            "const e = document.getElementById('current'); return [Number(e.dataset.interval), e.textContent];"
        )
        assert f"interval {shown}" in text
        assert _points(browser, "latency", "p99") >= 2  # measured intervals after the 1 s warm-up
        assert _points(browser, "rate", "deliveries/s") >= shown  # one point per interval so far
        assert browser.find_elements(By.CSS_SELECTOR, "#latency rect.warmup")
        assert "running" in browser.find_element(By.ID, "state").text
        if os.environ.get(SCREENSHOT_ENV):
            browser.save_screenshot(os.environ[SCREENSHOT_ENV])
        runner.join(WAIT_S)
        wait.until(lambda d: d.find_element(By.ID, "state").text == "finished", "the page never showed the end")
        last = got["doc"]["intervals"]["intervals"][-1]["index"]
        wait.until(lambda d: _interval(d) == last, "the page did not reach the last interval")
        assert "embedded, 10 clients" in browser.find_element(By.ID, "title").text
    finally:
        runner.join(WAIT_S)
        web.close()
