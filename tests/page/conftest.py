"""Fixtures of the page tests: a real ``serve --shadow`` with live windows measured, and a
real headless Chromium driven by selenium (skipped, saying why, without a Chromium)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.shadow import (
    WINDOW, live_rows, post_rows, shadow_server, staged_repo, wait_for_shadow,
)

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1100,1900")


def chromium_paths() -> tuple[str, str] | None:
    """The Chromium binary and its driver, or None when there is no Chromium."""
    browser = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = shutil.which(DRIVER) or ("/usr/bin/chromedriver"
                                      if Path("/usr/bin/chromedriver").exists() else None)
    if browser is None or driver is None:
        return None
    return browser, driver


@pytest.fixture(scope="module")
def served(rollback_base, tmp_path_factory):
    """``serve fraud-detector#prod --shadow fraud-detector#staging`` with three windows
    measured (the answers are kept: every one must be a 200)."""
    repo = staged_repo(rollback_base, tmp_path_factory.mktemp("page") / "copy")
    server = shadow_server(repo)
    try:
        answers = post_rows(server, live_rows(9, 3 * WINDOW), 50)
        wait_for_shadow(server, lambda d: len(d["windows"]) >= 3)
        yield server, answers
    finally:
        server.stop()


@pytest.fixture
def browser(tmp_path):
    paths = chromium_paths()
    if paths is None:
        pytest.skip("no Chromium: install the system packages chromium and chromium-driver "
                    "(.ci/run does) to run the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(paths[1]))
    try:
        yield driver
    finally:
        driver.quit()
