"""Headless Chromium driven by Selenium against the app over real HTTP (Debian's chromium and chromium-driver;
.ci/run installs them). Without them the browser tests are skipped, saying so."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from llmproxy.devtools.waiting import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WIDTHS = {"wide": 1280, "phone": 390}


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (a fresh profile: no cookies between sessions)."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium and ChromeDriver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, live):
    """The browser on a clean slate (no cookies), and the live app's base URL."""
    browser.delete_all_cookies()
    browser.set_window_size(WIDTHS["wide"], 900)
    return browser, live


@pytest.fixture
def screenshot(browser):
    """screenshot(name): the page at 1280 px and 390 px, and in dark mode at 1280 px, into $SCREENSHOT_DIR
    (`make screenshots`); without it, nothing."""
    folder = os.environ.get("SCREENSHOT_DIR")

    def take(name: str) -> None:
        if not folder:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        shots = [(label, width, "light") for label, width in WIDTHS.items()] + [("dark", WIDTHS["wide"], "dark")]
        for label, width, scheme in shots:
            features = [{"name": "prefers-color-scheme", "value": scheme}]
            browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})
            browser.set_window_size(width, 900)
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(width, max(600, min(int(height) + 120, 4000)))
            browser.save_screenshot(str(Path(folder) / f"{name}-{label}.png"))
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        browser.set_window_size(WIDTHS["wide"], 900)

    return take


def settled(driver, find, timeout: float = 10.0, message: str = "the page"):
    """find(driver) once the page shows it: a page still loading (no element, or one it just replaced) is waited for."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def attempt():
        try:
            return find(driver)
        except (NoSuchElementException, StaleElementReferenceException):
            return None

    return wait_for(attempt, timeout=timeout, interval=0.05, message=message)
