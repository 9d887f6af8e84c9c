"""Headless Chromium (Debian's chromium and chromium-driver) driven by Selenium, for the page tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService

ARTIFACTS = Path(os.environ.get("SURVEY_ALERTS_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))


def chromium() -> webdriver.Chrome:
    """A headless browser that talks to nothing but what the test opens."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        raise RuntimeError("chromium and chromium-driver are not installed; .ci/run installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tempfile.mkdtemp(prefix='survey-alerts-chromium-')}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=DriverService(executable_path=driver))


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """Keep a PNG of what the browser shows as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
