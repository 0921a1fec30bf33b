"""The browser tests' shared set-up: a tracker serving its web view, and
headless Chromium (Selenium) to look at it. Screenshots go to
test-output/web/. The `browser` fixture reaches the tests through
tests/integration/conftest.py."""

import os
import shutil
import tempfile
import time

import pytest
import requests

from tests.support.bridge import ROOT, Bridge
from tests.support.net import free_port

SHOTS = ROOT / "test-output" / "web"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def web_view_bridge(path, api_url):
    """A bridge whose hybrid tracker serves the web view on a free port
    (metrics off); `bridge.web` is the view's URL."""
    bridge = Bridge(path, api_url)
    port = free_port()
    bridge.write(mode="hybrid", callback_port=free_port(), extra="stale_after = 5\n")
    bridge.conf.write_text(
        bridge.conf.read_text() + "[metrics]\nport = 0\n[web]\nport = %d\n" % port
    )
    bridge.web = "http://127.0.0.1:%d" % port
    return bridge


def start_web_view(bridge):
    """Start the bridge's tracker; return it once its web view answers."""
    tracker = bridge.start_tracker()
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(bridge.web + "/v1/health", timeout=1)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "web view did not come up"
            time.sleep(0.2)
    return tracker


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "Debian's chromium and chromium-driver are not installed "
            "(tools/ensure-services.sh installs them)"
        )
    # Imported here: conftest.py imports this module for every integration
    # test, and selenium may be missing (the browser tests then skip).
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="st2bridge-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,900",
        "--user-data-dir=" + profile,
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shot(driver, name):
    # The whole page, not only the window.
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, max(900, min(height + 40, 2400)))
    driver.save_screenshot(str(SHOTS / ("%s.png" % name)))
