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


def fill_login(driver: webdriver.Chrome, user: str, password: str) -> None:
    """Type a user name and password into the login form shown and send it."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()


def log_in(driver: webdriver.Chrome, base: str, user: str, password: str) -> None:
    """Log in through the inbox's login page and wait for the queue."""
    from tests.support.services import wait_for

    driver.get(base + "/login")
    fill_login(driver, user, password)
    wait_for(lambda: driver.current_url.endswith("/alerts"), 10, "the queue after logging in")
