"""Headless Chromium (Debian's chromium + chromium-driver) driving the admin on a live server."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-output" / "screenshots"
DOC_IMAGES = REPO / "docs" / "img"


@pytest.fixture(scope="session")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(3)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshot(browser, request):
    """``screenshot("name")`` saves a PNG under test-output/screenshots/ (and docs/img/ when asked)."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str, doc_name: str | None = None) -> Path:
        path = SHOTS / f"{request.node.name}--{name}.png"
        browser.save_screenshot(str(path))
        if doc_name and os.environ.get("SAVE_DOC_SCREENSHOTS") == "1":
            DOC_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOC_IMAGES / doc_name)
        return path

    return take


@pytest.fixture
def operator(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("operator", "ops@example.com", "correct-horse-battery")


@pytest.fixture
def logged_in(browser, live_server, operator):
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("operator")
    browser.find_element(By.NAME, "password").send_keys("correct-horse-battery")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    return browser
